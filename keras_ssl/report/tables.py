"""README-ready Markdown tables and the accuracy-vs-labels plots, one set per scored split.

Nothing is computed here. The per-run table is the run's own
(:func:`keras_ssl.evaluation.results.results_markdown`, the thesis's rows
beneath); the combined table of every run for one protocol is
``python -m keras_ssl.compare``'s, run once per split
(:func:`keras_ssl.evaluation.compare.compare`, which writes its
``comparison.md/.csv/.png`` under ``--out/combined/<split>/``); a run's own
plot is compare's ``build_table`` + ``plot`` of that run alone. ``tables.md``
files start with the command that wrote them; every title names its split
(``test``: results.json; ``validation``: results_validation.json). Imports no
TensorFlow.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from keras_ssl.evaluation import compare
from keras_ssl.evaluation.results import RESULTS_NAMES, results_markdown
from keras_ssl.files import atomic_path
from keras_ssl.report.outputs import Outputs
from keras_ssl.report.run import SPLITS, ReportError, RunInputs

PROG = "python -m keras_ssl.report"
#: The folder under ``--out`` of the combined tables (no run's folder takes this name).
COMBINED = "combined"
#: What compare writes per split, and how the index describes it.
COMPARE_FILES = {"comparison.md": "the combined tables as python -m keras_ssl.compare writes them",
                 "comparison.csv": "the combined table as CSV (label count x mean/std/n)",
                 "comparison.png": "accuracy against label count of every run (compare's plot)"}


def command_line(argv) -> str:
    """The command as a user would type it again."""
    return " ".join([PROG, shlex.join([str(a) for a in argv])]).strip()


def header(command: str) -> str:
    return f"Written by `{command}`.\n\n"


def run_markdown(run: RunInputs, command: str = "") -> str:
    """The run's results table per split it was scored on, the thesis's rows beneath
    (``command``: written first, when given)."""
    parts = [header(command)] if command else []
    for split in SPLITS:
        doc = run.results.get(split)
        if doc is None:
            continue
        try:
            parts.append(results_markdown(doc, title=f"{run.label}: few-label accuracy, {split} split"))
        except (KeyError, TypeError) as e:
            raise ReportError(f"{run.dir / (RESULTS_NAMES[split] + '.json')}: its 'protocol' lacks {e} "
                              f"(not a results file this version of keras_ssl.train writes)") from None
        parts.append("\n")
    return "".join(parts).rstrip() + "\n"


def combined(runs: list[RunInputs], protocol: str, outputs: Outputs, log=print) -> dict:
    """split -> compare's result (``table``, ``markdown``...) over every run scored on that split;
    compare's files are written under ``--out/combined/<split>/`` and listed."""
    out = {}
    for split in SPLITS:
        members = [r.dir for r in runs if split in r.results]
        if not members:
            continue
        folder = outputs.out / COMBINED / split
        try:
            out[split] = compare.compare(members, folder, protocol, log=log, split=split)
        except compare.CompareError as e:
            raise ReportError(str(e)) from None
        for name, what in COMPARE_FILES.items():
            if (folder / name).is_file():
                outputs.record(folder / name, f"{what}; `{protocol}`, {split} split")
    return out


def write_combined(runs: list[RunInputs], protocol: str, outputs: Outputs, log=print) -> dict:
    """``--out/tables.md``: the combined table per split, then every run's own tables."""
    tables = combined(runs, protocol, outputs, log)
    parts = [header(outputs.command), "# Combined\n\n"]
    parts += [t["markdown"] + "\n" for t in tables.values()]
    for run in runs:
        parts += [f"# {run.label} ({run.dir})\n\n", run_markdown(run) + "\n"]
    outputs.write_text(outputs.out / "tables.md", "".join(parts).rstrip() + "\n",
                       f"`{protocol}` accuracy of every run per label count (baselines and thesis rows "
                       f"beside; {', '.join(tables)} split), then each run's own tables")
    return tables


def plot_name(split: str) -> str:
    return "accuracy_vs_labels.png" if split == "test" else f"accuracy_vs_labels_{split}.png"


def write_run(run: RunInputs, protocol: str, outputs: Outputs, folder: Path) -> None:
    """The run's ``tables.md`` and one accuracy-vs-labels plot per split under ``folder``."""
    outputs.write_text(folder / "tables.md", run_markdown(run, outputs.command),
                       f"{run.label}: results table per protocol and label count "
                       f"({', '.join(run.results)} split), thesis rows beneath")
    for split in SPLITS:
        if split not in run.compare_runs:
            continue
        try:
            table = compare.build_table([run.compare_runs[split]], protocol)
        except compare.CompareError as e:
            raise ReportError(str(e)) from None
        path = folder / plot_name(split)
        with atomic_path(path) as tmp:
            compare.plot(table, tmp, f"{run.label}: few-label {split} accuracy", split)
        outputs.record(path, f"{run.label}: `{protocol}` {split} accuracy against label count, "
                             f"baselines and thesis rows beside (compare's plot)")
