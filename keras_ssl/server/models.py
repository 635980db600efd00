"""Model manager of the local TF-Serving-compatible server (keras_ssl.serve).

Holds the models of a ``models.config`` (or one ``--model_name`` /
``--model_base_path``), polls each base path for integer version
directories, loads new versions (and runs their
``assets.extra/tf_serving_warmup_requests``) before unloading the ones the
version policy no longer wants, and runs ``Predict`` for the REST and gRPC
front ends, optionally through a dynamic :class:`Batcher`.

Safety: model names, versions and labels that come from clients are only
ever looked up in in-memory dicts (after a regex / integer check); nothing a
client sends reaches the filesystem, and nothing is unpickled.
"""
from __future__ import annotations

import collections
import gc
import logging
import os
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from keras_ssl.export.contract import (ASSETS_EXTRA, INIT_OP_SIGNATURE, LABEL_RE, NAME_RE,
                                       SAVED_MODEL_FILE, WARMUP_FILE, version_dirs)
from keras_ssl.export.contract import SERVING_SIGNATURE as DEFAULT_SIGNATURE

log = logging.getLogger("keras_ssl.serve")


# Model version states (tensorflow.serving.ModelVersionStatus.State names).
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


# --------------------------------------------------------------------------
# Errors with TF status codes
# --------------------------------------------------------------------------

HTTP_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
    "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429, "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "INTERNAL": 500, "UNKNOWN": 500,
}


class ServingError(Exception):
    """An error with a TF status code name (``INVALID_ARGUMENT``, ``NOT_FOUND``...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def invalid(msg: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", msg)


def not_found(msg: str) -> ServingError:
    return ServingError("NOT_FOUND", msg)


def _tf_message(e: Exception) -> str:
    """The useful line of a TF op error (drops 'Graph execution error', node traces)."""
    text = str(getattr(e, "message", None) or e)
    keep = [ln.strip() for ln in text.splitlines()
            if ln.strip() and not ln.strip().startswith(("[[", "Graph execution error",
                                                          "Detected at node", "<stack traces",
                                                          "File \""))]
    msg = "; ".join(keep) or type(e).__name__
    return msg[:2000]


def tf_error_to_serving(e: Exception) -> ServingError:
    """Map a TensorFlow op error raised while running a model."""
    import tensorflow as tf

    msg = _tf_message(e)
    if isinstance(e, (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError,
                      tf.errors.FailedPreconditionError)):
        return invalid(msg)
    if isinstance(e, tf.errors.ResourceExhaustedError):
        return ServingError("RESOURCE_EXHAUSTED", msg)
    if isinstance(e, (ValueError, TypeError)):
        return invalid(msg)
    return ServingError("INTERNAL", msg)


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------

@dataclass
class ModelConfig:
    name: str
    base_path: str
    policy: str = "latest"              # latest | all | specific
    num_latest: int = 1
    specific: tuple[int, ...] = ()
    labels: dict[str, int] = field(default_factory=dict)


@dataclass
class BatchingConfig:
    """TF Serving's BatchingParameters (the fields this server honours)."""
    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    def validate(self) -> "BatchingConfig":
        if self.max_batch_size < 1:
            raise ValueError("batching: max_batch_size must be >= 1")
        if self.batch_timeout_micros < 0:
            raise ValueError("batching: batch_timeout_micros must be >= 0")
        if self.num_batch_threads < 1:
            raise ValueError("batching: num_batch_threads must be >= 1")
        if self.max_enqueued_batches < 1:
            raise ValueError("batching: max_enqueued_batches must be >= 1")
        a = self.allowed_batch_sizes
        if a and (list(a) != sorted(set(a)) or a[-1] != self.max_batch_size):
            raise ValueError("batching: allowed_batch_sizes must increase and end with max_batch_size")
        return self


def parse_models_config(text: str, where: str = "models.config") -> list[ModelConfig]:
    """Parse a TF Serving ``ModelServerConfig`` text proto (model_config_list)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    msg = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        raise ValueError(f"{where}: {e}") from None
    if msg.WhichOneof("config") != "model_config_list":
        raise ValueError(f"{where}: expected a model_config_list")
    out, seen = [], set()
    for c in msg.model_config_list.config:
        if not NAME_RE.match(c.name):
            raise ValueError(f"{where}: invalid model name {c.name!r}")
        if c.name in seen:
            raise ValueError(f"{where}: model {c.name!r} listed twice")
        seen.add(c.name)
        if not c.base_path:
            raise ValueError(f"{where}: model {c.name!r} has no base_path")
        if c.model_platform and c.model_platform != "tensorflow":
            raise ValueError(f"{where}: model {c.name!r}: only model_platform 'tensorflow' is supported")
        mc = ModelConfig(name=c.name, base_path=c.base_path)
        pol = c.model_version_policy
        kind = pol.WhichOneof("policy_choice")
        if kind == "all":
            mc.policy = "all"
        elif kind == "specific":
            mc.policy = "specific"
            mc.specific = tuple(int(v) for v in pol.specific.versions)
            if not mc.specific:
                raise ValueError(f"{where}: model {c.name!r}: specific policy lists no versions")
        elif kind == "latest":
            mc.num_latest = max(1, int(pol.latest.num_versions or 1))
        for label, version in c.version_labels.items():
            if not LABEL_RE.match(label):
                raise ValueError(f"{where}: model {c.name!r}: invalid label {label!r}")
            mc.labels[label] = int(version)
        out.append(mc)
    if not out:
        raise ValueError(f"{where}: no models configured")
    return out


_BATCH_FIELDS = {"max_batch_size", "batch_timeout_micros", "num_batch_threads",
                 "max_enqueued_batches", "allowed_batch_sizes", "pad_variable_length_inputs",
                 "thread_pool_name", "enable_large_batch_splitting", "max_execution_batch_size"}


def parse_batching_config(text: str, where: str = "batching.config") -> BatchingConfig:
    """Parse TF Serving's BatchingParameters text proto.

    Accepts ``max_batch_size { value: 32 }`` (the wrapper form TF Serving's
    docs use), ``max_batch_size: 32`` and repeated ``allowed_batch_sizes: N``;
    ``#`` comments. An unknown field is an error naming it.
    """
    cfg = BatchingConfig()
    allowed = []
    body = re.sub(r"#[^\n]*", "", text)
    pos = 0
    token = re.compile(
        r"\s*(?P<key>[A-Za-z_]+)\s*(?:\{\s*value\s*:\s*(?P<v1>[^\s}]+)\s*\}|:\s*(?P<v2>[^\s]+))\s*")
    while pos < len(body):
        if not body[pos:].strip():
            break
        m = token.match(body, pos)
        if not m:
            snippet = body[pos:].strip().splitlines()[0][:60]
            raise ValueError(f"{where}: cannot parse near {snippet!r}")
        pos = m.end()
        key, raw = m.group("key"), (m.group("v1") or m.group("v2")).strip("'\"")
        if key not in _BATCH_FIELDS:
            raise ValueError(f"{where}: unknown field {key!r} (known: {', '.join(sorted(_BATCH_FIELDS))})")
        if key == "thread_pool_name":
            continue
        if key in ("pad_variable_length_inputs", "enable_large_batch_splitting"):
            if raw not in ("true", "false"):
                raise ValueError(f"{where}: {key} must be true or false, got {raw!r}")
            if key == "pad_variable_length_inputs":
                cfg.pad_variable_length_inputs = raw == "true"
            continue
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{where}: {key} must be an integer, got {raw!r}") from None
        if key == "allowed_batch_sizes":
            allowed.append(value)
        elif key == "max_execution_batch_size":
            continue
        else:
            setattr(cfg, key, value)
    cfg.allowed_batch_sizes = tuple(allowed)
    try:
        return cfg.validate()
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


# --------------------------------------------------------------------------
# Input validation (shared by REST and gRPC)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorSpecInfo:
    name: str
    dtype: str          # numpy dtype name or "string"
    dtype_enum: str     # DT_FLOAT...
    shape: Optional[tuple[Optional[int], ...]]   # None: unknown rank


_DT_TO_NP = {
    "DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_HALF": "float16",
    "DT_INT8": "int8", "DT_INT16": "int16", "DT_INT32": "int32", "DT_INT64": "int64",
    "DT_UINT8": "uint8", "DT_UINT16": "uint16", "DT_UINT32": "uint32", "DT_UINT64": "uint64",
    "DT_BOOL": "bool", "DT_STRING": "string",
}


def _spec_from_tensor_info(name, info) -> TensorSpecInfo:
    from tensorflow.core.framework import types_pb2

    dt = types_pb2.DataType.Name(info.dtype)
    if info.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
    return TensorSpecInfo(name, _DT_TO_NP.get(dt, "unsupported"), dt, shape)


def _fmt_shape(shape) -> str:
    if shape is None:
        return "<unknown rank>"
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape) + "]"


# Image header sniffing, to refuse oversized images before the graph decodes them.
def image_dimensions(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) from a PNG/GIF/BMP/JPEG/WebP header, None if not recognised."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
            chunk = data[12:16]
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if chunk == b"VP8L":
                bits = struct.unpack("<I", data[21:25])[0]
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8X":
                return (int.from_bytes(data[24:27], "little") + 1,
                        int.from_bytes(data[27:30], "little") + 1)
            return None
        if data[:2] == b"BM" and len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:2] == b"\xff\xd8":
            i = 2
            n = len(data)
            while i + 9 < n:
                if data[i] != 0xFF:
                    return None
                marker = data[i + 1]
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    i += 2
                    continue
                seg_len = struct.unpack(">H", data[i + 2:i + 4])[0]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", data[i + 5:i + 9])
                    return w, h
                i += 2 + seg_len
            return None
    except struct.error:
        return None
    return None


@dataclass
class Limits:
    max_image_pixels: int = 4096 * 4096
    max_tensor_bytes: int = 256 * 1024 * 1024
    allow_nonfinite: bool = False


def check_input(spec: TensorSpecInfo, arr: np.ndarray, limits: Limits) -> np.ndarray:
    """Validate ``arr`` against the signature's input ``spec``; return it in the spec's dtype."""
    name = spec.name
    if spec.dtype == "unsupported":
        raise invalid(f"input '{name}' has dtype {spec.dtype_enum}, which this server cannot feed")
    if spec.dtype == "string":
        if arr.dtype.kind in ("U", "S"):
            arr = np.vectorize(lambda s: s.encode("utf-8") if isinstance(s, str) else s,
                               otypes=[object])(arr) if arr.size else arr.astype(object)
        if arr.dtype != object:
            raise invalid(f"input '{name}' expects strings (DT_STRING; binary as {{\"b64\": ...}}), "
                          f"got {arr.dtype} values")
        for v in arr.flat:
            if not isinstance(v, bytes):
                raise invalid(f"input '{name}' expects strings (binary as {{\"b64\": ...}}), "
                              f"got a {type(v).__name__}")
    else:
        target = np.dtype(spec.dtype)
        if arr.dtype == object or arr.dtype.kind in ("U", "S"):
            raise invalid(f"input '{name}' expects {spec.dtype_enum} numbers, got non-numeric values")
        if arr.dtype == bool and target != bool:
            raise invalid(f"input '{name}' expects {spec.dtype_enum} numbers, got booleans")
        if target.kind in "iu" and arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(np.equal(np.mod(arr, 1), 0)):
                raise invalid(f"input '{name}' expects integers ({spec.dtype_enum})")
        if arr.dtype != target:
            with np.errstate(all="ignore"):
                try:
                    arr = arr.astype(target)
                except (TypeError, ValueError) as e:
                    raise invalid(f"input '{name}' cannot be converted to {spec.dtype_enum}: {e}") from None
        if target.kind == "f" and not limits.allow_nonfinite and arr.size and not np.all(np.isfinite(arr)):
            raise invalid(f"input '{name}' contains NaN or Infinity (or null); "
                          "only finite numbers are accepted")
    if spec.shape is not None:
        ok = arr.ndim == len(spec.shape) and all(
            d is None or d == a for d, a in zip(spec.shape, arr.shape))
        if not ok:
            raise invalid(f"input '{name}' has shape {list(arr.shape)}, the signature expects "
                          f"{_fmt_shape(spec.shape)} (-1 = any size)")
    if arr.ndim == 0:
        raise invalid(f"input '{name}' must have a batch dimension")
    if arr.shape[0] == 0:
        raise invalid(f"input '{name}' is empty (batch size 0)")
    if spec.dtype == "string":
        for v in arr.flat:
            if v[:2] == b"\xff\x0a" or v[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
                raise invalid(f"input '{name}': JPEG XL images are not accepted (their size cannot be "
                              "checked before decoding); send PNG, JPEG, GIF, BMP or WebP")
            dims = image_dimensions(v)
            if dims is not None and dims[0] * dims[1] > limits.max_image_pixels:
                raise invalid(f"input '{name}': image of {dims[0]}x{dims[1]} pixels exceeds the "
                              f"limit of {limits.max_image_pixels} pixels")
    return arr


# --------------------------------------------------------------------------
# A loaded version and its dynamic batcher
# --------------------------------------------------------------------------

class _Task:
    __slots__ = ("inputs", "n", "done", "result", "error", "t0")

    def __init__(self, inputs, n):
        self.inputs, self.n = inputs, n
        self.done = threading.Event()
        self.result = None
        self.error = None
        self.t0 = time.monotonic()


class Batcher:
    """Merges concurrent requests of one signature into batches.

    A batch closes when it holds ``max_batch_size`` examples or when
    ``batch_timeout_micros`` passed since its first request arrived;
    ``num_batch_threads`` batches run at once. A request larger than
    ``max_batch_size`` runs alone. More than ``max_enqueued_batches`` full
    batches waiting -> RESOURCE_EXHAUSTED (HTTP 429). When a merged batch
    fails with a client error (e.g. one corrupt image), its requests are
    re-run one by one so only the faulty request gets the error.
    """

    def __init__(self, run: Callable[[dict], dict], cfg: BatchingConfig, name: str = ""):
        self.run = run
        self.cfg = cfg
        self.queue: collections.deque[_Task] = collections.deque()
        self.queued_rows = 0
        self.cond = threading.Condition()
        self.stopped = False
        self.batches_run = 0
        self.max_batch_seen = 0
        self.threads = [threading.Thread(target=self._loop, name=f"batch-{name}-{i}", daemon=True)
                        for i in range(cfg.num_batch_threads)]
        for t in self.threads:
            t.start()

    def submit(self, inputs: dict, n: int) -> dict:
        if n > self.cfg.max_batch_size:
            return self.run(inputs)
        task = _Task(inputs, n)
        with self.cond:
            if self.stopped:
                task = None
            else:
                if self.queued_rows + n > self.cfg.max_enqueued_batches * self.cfg.max_batch_size:
                    raise ServingError("RESOURCE_EXHAUSTED",
                                       "batching queue is full; retry later")
                self.queue.append(task)
                self.queued_rows += n
                self.cond.notify()
        if task is None:
            return self.run(inputs)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.result

    def stop(self):
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def _take_batch(self) -> list[_Task]:
        with self.cond:
            while not self.queue:
                if self.stopped:
                    return []
                self.cond.wait()
            deadline = self.queue[0].t0 + self.cfg.batch_timeout_micros / 1e6
            while self.queued_rows < self.cfg.max_batch_size and not self.stopped:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.queue:
                    break
                self.cond.wait(remaining)
            batch, rows = [], 0
            while self.queue and rows + self.queue[0].n <= self.cfg.max_batch_size:
                t = self.queue.popleft()
                rows += t.n
                batch.append(t)
            self.queued_rows -= rows
            if self.queue:
                self.cond.notify()  # let another batch thread start on the rest
            return batch

    def _loop(self):
        while True:
            batch = self._take_batch()
            if not batch:
                if self.stopped:
                    return
                continue
            self._run_batch(batch)

    def _pad_to(self, n: int) -> int:
        for size in self.cfg.allowed_batch_sizes:
            if size >= n:
                return size
        return n

    def _run_batch(self, batch: list[_Task]):
        try:
            if len(batch) == 1 and not self.cfg.allowed_batch_sizes:
                batch[0].result = self.run(batch[0].inputs)
            else:
                rows = sum(t.n for t in batch)
                padded = self._pad_to(rows)
                merged = {}
                for k in batch[0].inputs:
                    parts = [t.inputs[k] for t in batch]
                    if padded > rows:  # repeat the last example to an allowed size
                        parts.append(np.repeat(parts[-1][-1:], padded - rows, axis=0))
                    merged[k] = np.concatenate(parts, axis=0)
                out = self.run(merged)
                self.batches_run += 1
                self.max_batch_seen = max(self.max_batch_seen, rows)
                start = 0
                for t in batch:
                    t.result = {k: v[start:start + t.n] for k, v in out.items()}
                    start += t.n
        except ServingError as e:
            if len(batch) > 1 and e.code == "INVALID_ARGUMENT":
                for t in batch:  # isolate the faulty request
                    try:
                        t.result = self.run(t.inputs)
                    except Exception as e2:  # noqa: BLE001
                        t.error = e2 if isinstance(e2, ServingError) else ServingError("INTERNAL", str(e2))
            else:
                for t in batch:
                    t.error = e
        except Exception as e:  # noqa: BLE001 - never leave a waiter hanging
            for t in batch:
                t.error = ServingError("INTERNAL", f"{type(e).__name__}: {e}")
        finally:
            for t in batch:
                t.done.set()


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
            self.inputs[sig_name] = {k: _spec_from_tensor_info(k, v) for k, v in sd.inputs.items()}
            self.outputs[sig_name] = sorted(sd.outputs.keys())
        self.batchers: dict[str, Batcher] = {}
        if batching is not None:
            for sig_name in self.fns:
                self.batchers[sig_name] = Batcher(
                    lambda inputs, s=sig_name: self._run(s, inputs), batching,
                    name=f"{model_name}-{version}-{sig_name}")

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
        sig_name = sig_name or DEFAULT_SIGNATURE
        if sig_name not in self.fns:
            raise invalid(f"Serving signature name: \"{sig_name}\" not found in signature def "
                          f"(available: {', '.join(sorted(self.fns))})")
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
        n = sizes.pop()
        outs_known = self.outputs[sig_name]
        for f in output_filter:
            if f not in outs_known:
                raise invalid(f"output_filter names unknown output '{f}'; outputs: {outs_known}")
        batcher = self.batchers.get(sig_name)
        out = batcher.submit(checked, n) if batcher is not None else self._run(sig_name, checked)
        if output_filter:
            out = {k: out[k] for k in output_filter}
        return sig_name, out

    def warmup(self) -> int:
        """Replay ``assets.extra/tf_serving_warmup_requests`` (PredictRequests only)."""
        path = self.path / ASSETS_EXTRA / WARMUP_FILE
        if not path.is_file():
            return 0
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        n = 0
        for rec in tf.data.TFRecordDataset(str(path)).take(1000):
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
        for b in self.batchers.values():
            b.stop()


# --------------------------------------------------------------------------
# The manager
# --------------------------------------------------------------------------

@dataclass
class VersionState:
    state: str
    error_code: str = "OK"
    error_message: str = ""


class _Model:
    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.loaded: dict[int, LoadedVersion] = {}
        self.states: dict[int, VersionState] = {}
        self.failed: set[int] = set()


def _refreeze_gc():
    """Move the long-lived heap (TensorFlow, loaded models) out of the cyclic GC.

    With TF imported the heap holds ~10^6 objects; a full collection, which
    request parsing (JSON lists) triggers now and then, stalls every thread
    for ~0.2 s (measured: REST p99 of 235 ms without this, 9 ms with it).
    Unfreeze first so unloaded versions can still be collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelManager:
    """Loads, serves and unloads model versions; thread-safe."""

    def __init__(self, models: list[ModelConfig], batching: Optional[BatchingConfig] = None,
                 poll_wait_seconds: float = 1.0, limits: Optional[Limits] = None):
        self.models = {m.name: _Model(m) for m in models}
        self.batching = batching
        self.poll_wait_seconds = poll_wait_seconds
        self.limits = limits or Limits()
        self.lock = threading.RLock()
        self._poll_lock = threading.Lock()  # one poll (load/unload pass) at a time
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._config_thread: Optional[threading.Thread] = None

    # ---- polling / loading ------------------------------------------------
    def start(self):
        """Poll once (blocking: the first versions are loaded on return), then keep polling."""
        self.poll_once()
        if self.poll_wait_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="version-poller", daemon=True)
            self._thread.start()
        return self

    def watch_config_file(self, path: str | os.PathLike, poll_wait_seconds: float):
        """Re-read a models.config when its content changes (TF Serving's
        ``--model_config_file_poll_wait_seconds``); a file that fails to parse
        is logged and the running config kept."""
        path = Path(path)
        last = [path.read_bytes() if path.is_file() else b""]

        def loop():
            while not self._stop.wait(poll_wait_seconds):
                try:
                    data = path.read_bytes()
                    if data == last[0]:
                        continue
                    last[0] = data
                    self.reload_config(parse_models_config(data.decode("utf-8"), str(path)))
                    log.info("Reloaded model config %s", path)
                except Exception as e:  # noqa: BLE001 - keep serving the old config
                    log.error("Model config %s not reloaded: %s", path, e)

        self._config_thread = threading.Thread(target=loop, name="config-poller", daemon=True)
        self._config_thread.start()
        return self

    def reload_config(self, models: list[ModelConfig]):
        """Serve exactly ``models`` from now on: add new ones (loaded before
        return), drop removed ones (their versions unloaded), update policies
        and labels of the others. A model whose base_path changed is reloaded."""
        new = {m.name: m for m in models}
        removed = []
        with self.lock:
            for name in list(self.models):
                old = self.models[name]
                if name not in new or new[name].base_path != old.cfg.base_path:
                    removed.append(self.models.pop(name))
                else:
                    old.cfg = new[name]
            for name, cfg in new.items():
                if name not in self.models:
                    self.models[name] = _Model(cfg)
        for model in removed:
            with self._poll_lock:
                for v in sorted(model.loaded):
                    self._unload(model, v)
        self.poll_once()

    def stop(self):
        self._stop.set()
        for t in (self._thread, self._config_thread):
            if t is not None:
                t.join(timeout=10)
        with self.lock:
            for m in self.models.values():
                for lv in m.loaded.values():
                    lv.close()
        gc.unfreeze()  # let the process collect what this server held

    def _poll_loop(self):
        while not self._stop.wait(self.poll_wait_seconds):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the poller must survive anything
                log.exception("version poll failed")

    @staticmethod
    def _wanted(cfg: ModelConfig, on_disk: list[int]) -> list[int]:
        if cfg.policy == "all":
            return on_disk
        if cfg.policy == "specific":
            return [v for v in on_disk if v in cfg.specific]
        return on_disk[-cfg.num_latest:]

    def poll_once(self):
        with self._poll_lock:
            self._poll_once()

    def _poll_once(self):
        changed = False
        with self.lock:
            models = list(self.models.items())
        for name, model in models:
            base = Path(model.cfg.base_path)
            on_disk = version_dirs(base, complete=True)
            if not on_disk and not model.loaded:
                log.warning("No versions of servable %s found under base path %s", name, base)
            wanted = [v for v in self._wanted(model.cfg, on_disk) if v not in model.failed]
            for v in wanted:
                if v not in model.loaded:
                    self._load(model, v, base / str(v))
                    changed = True
            # Availability-preserving: unload only after the wanted ones are in.
            keep = set(wanted) if any(v in model.loaded for v in wanted) else set(model.loaded)
            for v in sorted(set(model.loaded) - keep):
                self._unload(model, v)
                changed = True
        if changed:
            _refreeze_gc()

    def _load(self, model: _Model, version: int, path: Path):
        name = model.cfg.name
        with self.lock:
            model.states[version] = VersionState(LOADING)
        log.info("Loading servable version {name: %s version: %d}", name, version)
        try:
            lv = LoadedVersion(name, version, path, self.batching, self.limits)
            n = lv.warmup()
        except Exception as e:  # noqa: BLE001 - a bad export must not stop the server
            log.error("Failed to load %s version %d: %s", name, version, e)
            with self.lock:
                model.states[version] = VersionState(END, "UNKNOWN", f"{type(e).__name__}: {e}"[:500])
                model.failed.add(version)
            return
        with self.lock:
            model.loaded[version] = lv
            model.states[version] = VersionState(AVAILABLE)
        log.info("Successfully loaded servable version {name: %s version: %d} (%d warm-up requests)",
                 name, version, n)

    def _unload(self, model: _Model, version: int):
        with self.lock:
            lv = model.loaded.pop(version)
            model.states[version] = VersionState(UNLOADING)
        # Requests already holding `lv` finish normally; its batcher drains its queue.
        lv.close()
        with self.lock:
            model.states[version] = VersionState(END)
        log.info("Unloaded servable version {name: %s version: %d}", model.cfg.name, version)

    # ---- lookup ------------------------------------------------------------
    def _model(self, name: str) -> _Model:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise invalid(f"invalid model name {name!r}: expected [A-Za-z0-9][A-Za-z0-9_.-]*")
        model = self.models.get(name)
        if model is None:
            raise not_found(f"Servable not found for request: Latest({name}) (unknown model '{name}')")
        return model

    def resolve(self, name: str, version: Optional[int] = None,
                label: Optional[str] = None) -> LoadedVersion:
        """The loaded version for a request (latest when neither version nor label)."""
        model = self._model(name)
        with self.lock:
            if label is not None:
                version = _label_version(model, name, label)
            if version is not None:
                lv = model.loaded.get(version)
                if lv is None:
                    raise not_found(f"Servable not found for request: Specific({name}, {version})")
                return lv
            if not model.loaded:
                raise not_found(f"Servable not found for request: Latest({name}) (no version loaded)")
            return model.loaded[max(model.loaded)]

    def status(self, name: str, version: Optional[int] = None,
               label: Optional[str] = None) -> list[tuple[int, VersionState]]:
        model = self._model(name)
        with self.lock:
            if label is not None:
                version = _label_version(model, name, label)
            if version is not None:
                st = model.states.get(version)
                if st is None:
                    raise not_found(f"Could not find version {version} of model {name}")
                return [(version, st)]
            if not model.states:
                raise not_found(f"Could not find any versions of model {name}")
            return sorted(model.states.items(), reverse=True)

    def predict(self, name, version=None, label=None, signature_name="", inputs=None,
                output_filter=()):
        lv = self.resolve(name, version, label)
        sig, out = lv.predict(signature_name, inputs or {}, output_filter)
        return lv, sig, out


def _label_version(model, name: str, label) -> int:
    """The version a label points to; 400 for a malformed label, 404 for an unknown one."""
    if not isinstance(label, str) or not LABEL_RE.match(label):
        raise invalid(f"invalid version label {label!r}")
    if label not in model.cfg.labels:
        raise not_found(f"Unrecognized servable version label: {label} "
                        f"(model '{name}' labels: {sorted(model.cfg.labels)})")
    return model.cfg.labels[label]
