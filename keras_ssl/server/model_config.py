"""What the local server serves and how it batches, read from TF Serving's config files.

:func:`parse_models_config` reads a ``ModelServerConfig`` text proto
(``--model_config_file``, ``model_config_list`` only) into
:class:`ModelConfig` records; :func:`parse_batching_config` reads
``BatchingParameters`` (``--batching_parameters_file``) into a validated
:class:`BatchingConfig`. Both raise ValueError naming the file (``where``)
and the offending entry; nothing is loaded or touched on disk here. Model
names and labels are checked with the patterns of
:mod:`keras_ssl.export.contract`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

from keras_ssl.export.contract import LABEL_RE, NAME_RE


@dataclass
class ModelConfig:
    """One served model: its name, the directory holding its integer version
    directories, which versions to serve (``policy``: latest ``num_latest`` /
    all / the ``specific`` ones) and version labels (label -> version)."""
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
        if c.name in seen:  # a name seen before passed the NAME_RE check
            raise ValueError(f"{where}: model {c.name!r} listed twice")
        out.append(_model_config(c, where))
        seen.add(c.name)
    if not out:
        raise ValueError(f"{where}: no models configured")
    return out


def _model_config(c, where: str) -> ModelConfig:
    """One ``ModelConfig`` proto entry -> :class:`ModelConfig` (ValueError if invalid)."""
    if not NAME_RE.match(c.name):
        raise ValueError(f"{where}: invalid model name {c.name!r}")
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
    return mc


#: BatchingParameters fields accepted; thread_pool_name, enable_large_batch_splitting
#: and max_execution_batch_size are checked but have no effect here.
_BATCH_FIELDS = {"max_batch_size", "batch_timeout_micros", "num_batch_threads",
                 "max_enqueued_batches", "allowed_batch_sizes", "pad_variable_length_inputs",
                 "thread_pool_name", "enable_large_batch_splitting", "max_execution_batch_size"}
_BOOL_FIELDS = ("pad_variable_length_inputs", "enable_large_batch_splitting")
_BATCH_TOKEN = re.compile(
    r"\s*(?P<key>[A-Za-z_]+)\s*(?:\{\s*value\s*:\s*(?P<v1>[^\s}]+)\s*\}|:\s*(?P<v2>[^\s]+))\s*")


def parse_batching_config(text: str, where: str = "batching.config") -> BatchingConfig:
    """Parse TF Serving's BatchingParameters text proto.

    Accepts ``max_batch_size { value: 32 }`` (the wrapper form TF Serving's
    docs use), ``max_batch_size: 32`` and repeated ``allowed_batch_sizes: N``;
    ``#`` comments. An unknown field is an error naming it.
    """
    cfg = BatchingConfig()
    allowed = []
    for key, raw in _batching_fields(text, where):
        if key == "thread_pool_name":
            continue
        if key in _BOOL_FIELDS:
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
        elif key != "max_execution_batch_size":
            setattr(cfg, key, value)
    cfg.allowed_batch_sizes = tuple(allowed)
    try:
        return cfg.validate()
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _batching_fields(text: str, where: str) -> Iterator[tuple[str, str]]:
    """The (field, raw value) pairs of a BatchingParameters text, in order; unknown fields refused.

    A generator, so that errors are raised in file order together with the
    caller's value checks (the first mistake in the file is the one reported).
    """
    body = re.sub(r"#[^\n]*", "", text)
    pos = 0
    while pos < len(body):
        if not body[pos:].strip():
            break
        m = _BATCH_TOKEN.match(body, pos)
        if not m:
            snippet = body[pos:].strip().splitlines()[0][:60]
            raise ValueError(f"{where}: cannot parse near {snippet!r}")
        pos = m.end()
        key, raw = m.group("key"), (m.group("v1") or m.group("v2")).strip("'\"")
        if key not in _BATCH_FIELDS:
            raise ValueError(f"{where}: unknown field {key!r} (known: {', '.join(sorted(_BATCH_FIELDS))})")
        yield key, raw
