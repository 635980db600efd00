"""A local server speaking TF Serving's REST and gRPC APIs (``python -m keras_ssl.serve``):
model config parsing and the model manager (:mod:`.models`), REST (:mod:`.rest`),
gRPC (:mod:`.grpc_api`), the command line (:mod:`.app`) and its benchmark
(:mod:`.bench`). Names and versions follow :mod:`keras_ssl.export.contract`.
"""
