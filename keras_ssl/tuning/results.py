"""The rows of a stage: its trials, ranked, as the tables, narrowing and best config read them.

A row is a dict, in this key order (it is written as is to summary.json):
``trial_id``, ``status`` (KerasTuner's ``COMPLETED``, ``FAILED``, ...; or
``BASELINE`` for the base config's own values), ``score`` (the objective, or
None), ``values`` (the searched keys), ``message``, then, when the trial wrote
its ``trial_result.json``, ``steps``, ``seconds`` and ``pretext_loss``.

Ranking: completed trials by score, best first (the objective's goal), then
the others by trial id. The baseline is ranked among the completed trials
when it has a score, else listed last; it is never "completed", so it is
never chosen as the best or narrowed around.
"""
from __future__ import annotations

import json
from typing import Optional

from keras_ssl.tuning.config import Objective
from keras_ssl.tuning.layout import Layout
from keras_ssl.tuning.trials import BASELINE_ID, trial_values


def _add_result(row: dict, layout: Layout, i: int) -> Optional[dict]:
    """Add the trial's own measurements to ``row``; returns its trial_result.json (None
    when the trial did not finish)."""
    path = layout.trial_result(i, row["trial_id"])
    if not path.is_file():
        return None
    extra = json.loads(path.read_text())
    row.update(steps=extra.get("steps"), seconds=extra.get("seconds"),
               pretext_loss=extra.get("pretext_loss"))
    return extra


def _by_score(rows: list[dict], objective: Objective) -> list[dict]:
    return sorted(rows, key=lambda r: r["score"], reverse=objective.goal == "max")


def completed(rows: list[dict]) -> list[dict]:
    """The completed trials of ranked ``rows``, best first."""
    return [r for r in rows if r["status"] == "COMPLETED"]


def stage_rows(oracle, layout: Layout, i: int, objective: Objective) -> list[dict]:
    """The trials of stage ``i`` known to ``oracle``, ranked."""
    rows = []
    for t in oracle.trials.values():
        r = {"trial_id": t.trial_id, "status": t.status, "score": t.score,
             "values": trial_values(t.hyperparameters.values), "message": t.message}
        _add_result(r, layout, i)
        rows.append(r)
    done = _by_score([r for r in rows if r["status"] == "COMPLETED" and r["score"] is not None],
                     objective)
    rest = sorted((r for r in rows if r not in done), key=lambda r: r["trial_id"])
    return done + rest


def with_baseline(rows: list[dict], layout: Layout, i: int, base_values: dict,
                  objective: Objective) -> list[dict]:
    """Ranked ``rows`` with the baseline trial of stage ``i`` (run or failed) added."""
    row = {"trial_id": BASELINE_ID, "status": "BASELINE", "score": None,
           "values": base_values, "message": None}
    extra = _add_result(row, layout, i)
    if extra is not None:
        row["score"] = extra[objective.name]
    scored = completed(rows)
    rest = [r for r in rows if r["status"] != "COMPLETED"]
    if row["score"] is None:
        return scored + rest + [row]
    return _by_score(scored + [row], objective) + rest
