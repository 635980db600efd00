"""One comparison table of finished runs: ``python -m keras_ssl.compare``.

    python -m keras_ssl.compare runs/* [--out DIR] [--protocol frozen_mlp] [--skip-missing]

Reads ``results.json`` (and, when present, ``summary.json`` and
``pretext.json``) of every run directory and writes, under ``--out``
(default ``comparison/``):

- ``comparison.md``: rows = runs (named by their config), columns = label
  counts, cells = mean ± std over seeds of the chosen protocol (default
  ``frozen_mlp``, the thesis protocol), then the baselines the runs
  measured (from scratch; random encoder, frozen), then the thesis's rows beside them; a second table lists
  each run's pretext: steps, batch, throughput (examples per second over
  the whole pretraining), final pretext metrics
  (e.g. jigsaw accuracy), facts the pretext saved (e.g. the permutation set's
  Hamming distances) and the accuracy at the smallest label count; a third
  compares every run with from-scratch seed by seed (a seed draws the same
  labeled subset in every run, so the paired difference leaves out the luck
  of the subset): mean difference ± standard error and seeds won;
- ``comparison.csv``: the first table, one column per (label count, mean/std/n);
- ``comparison.png``: accuracy against label count (log x axis), error bars
  = std over seeds, thesis rows dashed.

Nothing here knows about particular methods: every run is read the same way.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Optional

from keras_ssl.evaluation.reference import LABEL_COUNTS, thesis_by_count
from keras_ssl.evaluation.results import mean_std
from keras_ssl.files import write_text_atomic

SCRATCH = "scratch"
#: Protocols that measure a baseline rather than the run's encoder, and the row name each gets.
BASELINES = {SCRATCH: "from scratch", "random_frozen": "random encoder, frozen"}


#: The throughput in a run's final pretraining metrics; ``pairs_per_s`` in runs made before
#: the rename to ``examples_per_s``.
RATE_KEYS = ("examples_per_s", "pairs_per_s")


class CompareError(ValueError):
    """A run directory that cannot be compared; the message names it."""


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CompareError(f"{path}: invalid JSON ({e.msg} at line {e.lineno}); {what}") from None


def load_run(run_dir) -> dict:
    """The comparable facts of one run; CompareError when it has no results."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CompareError(f"{run_dir}: not a directory")
    res_path = run_dir / "results.json"
    if not res_path.is_file():
        raise CompareError(f"{run_dir}: no results.json (the run has not finished its evaluation, or "
                           f"ran with --skip-eval); finish it with the same python -m keras_ssl.train "
                           f"command, or leave it out / pass --skip-missing")
    results = _read_json(res_path, "rerun the evaluation")
    if not isinstance(results, dict) or not isinstance(results.get("rows"), list):
        raise CompareError(f"{res_path}: no 'rows' list: not a results.json written by keras_ssl.train")
    run = {"dir": str(run_dir), "name": results.get("config") or run_dir.name,
           "rows": results["rows"], "pretrain": results.get("pretrain", {}),
           "protocol": results.get("protocol", {}), "summary": {}, "pretext": {}}
    if (run_dir / "summary.json").is_file():
        run["summary"] = _read_json(run_dir / "summary.json", "the run did not finish cleanly")
    if (run_dir / "pretext.json").is_file():
        run["pretext"] = _read_json(run_dir / "pretext.json", "written by the pretext's save()")
    return run


def _display_name(run: dict, runs: list[dict]) -> str:
    """The run's config name; with its directory when another of ``runs`` has the same name."""
    if sum(r["name"] == run["name"] for r in runs) == 1:
        return run["name"]
    return f"{run['name']} ({run['dir']})"


def _cells(rows, protocol, exclude_method=None) -> dict:
    return {int(r["labels"]): r for r in rows if r.get("protocol") == protocol
            and (exclude_method is None or r.get("method") != exclude_method)}


def build_table(runs: list[dict], protocol: str = "frozen_mlp", thesis: bool = True) -> dict:
    """Rows of the comparison: ``{"counts": [...], "rows": [{name, source, cells}]}``.

    ``cells``: label count -> {mean, std, n}. Measured rows first (one per run,
    then each baseline of ``BASELINES``: a single row when every run measured the
    same numbers, else one per run), then the thesis's rows.
    """
    rows, counts = [], set()
    for run in runs:
        cells = _cells(run["rows"], protocol)
        if not cells:
            known = sorted({r.get("protocol") for r in run["rows"]})
            raise CompareError(f"{run['dir']}: no '{protocol}' rows in results.json (has: {', '.join(known)})")
        name = _display_name(run, runs)
        rows.append({"name": name, "source": "measured", "protocol": protocol,
                     "cells": {n: _stat(r) for n, r in cells.items()}})
        counts.update(cells)
    for baseline, title in BASELINES.items():
        measured = [(run["name"], {n: _stat(r) for n, r in _cells(run["rows"], baseline).items()})
                    for run in runs]
        distinct = []
        for name, cells in measured:
            if cells and not any(cells == other for _, other in distinct):
                distinct.append((name, cells))
        for name, cells in distinct:
            label = title if len(distinct) == 1 else f"{title} [{name}]"
            rows.append({"name": label, "source": "measured", "protocol": baseline, "cells": cells})
    if thesis and counts & set(LABEL_COUNTS):
        for name, ref in thesis_by_count().items():
            rows.append({"name": f"thesis: {name}", "source": "thesis", "protocol": "reported",
                         "cells": {n: {"mean": v, "std": None, "n": None} for n, v in ref.items()}})
    return {"counts": sorted(counts), "rows": rows}


def _stat(r: dict) -> dict:
    return {"mean": float(r["mean"]), "std": float(r["std"]), "n": len(r.get("values", [])) or 1}


def _fmt(cell: Optional[dict]) -> str:
    return "-" if cell is None else mean_std(cell["mean"], cell["std"], cell["n"])


def _by_seed(run: dict, protocol: str) -> dict:
    """label count -> {seed: accuracy} of one protocol's rows (seeds from the run's protocol)."""
    out = {}
    for n, r in _cells(run["rows"], protocol).items():
        values = r.get("values") or []
        seeds = run["protocol"].get("seeds") or list(range(len(values)))
        if len(seeds) == len(values):
            out[n] = dict(zip(seeds, values))
    return out


def paired_rows(runs: list[dict], protocol: str, baseline: str = SCRATCH) -> list[dict]:
    """Per run and label count: the run's accuracy minus ``baseline``'s, seed by seed.

    The baseline is the run's own when it measured one, else the one every
    other run that measured it agrees on; only runs drawing their subsets from
    the same labeled pool are paired, and only on the seeds both have.
    ``cells``: label count -> {diff, se (None for one seed), wins, n}.
    """
    def pool(run):
        return run["protocol"].get("labeled_pool"), run["protocol"].get("validation_images")

    measured = [(pool(run), _by_seed(run, baseline)) for run in runs]
    measured = [m for m in measured if m[1]]
    out = []
    for run in runs:
        own = _by_seed(run, baseline)
        if not own:
            shared = [b for p, b in measured if p == pool(run)]
            if not shared or any(b != shared[0] for b in shared):
                continue
            own = shared[0]
        cells = {}
        for n, acc in _by_seed(run, protocol).items():
            seeds = [s for s in acc if s in own.get(n, {})]
            if not seeds:
                continue
            d = [acc[s] - own[n][s] for s in seeds]
            mean = sum(d) / len(d)
            se = (math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d))
                  if len(d) > 1 else None)
            cells[n] = {"diff": mean, "se": se, "wins": sum(x > 0 for x in d), "n": len(d)}
        if cells:
            name = _display_name(run, runs)
            out.append({"name": name, "cells": cells})
    return out


def _fmt_paired(cell: Optional[dict]) -> str:
    if cell is None:
        return "-"
    se = "" if cell["se"] is None else f" ± {cell['se']:.3f}"
    return f"{cell['diff']:+.3f}{se} ({cell['wins']}/{cell['n']})"


def pretext_rows(runs: list[dict], protocol: str, first_count: int) -> list[dict]:
    """Per run: pretraining facts and final pretext metrics (whatever the run logged)."""
    out = []
    for run in runs:
        name = _display_name(run, runs)
        pre = run["summary"].get("pretrain", {}) if isinstance(run["summary"], dict) else {}
        final = pre.get("final", {}) or {}
        metrics = {k: v for k, v in final.items() if k not in ("loss", "learning_rate", *RATE_KEYS)}
        acc = _cells(run["rows"], protocol).get(first_count)
        pretext_name = next((r["method"] for r in run["rows"] if r.get("protocol") == protocol), "")
        out.append({"name": name, "pretext": pretext_name, "method": run["pretrain"].get("method", ""),
                    "steps": run["pretrain"].get("steps"), "batch": run["pretrain"].get("batch_size"),
                    "seconds": pre.get("seconds"), "examples_per_s": _rate(run["pretrain"], pre),
                    "final_loss": final.get("loss"), "metrics": metrics, "facts": run["pretext"],
                    "accuracy": acc["mean"] if acc else None})
    return out


def _rate(pretrain: dict, pre: dict):
    """Pretext examples (pairs, puzzles, images) per second over the whole pretraining."""
    steps = (pretrain.get("steps") or 0) - (pre.get("start_step") or 0)
    if pre.get("seconds") and pretrain.get("batch_size") and steps > 0:
        return steps * pretrain["batch_size"] / pre["seconds"]
    final = pre.get("final") or {}
    return next((final[k] for k in RATE_KEYS if k in final), None)


def _num(v, fmt="{:.3g}"):
    if v is None:
        return "-"
    return fmt.format(v) if isinstance(v, (int, float)) else str(v)


def markdown(table: dict, pre: list[dict], protocol: str, title: str = "Few-label test accuracy",
             paired: Optional[list[dict]] = None) -> str:
    counts = table["counts"] or list(LABEL_COUNTS)
    lines = [f"## {title}", "",
             f"Protocol `{protocol}` (baseline rows: " + ", ".join(f"`{b}`" for b in BASELINES) + "); mean ± std over seeds; "
             "thesis rows as published (Torti López 2017).", "",
             "| run | " + " | ".join(f"{c} labels" for c in counts) + " |",
             "|---|" + "---:|" * len(counts)]
    for row in table["rows"]:
        lines.append(f"| {row['name']} | " + " | ".join(_fmt(row["cells"].get(c)) for c in counts) + " |")
    if pre:
        first = counts[0]
        lines += ["", "## Pretext", "",
                  f"| run | pretext | method | steps x batch | pretrain s | examples/s | final loss | "
                  f"pretext metrics (last log window) | pretext facts | {first} labels |",
                  "|---|---|---|---|---:|---:|---:|---|---|---:|"]
        for p in pre:
            metrics = ", ".join(f"{k} {v:.3f}" for k, v in p["metrics"].items()) or "-"
            facts = ", ".join(f"{k} {v}" for k, v in p["facts"].items()) or "-"
            lines.append(f"| {p['name']} | {p['pretext']} | {p['method']} | {_num(p['steps'], '{}')} x "
                         f"{_num(p['batch'], '{}')} | {_num(p['seconds'], '{:.0f}')} | "
                         f"{_num(p['examples_per_s'], '{:.0f}')} | {_num(p['final_loss'], '{:.4g}')} | "
                         f"{metrics} | {facts} | {_num(p['accuracy'], '{:.3f}')} |")
    if paired:
        lines += ["", "## Against from scratch, seed by seed", "",
                  f"`{protocol}` accuracy minus from-scratch's on the same labeled subset (same seed): "
                  "mean ± standard error over the seeds both measured, (seeds won / seeds).", "",
                  "| run | " + " | ".join(f"{c} labels" for c in counts) + " |",
                  "|---|" + "---:|" * len(counts)]
        for row in paired:
            lines.append(f"| {row['name']} | " + " | ".join(_fmt_paired(row["cells"].get(c)) for c in counts) + " |")
    return "\n".join(lines) + "\n"


def write_csv(table: dict, path: Path) -> None:
    counts = table["counts"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "source", "protocol"] + [f"{c}_{k}" for c in counts for k in ("mean", "std", "n")])
        for row in table["rows"]:
            vals = []
            for c in counts:
                cell = row["cells"].get(c)
                vals += ["", "", ""] if cell is None else [
                    f"{cell['mean']:.4f}", "" if cell["std"] is None else f"{cell['std']:.4f}",
                    "" if cell["n"] is None else cell["n"]]
            w.writerow([row["name"], row["source"], row["protocol"]] + vals)


def plot(table: dict, path: Path, title: str = "Few-label MNIST test accuracy") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for row in table["rows"]:
        xs = sorted(row["cells"])
        ys = [row["cells"][x]["mean"] for x in xs]
        if row["source"] == "thesis":
            ax.plot(xs, ys, linestyle="--", marker="x", alpha=0.6, label=row["name"])
            continue
        style = {"marker": "o"}
        if row["protocol"] in BASELINES:    # grey, dotted: baselines, not methods
            style = {"marker": "s", "linestyle": ":", "color": "0.35" if row["protocol"] == SCRATCH else "0.6"}
        err = [row["cells"][x]["std"] or 0.0 for x in xs]
        ax.errorbar(xs, ys, yerr=err, capsize=3, label=row["name"], **style)
    ax.set_xscale("log")
    ticks = sorted({x for row in table["rows"] for x in row["cells"]})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labeled training images (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(run_dirs, out_dir, protocol: str = "frozen_mlp", skip_missing: bool = False,
            thesis: bool = True, log=print) -> dict:
    """Write comparison.md/.csv/.png for ``run_dirs`` under ``out_dir``; returns the table."""
    if not run_dirs:
        raise CompareError("no run directories given (e.g. python -m keras_ssl.compare runs/*)")
    runs = []
    for d in run_dirs:
        try:
            runs.append(load_run(d))
        except CompareError as e:
            if not skip_missing or Path(d, "results.json").is_file():
                raise
            log(f"skipped: {e}")
    if not runs:
        raise CompareError("none of the run directories has a results.json")
    table = build_table(runs, protocol, thesis)
    pre = pretext_rows(runs, protocol, table["counts"][0])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paired = paired_rows(runs, protocol)
    md = markdown(table, pre, protocol, paired=paired)
    write_text_atomic(out / "comparison.md", md)
    write_csv(table, out / "comparison.csv")
    plot(table, out / "comparison.png")
    return {"table": table, "pretext": pre, "paired": paired, "markdown": md, "out": str(out)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_ssl.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories (each with a results.json)")
    p.add_argument("--out", default="comparison", help="output directory (default: comparison/)")
    p.add_argument("--protocol", default="frozen_mlp",
                   help="evaluation protocol to tabulate: frozen_mlp (default), knn, linear:<layer>")
    p.add_argument("--skip-missing", action="store_true",
                   help="leave out directories without results.json instead of failing")
    p.add_argument("--no-thesis", action="store_true", help="do not add the thesis's rows")
    args = p.parse_args(argv)
    try:
        res = compare(args.runs, args.out, args.protocol, args.skip_missing, not args.no_thesis)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(res["markdown"])
    print(f"wrote {res['out']}/comparison.md, comparison.csv, comparison.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
