"""Expected results as data: the numbers a finished run of a config must measure, checked.

A config may carry an ``"expected"`` object (:class:`~keras_ssl.config.ExperimentConfig`)::

    "expected": {
      "source": "python -m keras_ssl.train --config configs/mnist_egomotion.json, 2026-12-02",
      "split": "test",
      "tolerance": 0.02,
      "rows": {"frozen_mlp": {"100": 0.858, "10000": [0.978, 0.005]},
               "scratch": {"100": 0.777}}
    }

- ``source`` (required): the command or run, and the date, that measured these numbers;
- ``split``: ``"test"`` (default; ``results.json``) or ``"validation"``
  (``results_validation.json``): the split the means were scored on;
- ``tolerance``: the default allowed ``|measured - expected|`` of a row (default 0.02, > 0);
- ``rows`` (required): protocol (a ``protocol`` of results.json's rows: ``frozen_mlp``,
  ``scratch``, ``finetune``, ``random_frozen``, ``knn``, ``linear:<layer>``,
  ``random_linear:<layer>``) -> label
  count (a JSON key, so a string: ``"100"``) -> the mean over seeds, or
  ``[mean, tolerance]`` for a tolerance of its own.

:func:`parse_expected` reads the object strictly (``ExperimentConfig.validate`` calls it,
so a config with a malformed one does not load); :func:`check_run` compares it with a
results document (``python -m keras_ssl.compare RUN... --check`` reads both from the run
directory: :func:`check_run_dir`, :func:`check_run_dirs`). Imports no TensorFlow.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from keras_ssl.config.fields import ConfigError
from keras_ssl.evaluation.results import results_name

#: The protocols of results.json's rows (evaluation/protocols.py), besides the per-layer ones (:data:`PER_LAYER`).
PROTOCOLS = ("frozen_mlp", "random_frozen", "knn", "scratch", "finetune")
LINEAR = "linear:"
#: The prefixes of per-layer protocols: ``linear:<layer>``, ``random_linear:<layer>``.
PER_LAYER = (LINEAR, "random_linear:")
SPLITS = ("test", "validation")
DEFAULT_TOLERANCE = 0.02
_KEYS = ("rows", "source", "split", "tolerance")
_COUNT = re.compile(r"[1-9][0-9]*")
#: Slack on the tolerance for float rounding (0.858 + 0.02 is not exactly 0.878).
_EPS = 1e-9


@dataclass(frozen=True)
class ExpectedRow:
    """One expected mean: ``protocol`` at ``labels`` label count, ``mean`` ± ``tolerance``
    (the row's own, else the default)."""
    protocol: str
    labels: int
    mean: float
    tolerance: float


@dataclass(frozen=True)
class Expected:
    """A config's ``expected`` object, parsed: ``rows`` in the order the config lists them."""
    source: str
    rows: tuple[ExpectedRow, ...]
    split: str = "test"
    tolerance: float = DEFAULT_TOLERANCE


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_expected(raw: dict, where: str) -> Expected:
    """The :class:`Expected` of a config's ``expected`` object ``raw``.

    Strict: an unknown key (or protocol), a missing ``source`` or ``rows``, a mean that
    is not a number in [0, 1], a tolerance <= 0 or a label count that is not a positive
    integer raises :class:`~keras_ssl.config.ConfigError` naming the dotted key (e.g.
    ``expected.rows.frozen_mlp.100``) and ``where`` (the file; "" when the caller, e.g.
    ``build_dataclass``, names it itself).
    """
    def fail(msg):
        raise ConfigError(f"{where}: {msg}" if where else msg)

    if not isinstance(raw, dict):
        fail(f"'expected' must be an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        fail(f"unknown key 'expected.{unknown[0]}' (known: {', '.join(_KEYS)})")
    source = raw.get("source")
    if "source" not in raw:
        fail("missing required key 'expected.source' (the command or run, and the date, "
             "that measured these numbers)")
    if not isinstance(source, str) or not source.strip():
        fail(f"'expected.source' must be a non-empty string (the command or run, and the date, "
             f"that measured these numbers), got {source!r}")
    split = raw.get("split", "test")
    if split not in SPLITS:
        fail(f"'expected.split' must be one of {list(SPLITS)}, got {split!r}")
    default = raw.get("tolerance", DEFAULT_TOLERANCE)
    if not _number(default) or default <= 0:
        fail(f"'expected.tolerance' must be a number > 0, got {default!r}")
    if "rows" not in raw:
        fail("missing required key 'expected.rows' (protocol -> {label count: mean})")
    table = raw["rows"]
    if not isinstance(table, dict) or not table:
        fail(f"'expected.rows' must be a non-empty object (protocol -> {{label count: mean}}), got {table!r}")
    rows = []
    for protocol, by_count in table.items():
        key = f"expected.rows.{protocol}"
        if protocol not in PROTOCOLS and not (isinstance(protocol, str) and any(
                protocol.startswith(p) and len(protocol) > len(p) for p in PER_LAYER)):
            fail(f"unknown key '{key}': not a protocol of results.json "
                 f"(known: {', '.join(PROTOCOLS)}, " + ", ".join(f"{p}<layer>" for p in PER_LAYER) + ")")
        if not isinstance(by_count, dict) or not by_count:
            fail(f"'{key}' must be a non-empty object (label count -> mean), got {by_count!r}")
        for count, value in by_count.items():
            ckey = f"{key}.{count}"
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                labels = count
            elif isinstance(count, str) and _COUNT.fullmatch(count):
                labels = int(count)
            else:
                fail(f"'{ckey}': a label count must be a positive integer, got {count!r}")
            tolerance = default
            if isinstance(value, list):
                if len(value) != 2:
                    fail(f"'{ckey}' must be a mean or [mean, tolerance], got a list of {len(value)}")
                value, tolerance = value
                if not _number(tolerance) or tolerance <= 0:
                    fail(f"'{ckey}[1]' (its tolerance) must be a number > 0, got {tolerance!r}")
                mkey = f"{ckey}[0]"
            else:
                mkey = ckey
            if not _number(value):
                fail(f"'{mkey}' must be a mean accuracy (a number in [0, 1]) or [mean, tolerance], "
                     f"got {value!r}")
            if not 0.0 <= value <= 1.0:
                fail(f"'{mkey}' must be a mean accuracy in [0, 1], got {value!r}")
            rows.append(ExpectedRow(protocol, labels, float(value), float(tolerance)))
    return Expected(source=source, rows=tuple(rows), split=split, tolerance=float(default))


def check_run(expected: Expected, results: dict) -> list[str]:
    """One line per row of ``expected`` that ``results`` (a results.json document) does
    not meet: the protocol, the label count, the measured mean and the expected mean ±
    tolerance; ``not measured`` when results has no such row. Results scored on another
    split than ``expected.split`` (top-level ``split``, absent: ``"test"``) fail as a
    whole, in one line naming both. Empty: every row is within its tolerance."""
    split = results.get("split", "test")
    if split != expected.split:
        return [f"split: results scored on the {split!r} split, expected on {expected.split!r} "
                f"(expected.split; measured by: {expected.source})"]
    measured = {}
    for r in results.get("rows") or []:
        if isinstance(r, dict) and isinstance(r.get("labels"), (int, float)):
            measured.setdefault((r.get("protocol"), int(r["labels"])), r)
    failures = []
    for row in expected.rows:
        want = f"expected {row.mean:g} ± {row.tolerance:g}"
        got = measured.get((row.protocol, row.labels))
        if got is None:
            failures.append(f"{row.protocol}, {row.labels} labels: not measured ({want})")
            continue
        mean = got.get("mean")
        if not _number(mean):
            failures.append(f"{row.protocol}, {row.labels} labels: measured {mean!r}, {want}")
            continue
        if abs(mean - row.mean) > row.tolerance + _EPS:
            seeds = len(got.get("values") or [])
            over = f" over {seeds} seed{'s' * (seeds != 1)}" if seeds else ""
            failures.append(f"{row.protocol}, {row.labels} labels: measured {mean:.4f}{over}, {want} "
                            f"(off by {mean - row.mean:+.4f})")
    return failures


class CheckError(ValueError):
    """A run directory that cannot be checked; the message names the file."""


def _read(path: Path, what: str):
    if not path.is_file():
        raise CheckError(f"{path}: not found: {what}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None


def check_run_dir(run_dir, expected_config=None) -> list[str]:
    """The failing lines (:func:`check_run`) of a finished run against the ``expected`` of
    its resolved config ``RUN/config.json`` (or of ``expected_config``, a config file: for
    a run made before its config stated results), read from its results on
    ``expected.split`` (results.json or results_validation.json); empty: OK. CheckError
    when the run cannot be checked (no config, no ``expected`` in it, no results),
    ConfigError when its ``expected`` is malformed."""
    run_dir = Path(run_dir)
    if expected_config is None:
        cfg_path = run_dir / "config.json"
        cfg = _read(cfg_path, "--check reads the expected results from the run's resolved config, "
                              "which python -m keras_ssl.train writes there")
    else:
        cfg_path = Path(expected_config)
        cfg = _read(cfg_path, "the config file given by --expected")
    raw = cfg.get("expected") if isinstance(cfg, dict) else None
    if not raw:
        state = "absent" if raw is None else f"{raw!r}"
        hint = ("or check the run against its config file with --expected configs/NAME.json"
                if expected_config is None else "")
        raise CheckError(f"{cfg_path}: no expected results to check: key 'expected' is {state}; add an "
                         f"\"expected\" object to the config (keras_ssl/evaluation/expected.py), "
                         f"{hint or 'or leave the run out of --check'}")
    expected = parse_expected(raw, str(cfg_path))
    how = ("" if expected.split == "test" else
           "; expected.split is 'validation': evaluate with --set eval.split=validation")
    results = _read(run_dir / f"{results_name(expected.split)}.json",
                    f"the run has not finished its evaluation{how}")
    if not isinstance(results, dict) or not isinstance(results.get("rows"), list):
        raise CheckError(f"{run_dir / results_name(expected.split)}.json: no 'rows' list: "
                         f"not a results document written by keras_ssl.train")
    return check_run(expected, results)


def check_run_dirs(run_dirs, out=print, err=print, expected_config=None) -> int:
    """``compare --check``: ``RUN: OK`` or one ``RUN: <failing line>`` per failing row (to
    ``out``), the runs that cannot be checked to ``err``; returns the exit code: 2 if a
    run cannot be checked, else 1 if a run fails, else 0. ``expected_config``: check
    every run against that config file's ``expected`` instead of its own."""
    code = 0
    for d in run_dirs:
        try:
            failures = check_run_dir(d, expected_config)
        except (CheckError, ConfigError) as e:
            err(f"error: {e}")
            code = 2
            continue
        for line in failures or ["OK"]:
            out(f"{d}: {line}")
        if failures:
            code = max(code, 1)
    return code
