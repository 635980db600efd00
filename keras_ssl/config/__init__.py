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

The package: :mod:`.fields` (strict conversion), :mod:`.sections` (the
dataclasses), this module (loading, overrides, back to JSON).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

# Re-exported: a component (registry entry + its Params) is a config value too.
from keras_ssl.registry import Component, Params, component, components  # noqa: F401
from keras_ssl.config.fields import (ConfigError, build_dataclass, check_range, num)  # noqa: F401
from keras_ssl.config.sections import (SMOKE_OVERRIDES, DataConfig, EvalConfig,  # noqa: F401
                                       ExperimentConfig, ExportConfig, TrainConfig)


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
