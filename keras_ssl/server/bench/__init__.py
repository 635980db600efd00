"""Throughput benchmark of the local server against in-process inference.

    python -m keras_ssl.serve_bench [--export-dir DIR | --run-dir RUN] \\
        [--seconds 10] [--concurrency 1 8 32] [--protocols grpc rest] \\
        [--images-per-request 1] [--batching-config serving/batching.config | --no-batching]

Starts ``python -m keras_ssl.serve`` as a subprocess on free ports of
127.0.0.1, then for each protocol and concurrency level runs that many
client threads, each sending the same pre-encoded request in a loop for a
fixed time (REST: persistent HTTP/1.1 connections, JSON row format; gRPC:
one channel, tensorflow-serving-api stubs). Prints one JSON line per
measurement (requests/s, images/s, p50/p99 latency in ms, errors, server RSS
at start and end of the level) and a table; the baseline is in-process
inference on the same machine, measured before the server starts:
``encoder(batch, training=False)`` on the Keras encoder (when there is one)
and the SavedModel's ``serving_default`` called directly, both on batches of
the server's ``max_batch_size``. The SavedModel baseline is measured again
(3 s, server idle) right before every level and ``ratio_vs_adjacent`` uses
that figure, so uneven background load does not skew the ratio.

Model: ``--export-dir`` (``<base>/<name>`` holding versions, or one version
directory), ``--run-dir`` (exports ``RUN/encoder.keras`` into a temporary
directory), or neither: the BCNN encoder of the thesis (random weights) is
built and exported.

Modules: :mod:`.run` (flags and the order of the steps, :func:`main`),
:mod:`.model` (the model to serve and its signature), :mod:`.process` (the
server subprocess), :mod:`.measure` (in-process baseline, one REST or gRPC
level), :mod:`.report` (JSON lines and the table).
"""
from __future__ import annotations

from keras_ssl.server.bench.run import main

__all__ = ["main"]
