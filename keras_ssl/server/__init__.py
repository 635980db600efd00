"""A local server speaking TF Serving's REST and gRPC APIs (``python -m keras_ssl.serve``).

From the files a client never sees to the wire:

- :mod:`.errors`: ServingError (a TF status code and a message) and its HTTP status.
- :mod:`.model_config`: models.config and batching.config parsing.
- :mod:`.validation`: input specs, image header sniffing, limits, check_input.
- :mod:`.batching`: the dynamic Batcher of one signature.
- :mod:`.loaded`: one loaded SavedModel version (predict, warm-up).
- :mod:`.manager`: ModelManager (version polling, load/unload, lookup, status).
- :mod:`.watcher`: re-reading models.config while serving.
- :mod:`.rest_codec` and :mod:`.rest`: REST JSON and its HTTP server.
- :mod:`.grpc_api`: the gRPC services.
- :mod:`.app`: start_server / ServerHandle and the command line.
- :mod:`.bench`: the throughput benchmark (``python -m keras_ssl.serve_bench``).

Names, versions and signature names follow :mod:`keras_ssl.export.contract`.
"""
