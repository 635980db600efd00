"""One loaded SavedModel version and how a request runs on it.

:class:`LoadedVersion` loads ``<base_path>/<version>`` (tag ``serve``), keeps
its SignatureDefs (for metadata) and their input specs, and runs
:meth:`LoadedVersion.predict`: inputs are checked with
:func:`keras_ssl.server.validation.check_input` before the graph sees them,
and a TF error while running becomes a :class:`ServingError`. With a
:class:`BatchingConfig`, each signature has its own :class:`Batcher`;
:meth:`LoadedVersion.close` stops them (requests in flight still finish).
:meth:`LoadedVersion.warmup` replays the export's warm-up requests.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from keras_ssl.export.contract import ASSETS_EXTRA, INIT_OP_SIGNATURE, SAVED_MODEL_FILE, WARMUP_FILE
from keras_ssl.export.contract import SERVING_SIGNATURE as DEFAULT_SIGNATURE
from keras_ssl.server.batching import Batcher
from keras_ssl.server.errors import ServingError, invalid, tf_error_to_serving
from keras_ssl.server.model_config import BatchingConfig
from keras_ssl.server.validation import Limits, TensorSpecInfo, check_input, spec_from_tensor_info

#: Warm-up records replayed at most (TF Serving's limit).
_MAX_WARMUP_RECORDS = 1000


class LoadedVersion:
    """One loaded SavedModel version: signatures, their specs, an optional batcher per signature."""

    def __init__(self, model_name: str, version: int, path: Path,
                 batching: Optional[BatchingConfig], limits: Limits):
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        self.model_name, self.version, self.path = model_name, version, path
        self.limits = limits
        pb = saved_model_pb2.SavedModel()
        pb.ParseFromString((path / SAVED_MODEL_FILE).read_bytes())
        graphs = [mg for mg in pb.meta_graphs if "serve" in mg.meta_info_def.tags] or list(pb.meta_graphs)
        if not graphs:
            raise ValueError(f"{path}: no meta graph")
        self.signature_defs = graphs[0].signature_def  # protobuf map: name -> SignatureDef
        self.obj = tf.saved_model.load(str(path), tags=["serve"])
        self.fns = {}
        self.inputs: dict[str, dict[str, TensorSpecInfo]] = {}
        self.outputs: dict[str, list[str]] = {}
        for sig_name, sd in self.signature_defs.items():
            if sig_name == INIT_OP_SIGNATURE or sig_name not in self.obj.signatures:
                continue
            self.fns[sig_name] = self.obj.signatures[sig_name]
            self.inputs[sig_name] = {k: spec_from_tensor_info(k, v) for k, v in sd.inputs.items()}
            self.outputs[sig_name] = sorted(sd.outputs.keys())
        self.batchers: dict[str, Batcher] = {}
        if batching is not None:
            for sig_name in self.fns:
                self.batchers[sig_name] = Batcher(
                    lambda inputs, s=sig_name: self._run(s, inputs), batching,
                    name=f"{model_name}-{version}-{sig_name}")

    def signature_def_map(self):
        """The SignatureDefs as a ``SignatureDefMap`` (the metadata REST and gRPC return)."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        sdm = get_model_metadata_pb2.SignatureDefMap()
        for k, sd in self.signature_defs.items():
            sdm.signature_def[k].CopyFrom(sd)
        return sdm

    def _run(self, sig_name: str, inputs: dict) -> dict:
        import tensorflow as tf

        fn = self.fns[sig_name]
        try:
            feed = {k: tf.constant(v) for k, v in inputs.items()}
            out = fn(**feed)
            return {k: v.numpy() for k, v in out.items()}
        except ServingError:
            raise
        except (tf.errors.OpError, ValueError, TypeError) as e:
            raise tf_error_to_serving(e) from None

    def predict(self, sig_name: str, inputs: dict[str, np.ndarray],
                output_filter=()) -> tuple[str, dict[str, np.ndarray]]:
        """(signature name, outputs) of one request; ``output_filter`` keeps only those outputs."""
        sig_name = sig_name or DEFAULT_SIGNATURE
        if sig_name not in self.fns:
            raise invalid(f"Serving signature name: \"{sig_name}\" not found in signature def "
                          f"(available: {', '.join(sorted(self.fns))})")
        checked, n = self._checked_inputs(sig_name, inputs)
        outs_known = self.outputs[sig_name]
        for f in output_filter:
            if f not in outs_known:
                raise invalid(f"output_filter names unknown output '{f}'; outputs: {outs_known}")
        batcher = self.batchers.get(sig_name)
        out = batcher.submit(checked, n) if batcher is not None else self._run(sig_name, checked)
        if output_filter:
            out = {k: out[k] for k in output_filter}
        return sig_name, out

    def _checked_inputs(self, sig_name: str, inputs: dict[str, np.ndarray]
                        ) -> tuple[dict[str, np.ndarray], int]:
        """The inputs checked against the signature, and their common batch size."""
        specs = self.inputs[sig_name]
        missing = sorted(set(specs) - set(inputs))
        extra = sorted(set(inputs) - set(specs))
        if extra:
            raise invalid(f"unknown input(s) {extra} for signature '{sig_name}'; expected: {sorted(specs)}")
        if missing:
            raise invalid(f"missing input(s) {missing} for signature '{sig_name}'")
        checked = {k: check_input(specs[k], v, self.limits) for k, v in inputs.items()}
        sizes = {v.shape[0] for v in checked.values()}
        if len(sizes) > 1:
            raise invalid(f"inputs have different batch sizes: {sorted(sizes)}")
        return checked, sizes.pop()

    def warmup(self) -> int:
        """Replay ``assets.extra/tf_serving_warmup_requests`` (PredictRequests only)."""
        path = self.path / ASSETS_EXTRA / WARMUP_FILE
        if not path.is_file():
            return 0
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        n = 0
        for rec in tf.data.TFRecordDataset(str(path)).take(_MAX_WARMUP_RECORDS):
            log_msg = prediction_log_pb2.PredictionLog.FromString(rec.numpy())
            if log_msg.WhichOneof("log_type") != "predict_log":
                continue
            req = log_msg.predict_log.request
            inputs = {k: tf.make_ndarray(v) for k, v in req.inputs.items()}
            sig = req.model_spec.signature_name or DEFAULT_SIGNATURE
            if sig in self.fns:
                self._run(sig, {k: check_input(self.inputs[sig][k], v, self.limits)
                                for k, v in inputs.items()})
                n += 1
        return n

    def close(self):
        """Stop this version's batchers (their queued requests still run)."""
        for b in self.batchers.values():
            b.stop()
