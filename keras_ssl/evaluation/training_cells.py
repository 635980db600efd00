"""The "training" column of :func:`.compare.build_table`: what each row was trained with
(a run's pretraining, a baseline's budget), read from the run's results.json."""
from __future__ import annotations


def _steps(n) -> str:
    """20000 -> "20K", 2500 -> "2.5K", 125 -> "125"."""
    return f"{n / 1000:g}K" if n >= 1000 else f"{n}"


def pretraining_cell(run: dict, encoder: bool = False) -> str:
    """The first table's "training" cell of a run: its pretraining, steps x batch; with
    ``encoder`` (the table's runs differ in it), the encoder's name too."""
    steps, batch = run["pretrain"].get("steps"), run["pretrain"].get("batch_size")
    cell = f"{_steps(steps)} x {batch}" if steps and batch else "-"
    return f"{cell}, {run['pretrain'].get('encoder') or '?'}" if encoder else cell


def baseline_cell(baseline: str, run: dict) -> str:
    """The "training" cell of a baseline row, from the protocol of the run that measured it."""
    if baseline != "scratch":
        return "none (random init)"
    steps = run["protocol"].get("scratch_steps")
    return f"{_steps(steps)} steps, all layers" if steps else "all layers"
