"""What a sweep leaves to read: each stage's ranked table, the best config, the summary.

Files (see :mod:`keras_ssl.tuning.layout`):

- ``<stage>/trials.csv`` and ``trials.md``: one row per trial (rank, trial,
  status, objective, pretext_loss, steps, seconds, one column per searched
  key); rank counts completed trials only, the baseline's rank is ``base``.
- ``best_config.json``: the base config (its own budget and ``smoke``
  section, not a stage's overrides) with the best completed trial of the
  **last** stage applied, named ``<base>_tuned``; it must parse as an
  experiment config, else ConfigError.
- ``summary.md`` (the tables and the best trial) and ``summary.json`` (the
  rows of every stage, the best trial, wall time).
"""
from __future__ import annotations

import csv
import io

from keras_ssl.config import ConfigError, apply_overrides, config_from_dict
from keras_ssl.files import write_json_atomic, write_text_atomic
from keras_ssl.tuning.config import TuneConfig
from keras_ssl.tuning.formatting import format_values, markdown_table
from keras_ssl.tuning.layout import Layout
from keras_ssl.tuning.results import completed


def stage_table(tune: TuneConfig, rows: list[dict]) -> tuple[list[str], list[list]]:
    """(header, cells) of a stage's ranked ``rows``."""
    keys = list(tune.space)
    head = ["rank", "trial", "status", tune.objective.name, "pretext_loss", "steps",
            "seconds"] + keys
    cells, n = [], 0
    for r in rows:
        done = r["status"] == "COMPLETED"
        n += done
        rank = n if done else ("base" if r["status"] == "BASELINE" else "-")
        cells.append([rank, r["trial_id"], r["status"], r["score"],
                      r.get("pretext_loss"), r.get("steps"),
                      None if r.get("seconds") is None else round(r["seconds"], 1)]
                     + [r["values"].get(k) for k in keys])
    return head, cells


def write_stage_table(layout: Layout, tune: TuneConfig, i: int, rows: list[dict]) -> str:
    """Write stage ``i``'s trials.csv and trials.md; returns the markdown."""
    head, cells = stage_table(tune, rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(head)
    w.writerows([["" if v is None else v for v in row] for row in cells])
    write_text_atomic(layout.trials_table(i, ".csv"), buf.getvalue())
    stage = tune.stages[i]
    total = sum(r.get("seconds") or 0.0 for r in rows)
    md = (f"### Stage {stage.name}: {stage.tuner}, objective {tune.objective.name} "
          f"({tune.objective.goal}); trials' total time {total:.0f} s\n\n"
          + markdown_table(head, cells))
    write_text_atomic(layout.trials_table(i, ".md"), md)
    return md


def best_config(layout: Layout, tune: TuneConfig, base_raw: dict, last_rows: list[dict], *,
                smoke: bool) -> tuple[dict, dict]:
    """(config, row) of the best trial of the last stage: ``base_raw`` (without
    --smoke overrides) + its values; ConfigError if that stage completed none."""
    last = tune.stages[-1].name
    best = next(iter(completed(last_rows)), None)
    if best is None:
        raise ConfigError(f"the last stage ({last}) has no completed trial")
    raw = apply_overrides(base_raw, best["values"], tune.path)
    raw = {"name": f"{base_raw['name']}_tuned", **{k: v for k, v in raw.items() if k != "name"}}
    raw["description"] = (
        f"{base_raw.get('description', '')} Tuned by python -m keras_ssl.tune --config "
        f"{tune.path}{' --smoke' if smoke else ''} (stage {last}, "
        f"trial {best['trial_id']}, {tune.objective.name} = {best['score']:.4f}): "
        f"{format_values(best['values'])}.").strip()
    config_from_dict(raw, str(layout.best_config))  # must parse as is
    return raw, best


def write_summary(layout: Layout, tune: TuneConfig, results: dict[int, list[dict]], best: dict, *,
                  smoke: bool, seconds: float) -> dict:
    """Write summary.md (the stage tables already written) and summary.json; returns the latter."""
    tables = "\n".join(layout.trials_table(i, ".md").read_text() for i in range(len(tune.stages)))
    md = (f"# Sweep {tune.name}{' (smoke)' if smoke else ''}\n\n"
          f"Base config: {tune.base}; objective: {tune.objective.name} "
          f"({tune.objective.goal}), on the validation split; wall time this session: "
          f"{seconds:.0f} s.\n\n{tables}\nBest: stage {tune.stages[-1].name} "
          f"trial {best['trial_id']}, {tune.objective.name} = {best['score']:.4f}; "
          f"written to {layout.best_config}\n")
    write_text_atomic(layout.summary_md, md)
    summary = {"tune_config": tune.path, "run_dir": str(layout.run_dir),
               "objective": tune.objective.name, "best": best,
               "best_config": str(layout.best_config), "seconds": seconds,
               "stages": {s.name: results[i] for i, s in enumerate(tune.stages)}}
    write_json_atomic(layout.summary_json, summary, default=str)
    return summary
