"""Tune config: the schema (frozen dataclasses) and its strict loading from JSON.

A tune config names a base experiment config, a search space over its dotted
keys, an objective and a list of stages (see docs/tuning.md)::

    {
      "base": "mnist_egomotion.json",          # relative to this file
      "objective": {"kind": "knn", "labels": 1000},
      "space": {
        "train.learning_rate": {"type": "float", "min": 1e-3, "max": 0.1, "log": true},
        "train.batch_size": {"type": "choice", "values": [64, 125, 256]}
      },
      "stages": [
        {"name": "coarse", "tuner": "random", "trials": 12,
         "overrides": {"train.steps": 1000}},
        {"name": "fine", "tuner": "bayesian", "trials": 6, "top_k": 3,
         "overrides": {"train.steps": 4000}}
      ]
    }

Everything is checked before any trial runs: unknown keys, wrong types, empty
or inverted ranges, log scale with min <= 0, space keys that are not settable
keys of the base experiment config, and values the base config's own schema
rejects (each range end and each choice is applied to the base config and
parsed). Errors are :class:`~keras_ssl.config.ConfigError` naming the key and
the file, like the experiment config's: types, enumerations (``Literal``) and
numeric bounds (:func:`keras_ssl.config.num` field metadata) are checked by
the experiment config's own :func:`~keras_ssl.config.build_dataclass`; this
module adds the checks that span several fields or the base config.

This module needs no KerasTuner; :mod:`keras_ssl.tuning.space` turns the
parsed space into KerasTuner hyperparameters and narrows it between stages.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

from keras_ssl.config import (SMOKE_OVERRIDES, Component, ConfigError, ExperimentConfig,
                              apply_overrides, build_dataclass, config_from_dict, num,
                              read_json_object)

Tuner = Literal["random", "hyperband", "grid", "bayesian"]
ObjectiveKind = Literal["knn", "linear", "pretext_loss"]
TUNERS = typing.get_args(Tuner)
OBJECTIVES = typing.get_args(ObjectiveKind)
#: Experiment keys that name or describe a run rather than set it.
UNTUNABLE = {"name", "description", "cost", "smoke", "encoder.name", "pretext.name", "method.name"}


# --------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchDim:
    """One dimension of the search space.

    ``float`` / ``int``: ``min`` <= ``max``, ``log`` for a log-uniform scale
    (min > 0), optional ``step`` (linear scale only; grid spacing and
    rounding). ``choice``: a non-empty list of ``values`` of one type.
    """
    type: Literal["float", "int", "choice"]
    min: Optional[float] = None
    max: Optional[float] = None
    log: bool = False
    step: Optional[float] = num(None, 0, lo_open=True)
    values: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Objective:
    """What a trial is scored by, on the validation split (never the test set).

    ``knn`` / ``linear``: accuracy of a kNN classifier / linear probe trained on
    ``labels`` labeled training images outside the validation split
    (``data.validation_images`` of the experiment), scored on the validation
    split; maximised. ``pretext_loss``: the pretext task's training loss over
    the last ``train.log_every`` steps; minimised.
    """
    kind: ObjectiveKind = "knn"
    labels: int = num(1000, 10)
    direction: Optional[Literal["max", "min"]] = None

    @property
    def name(self) -> str:
        if self.kind == "pretext_loss":
            return "pretext_loss"
        return f"validation_{self.kind}_{self.labels}_labels"

    @property
    def goal(self) -> str:
        return self.direction or ("min" if self.kind == "pretext_loss" else "max")


@dataclass(frozen=True)
class Hyperband:
    """Hyperband budget: trial budgets are ``tuner/epochs`` x ``steps_per_epoch``
    pretraining steps (this sets ``train.steps``); a promoted trial continues
    from its parent's checkpoint. ``max_epochs``, ``factor`` (>= 2) and
    ``iterations`` are KerasTuner's HyperbandOracle arguments."""
    max_epochs: int = num(9, 1)
    factor: int = num(3, 2)
    iterations: int = num(1, 1)
    steps_per_epoch: int = num(100, 1)


@dataclass(frozen=True)
class StageSmoke:
    """What ``--smoke`` changes in a stage: fewer trials, other overrides."""
    trials: Optional[int] = num(None, 1)
    overrides: dict = field(default_factory=dict)
    hyperband: Optional[Hyperband] = None     # its fields are range-checked like Stage.hyperband's


@dataclass(frozen=True)
class Stage:
    """One search stage.

    ``overrides``: dotted experiment keys set for every trial of the stage
    (its budget, e.g. ``train.steps``). Stages after the first search the
    space narrowed around the ``top_k`` best trials of the previous stage:
    numeric keys to the span of those trials widened by ``margin`` x the
    previous range (in log space for log keys), choices to the values those
    trials used; keys in ``pin`` (and keys whose narrowed range is one value)
    are fixed to the previous stage's best value. ``grid_points``: points per
    numeric key for ``tuner: grid``. ``baseline``: also run the base config's
    own values at this stage's budget (trial ``base``, shown in the table, never
    chosen as best) so that tuned and default compare at equal cost.
    """
    name: str
    tuner: Tuner = "random"
    trials: int = num(10, 1)
    overrides: dict = field(default_factory=dict)
    top_k: int = num(3, 1)
    margin: float = num(0.25, 0)
    pin: tuple[str, ...] = ()
    grid_points: int = num(3, 1)
    baseline: bool = False
    hyperband: Hyperband = Hyperband()
    smoke: StageSmoke = StageSmoke()


@dataclass(frozen=True)
class TuneConfig:
    """A whole tune config.

    ``base``: the experiment config tuned (path relative to the tune config).
    ``space``: dotted experiment key -> :class:`SearchDim`. ``stages``: run in
    order, each narrowing around the previous one. ``seed``: the oracles'
    seed (stage ``i`` uses a seed derived from it and ``i``).
    ``max_consecutive_failed_trials``: failures in a row that stop the sweep.
    ``smoke``: dotted experiment overrides that ``--smoke`` adds.
    ``description`` / ``cost``: prose; not compared when a sweep resumes.
    """
    base: str
    space: dict
    stages: tuple[Stage, ...]
    objective: Objective = Objective()
    seed: int = 0
    max_consecutive_failed_trials: int = num(3, 1)
    description: str = ""
    cost: str = ""
    smoke: dict = field(default_factory=dict)
    # Filled by load_tune_config (not JSON keys a user writes).
    name: str = ""
    path: str = ""


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------

def _parse_dim(key: str, raw, where: str) -> SearchDim:
    dim = build_dataclass(SearchDim, raw, f"space.{key}", where)
    k = f"space.{key}"
    if dim.type == "choice":
        if dim.min is not None or dim.max is not None or dim.log or dim.step is not None:
            raise ConfigError(f"{where}: '{k}' is a choice: give 'values' only (not min/max/log/step)")
        if not dim.values:
            raise ConfigError(f"{where}: '{k}.values' is empty: give at least one value")
        kinds = {type(v) for v in dim.values}
        if len(kinds) > 1 and not kinds <= {int, float}:
            raise ConfigError(f"{where}: '{k}.values' mixes types {sorted(t.__name__ for t in kinds)}")
        for v in dim.values:
            if not isinstance(v, (bool, int, float, str)):
                raise ConfigError(f"{where}: '{k}.values' must hold numbers, strings or booleans, got {v!r}")
        if len(set(dim.values)) != len(dim.values):
            raise ConfigError(f"{where}: '{k}.values' has duplicates: {list(dim.values)}")
        if kinds == {int, float}:  # 1 and 0.5 -> floats, one type for KerasTuner
            dim = dataclasses.replace(dim, values=tuple(float(v) for v in dim.values))
        return dim
    if dim.values:
        raise ConfigError(f"{where}: '{k}' is a {dim.type} range: give min/max, not 'values'")
    if dim.min is None or dim.max is None:
        raise ConfigError(f"{where}: '{k}' needs 'min' and 'max'")
    if dim.min > dim.max:
        raise ConfigError(f"{where}: '{k}' has min > max ({dim.min} > {dim.max})")
    if dim.min == dim.max:
        raise ConfigError(f"{where}: '{k}' is an empty range (min == max == {dim.min}); "
                          f"pin the value in the base config or a stage's overrides instead")
    if dim.log and dim.min <= 0:
        raise ConfigError(f"{where}: '{k}' is on a log scale, so min must be > 0, got {dim.min}")
    if dim.step is not None and dim.log:
        raise ConfigError(f"{where}: '{k}': 'step' is for linear scales; drop it or 'log'")
    if dim.type == "int":
        for name in ("min", "max", "step"):
            v = getattr(dim, name)
            if v is not None and not float(v).is_integer():
                raise ConfigError(f"{where}: '{k}.{name}' must be an integer for an int range, got {v}")
    return dim


def _leaf_type(cfg: ExperimentConfig, key: str, where: str):
    """Type annotation of dotted ``key`` in ``cfg``; ConfigError if it is no settable key."""
    if key in UNTUNABLE:
        raise ConfigError(f"{where}: 'space.{key}' cannot be tuned (it names or describes the run)")
    node, parts = cfg, key.split(".")
    for i, p in enumerate(parts):
        if isinstance(node, Component):
            node = node.params
        if not dataclasses.is_dataclass(node):
            raise ConfigError(f"{where}: 'space.{key}': '{'.'.join(parts[:i])}' is not a section")
        names = [f.name for f in dataclasses.fields(node)]
        if p not in names:
            prefix = ".".join(parts[:i])
            raise ConfigError(f"{where}: 'space.{key}' is not a key of the base experiment config "
                              f"(known under '{prefix or '(top)'}': {', '.join(sorted(names))})")
        if i == len(parts) - 1:
            tp = typing.get_type_hints(type(node))[p]
            if tp is Component or dataclasses.is_dataclass(tp):
                raise ConfigError(f"{where}: 'space.{key}' is a section, not a value")
            return tp
        node = getattr(node, p)
    raise ConfigError(f"{where}: 'space.{key}' is not a key")  # pragma: no cover


def _without_where(e: ConfigError, where: str) -> str:
    """The message of ``e`` without its leading ``"<where>: "`` (re-raised under a
    key of the tune config, which names the file once)."""
    msg = str(e)
    return msg[len(where) + 2:] if msg.startswith(where + ": ") else msg


def _check_dim_against_base(key, dim, tp, base_raw, where):
    """Type compatibility, then each range end / choice parsed by the base schema."""
    base_tp = tp
    if typing.get_origin(tp) in (Union, types.UnionType):  # Optional[int] -> int
        base_tp = [a for a in typing.get_args(tp) if a is not type(None)][0]
    if dim.type == "float" and base_tp is int:
        raise ConfigError(f"{where}: 'space.{key}' is a float range but '{key}' is an integer; "
                          f"use type 'int' or 'choice'")
    if dim.type in ("float", "int") and base_tp not in (int, float):
        raise ConfigError(f"{where}: 'space.{key}' is a {dim.type} range but '{key}' is not a number; "
                          f"use type 'choice'")
    probes = list(dim.values) if dim.type == "choice" else [dim.min, dim.max]
    if dim.type == "int":
        probes = [int(v) for v in probes]
    for v in probes:
        try:
            config_from_dict(apply_overrides(base_raw, {key: v}, where), where)
        except ConfigError as e:
            raise ConfigError(f"{where}: 'space.{key}' allows {v!r}, which the base config "
                              f"rejects: {_without_where(e, where)}") from None


def resolve_base_path(tune_path: Path, base: str) -> Path:
    p = Path(base)
    if p.is_absolute() or p.is_file():
        return p
    return tune_path.parent / p


def load_base_raw(path: Path, smoke: bool, where: str) -> dict:
    """The base experiment config as a raw dict (``--smoke`` overrides applied)."""
    if not path.is_file():
        raise ConfigError(f"{where}: 'base': experiment config {path} not found")
    raw = read_json_object(path)
    raw.setdefault("name", path.stem)
    if smoke:
        raw = apply_overrides(raw, {**SMOKE_OVERRIDES, **raw.get("smoke", {})}, str(path))
    return raw


def load_tune_config(path: str | Path, smoke: bool = False) -> tuple[TuneConfig, dict]:
    """Parse and check a tune config; returns ``(tune, base_raw)``.

    ``base_raw`` is the base experiment config as a dict. With ``smoke``,
    each stage's overrides are followed by the smoke overrides (the
    experiment's :data:`SMOKE_OVERRIDES` and ``smoke`` section, the tune
    config's ``smoke`` section, the stage's ``smoke.overrides``), and its
    ``smoke.trials`` / ``smoke.hyperband`` replace its trial count / budget.
    Raises ConfigError naming the key and file; nothing runs.
    """
    path = Path(path)
    where = str(path)
    raw = read_json_object(path, "tune config")
    for k in ("name", "path"):
        if k in raw:
            raise ConfigError(f"{where}: unknown key '{k}' (the tune config is named after its file)")
    for k in ("base", "space", "stages"):
        if k not in raw:
            raise ConfigError(f"{where}: missing required key '{k}'")
    if not isinstance(raw["space"], dict) or not raw["space"]:
        raise ConfigError(f"{where}: 'space' must be a non-empty object of dotted keys")
    if not isinstance(raw["stages"], list) or not raw["stages"]:
        raise ConfigError(f"{where}: 'stages' must be a non-empty list")
    space = {k: _parse_dim(k, v, where) for k, v in raw["space"].items()}
    stages = [build_dataclass(Stage, s, f"stages[{i}]", where) for i, s in enumerate(raw["stages"])]
    tune = build_dataclass(TuneConfig, {**raw, "space": {}, "stages": []}, "", where)
    tune = dataclasses.replace(tune, space=space, stages=tuple(stages), name=path.stem, path=where)

    # Stages
    names = [s.name for s in tune.stages]
    for i, st in enumerate(tune.stages):
        k = f"stages[{i}]"
        if not st.name or not st.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"{where}: '{k}.name' must be a non-empty word (letters, digits, _ -), "
                              f"got {st.name!r}")
        if names.count(st.name) > 1:
            raise ConfigError(f"{where}: '{k}.name' {st.name!r} is used by two stages")
        for p in st.pin:
            if p not in space:
                raise ConfigError(f"{where}: '{k}.pin' names {p!r}, which is not in 'space'")
        if i == 0 and st.pin:
            raise ConfigError(f"{where}: '{k}.pin': the first stage has no previous stage to pin from")
        for key in st.overrides:
            if key in space:
                raise ConfigError(f"{where}: '{k}.overrides.{key}' is also in 'space': "
                                  f"a key is either searched or set")

    # Base experiment config, and the space against it
    base_path = resolve_base_path(path, tune.base)
    base_raw = load_base_raw(base_path, False, where)
    base_cfg = config_from_dict(base_raw, str(base_path))
    for key, dim in space.items():
        _check_dim_against_base(key, dim, _leaf_type(base_cfg, key, where), base_raw, where)
    if smoke:
        # --smoke: each stage's budget, then tiny data and few steps on top (the
        # experiment's smoke settings, the tune config's, the stage's own).
        common = {**SMOKE_OVERRIDES, **base_raw.get("smoke", {}), **tune.smoke}
        tune = dataclasses.replace(tune, stages=tuple(
            dataclasses.replace(st, trials=st.smoke.trials or st.trials,
                                overrides={**st.overrides, **common, **st.smoke.overrides},
                                hyperband=st.smoke.hyperband or st.hyperband)
            for st in tune.stages))
    for i, st in enumerate(tune.stages):
        try:
            cfg = config_from_dict(apply_overrides(base_raw, st.overrides, where), where)
        except ConfigError as e:
            raise ConfigError(f"{where}: 'stages[{i}].overrides' ({st.name}): "
                              f"{_without_where(e, where)}") from None
        if tune.objective.kind != "pretext_loss" and cfg.data.validation_images <= 0:
            raise ConfigError(f"{where}: 'objective.kind' {tune.objective.kind!r} scores on the "
                              f"validation split, but stage {st.name!r} has data.validation_images=0")
    return tune, base_raw


def tune_to_dict(tune: TuneConfig) -> dict:
    """Resolved tune config as a JSON-able dict (for ``tune_config.json``)."""
    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return conv(tune)
