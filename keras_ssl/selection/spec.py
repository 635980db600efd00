"""The selection file: base config, variants, criterion, shared overrides.

    {"description": "...", "base": "../mnist_egomotion.json",
     "criterion": {"protocol": "frozen_mlp", "labels": [100, 1000]},
     "set": {"eval.linear_probe": false},
     "variants": [{"name": "multiscale", "set": {}},
                  {"name": "last", "set": {"encoder.features": "last"}}],
     "cost": "...", "result": "..."}

Contract: ``base`` is relative to the selection file; ``variants`` holds at
least two, with unique names made of letters, digits, ``_``, ``-`` and ``.``
(each names its run directory); every variant's config (base + ``set`` +
the variant's ``set`` + ``eval.split: "validation"``) loads strictly, so a
bad key fails before any work, naming the file and the variant. The
criterion is the mean, over ``criterion.labels`` (default: every label count
of the config), of the seed-mean validation accuracy of ``criterion.protocol``
(default ``frozen_mlp``); higher wins, the first variant listed wins ties.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from keras_ssl.config import SMOKE_OVERRIDES, ConfigError, ExperimentConfig, load_config, read_json_object

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
_KEYS = {"description", "base", "criterion", "set", "variants", "cost", "result"}


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict          # the variant's own overrides (as listed in the file)
    config: ExperimentConfig  # the resolved config it runs


@dataclass(frozen=True)
class Selection:
    path: Path
    name: str                # the file's stem: names the runs' parent directory
    base: Path
    protocol: str
    labels: tuple[int, ...]
    shared: dict
    variants: tuple[Variant, ...]
    description: str = ""


def _overrides(value, key: str, where: str) -> dict:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{where}: '{key}' must be an object of dotted keys -> values")
    return dict(value)


def load_selection(path: str | Path, smoke: bool = False) -> Selection:
    """Parse and check a selection file; ConfigError naming the file and key otherwise."""
    path = Path(path)
    where = str(path)
    raw = read_json_object(path, "selection")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(sorted(_KEYS))})")
    for key in ("base", "variants"):
        if key not in raw:
            raise ConfigError(f"{where}: missing required key '{key}'")
    if not isinstance(raw["base"], str):
        raise ConfigError(f"{where}: 'base' must be the path of an experiment config")
    base = (path.parent / raw["base"]).resolve()
    if not base.is_file():
        raise ConfigError(f"{where}: 'base': {raw['base']} not found (resolved to {base})")
    crit = raw.get("criterion", {})
    if not isinstance(crit, dict) or set(crit) - {"protocol", "labels"}:
        raise ConfigError(f"{where}: 'criterion' must be an object with 'protocol' and/or 'labels'")
    protocol = crit.get("protocol", "frozen_mlp")
    if not isinstance(protocol, str):
        raise ConfigError(f"{where}: 'criterion.protocol' must be a protocol name, e.g. 'frozen_mlp'")
    shared = _overrides(raw.get("set", {}), "set", where)
    variants_raw = raw["variants"]
    if not isinstance(variants_raw, list) or len(variants_raw) < 2:
        raise ConfigError(f"{where}: 'variants' must list at least two variants")
    variants, seen = [], set()
    for i, v in enumerate(variants_raw):
        key = f"variants[{i}]"
        if not isinstance(v, dict) or set(v) - {"name", "set"} or "name" not in v:
            raise ConfigError(f"{where}: '{key}' must be an object with 'name' and 'set'")
        name = v["name"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ConfigError(f"{where}: '{key}.name' must match {NAME_RE.pattern}, got {name!r}")
        if name in seen:
            raise ConfigError(f"{where}: '{key}.name': {name!r} is listed twice")
        seen.add(name)
        own = _overrides(v.get("set", {}), f"{key}.set", where)
        sets = {**shared, **own, "eval.split": "validation"}
        if smoke:   # --smoke's budget (steps, data, label counts) wins over a variant's own
            sets = {k: val for k, val in sets.items() if k not in SMOKE_OVERRIDES}
        try:
            cfg = load_config(base, sets, smoke=smoke)
        except ConfigError as e:
            raise ConfigError(f"{where}: variant {name!r}: {e}") from None
        if not cfg.data.validation_images:
            raise ConfigError(f"{where}: variant {name!r}: data.validation_images is 0: nothing to score on")
        variants.append(Variant(name, own, cfg))
    labels = crit.get("labels", list(variants[0].config.eval.label_counts))
    if (not isinstance(labels, list) or not labels
            or not all(isinstance(n, int) and not isinstance(n, bool) for n in labels)):
        raise ConfigError(f"{where}: 'criterion.labels' must be a list of label counts")
    for v in variants:
        missing = sorted(set(labels) - set(v.config.eval.label_counts))
        if missing and not smoke and not v.config.eval.per_class:   # per_class: counts known at evaluation
            raise ConfigError(f"{where}: variant {v.name!r}: criterion.labels {missing} not in its "
                              f"eval.label_counts {list(v.config.eval.label_counts)}")
    if smoke:   # --smoke shrinks the label counts: the criterion uses what it measures
        labels = list(variants[0].config.eval.label_counts)
    return Selection(path=path, name=path.stem, base=base, protocol=protocol, labels=tuple(labels),
                     shared=shared, variants=tuple(variants), description=str(raw.get("description", "")))
