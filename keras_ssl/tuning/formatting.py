"""How a sweep shows values: in its log lines, its markdown tables and best_config's description.

Floats are shown with 4 significant digits (:func:`fmt`); the files keep the
full values (trials.csv, summary.json, trial_result.json).
"""
from __future__ import annotations

from typing import Any

from keras_ssl.tuning.space import Dim, Fixed


def fmt(v: Any) -> str:
    """A value as shown to a reader (floats to 4 significant digits)."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_values(values: dict) -> str:
    """``"key=value, ..."`` of a trial's searched values."""
    return ", ".join(f"{k}={fmt(v)}" for k, v in values.items())


def describe_space(space: dict[str, Dim]) -> str:
    """A stage's space in one line: ranges, choices and pinned values."""
    parts = []
    for k, d in space.items():
        if isinstance(d, Fixed):
            parts.append(f"{k}={fmt(d.value)} (fixed)")
        elif d.type == "choice":
            parts.append(f"{k} in {list(d.values)}")
        else:
            parts.append(f"{k} in [{fmt(d.min)}, {fmt(d.max)}]{' log' if d.log else ''}")
    return "; ".join(parts)


def markdown_table(head: list[str], rows: list[list]) -> str:
    """A markdown table; None cells are empty."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join("" if v is None else fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"
