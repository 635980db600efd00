"""One comparison table of finished runs, and the check of a run against its expected results.

    python -m keras_ssl.compare runs/* [--out DIR] [--protocol frozen_mlp] [--split test]
                                       [--skip-missing] [--no-thesis] [--sort LABELS]
    python -m keras_ssl.compare runs/* --check [--out DIR] [--expected configs/NAME.json]
    python -m keras_ssl.compare runs/NAME --keep docs/runs [--check]

Reads ``results.json`` (``--split validation``: ``results_validation.json``, the
scores on the validation split; the tables' titles say which) and, when present,
``summary.json`` and ``pretext.json`` of every run directory and writes, under
``--out`` (default ``comparison/``):

- ``comparison.md``: rows = runs (named by their config), columns = what each
  row was trained with (pretraining steps x batch, and the encoder when the runs'
  differ; the baselines' budget), label counts, cells = mean ± std over seeds of the chosen protocol (default
  ``frozen_mlp``, the thesis protocol), then the baselines the runs
  measured (from scratch; random encoder, frozen), then the thesis's rows beside them; a second table lists
  each run's pretext: steps, batch, throughput (examples per second over
  the whole pretraining), final pretext metrics
  (e.g. jigsaw accuracy), facts the pretext saved (e.g. the permutation set's
  Hamming distances) and the accuracy at the smallest label count; a third
  compares every run with from-scratch seed by seed (a seed draws the same
  labeled subset in every run, so the paired difference leaves out the luck
  of the subset): mean difference ± standard error and seeds won. A run is
  paired with its own from-scratch rows, else with another run's, but only
  when the two provably drew the same subsets (:mod:`.pairing`: same
  ``eval_dataset``, ``validation_seed``, ``validation_images``, ``labeled_pool``,
  ``split`` and ``test_images`` in results.json's ``protocol``), have the same
  encoder (a baseline trains or samples that architecture) and on the seeds
  both measured; every pair refused is listed under the table with the first
  field that differs (and printed);
- ``comparison.csv``: the first table, one column per (label count, mean/std/n);
- ``comparison.png``: accuracy against label count (log x axis), error bars
  = std over seeds, thesis rows dashed.

``--check`` compares every run with the ``expected`` results of its resolved
config (``RUN/config.json``; :mod:`.expected`), read from ``results.json`` or,
when ``expected.split`` is ``"validation"``, ``results_validation.json``; it
prints ``RUN: OK`` or one line per failing row prefixed with the run directory,
and exits 1 if a run fails, 2 if a run cannot be checked (no ``expected`` in its
config.json, no results file), else 0. It writes no file unless ``--out`` is given
(then the comparison too).

``--keep DIR`` copies each run's record, the files this module reads (:data:`.records.RECORD_FILES`,
a few KB: no checkpoint, no encoder), to ``DIR/<run directory name>/``: a directory of
records is read like run directories, so a table regenerates from the records of runs
made on machines that no longer hold them (``docs/runs/``, README "Run records").

Nothing here knows about particular methods: every run is read the same way.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Optional

from keras_ssl.evaluation.comparison_plot import plot
from keras_ssl.evaluation.expected import check_run_dirs
from keras_ssl.evaluation.pairing import paired_rows, pairing_refusal, subset_identity  # noqa: F401
from keras_ssl.evaluation.records import RecordError, keep_records
from keras_ssl.evaluation.reference import LABEL_COUNTS, thesis_by_count
from keras_ssl.evaluation.results import RESULTS_NAMES, mean_std, results_name
from keras_ssl.evaluation.training_cells import baseline_cell, pretraining_cell
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


def _read_results(run_dir: Path, split: str) -> tuple[Path, dict]:
    """(path, document) of the run's results on ``split``: results.json (test) or
    results_validation.json; CompareError when it is missing or not a results document."""
    res_path = run_dir / f"{results_name(split)}.json"
    if not res_path.is_file():
        how = ("finish it with the same python -m keras_ssl.train command" if split == "test" else
               "evaluate it on the validation split: the same python -m keras_ssl.train command "
               "with --set eval.split=validation")
        raise CompareError(f"{run_dir}: no {res_path.name} (the run has not finished its evaluation on "
                           f"the {split} split, or ran with --skip-eval); {how}, or leave it out / "
                           f"pass --skip-missing")
    results = _read_json(res_path, "rerun the evaluation")
    if not isinstance(results, dict) or not isinstance(results.get("rows"), list):
        raise CompareError(f"{res_path}: no 'rows' list: not a {res_path.name} written by keras_ssl.train")
    return res_path, results


def load_run(run_dir, split: str = "test") -> dict:
    """The comparable facts of one run on ``split`` ("test": results.json, "validation":
    results_validation.json); CompareError when it has no such results."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CompareError(f"{run_dir}: not a directory")
    res_path, results = _read_results(run_dir, split)
    if results.get("split", "test") != split:
        raise CompareError(f"{res_path}: scored on the {results.get('split')!r} split, not {split!r} "
                           f"as its name says")
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


def build_table(runs: list[dict], protocol: str = "frozen_mlp", thesis: bool = True,
                sort_by: Optional[int] = None) -> dict:
    """Rows of the comparison: ``{"counts": [...], "rows": [{name, source, cells}]}``.

    ``cells``: label count -> {mean, std, n}. Measured rows first (one per run,
    then each baseline of ``BASELINES``: a single row when every run measured the
    same numbers, else one per run), then the thesis's rows. ``sort_by``: a label
    count; the runs' rows best mean first at that count (runs without it last),
    else in the order given.
    """
    rows, counts = [], set()
    one_encoder = len({run["pretrain"].get("encoder") for run in runs}) == 1
    for run in runs:
        cells = _cells(run["rows"], protocol)
        if not cells:
            known = sorted({r.get("protocol") for r in run["rows"]})
            raise CompareError(f"{run['dir']}: no '{protocol}' rows in results.json (has: {', '.join(known)})")
        name = _display_name(run, runs)
        rows.append({"name": name, "source": "measured", "protocol": protocol,
                     "training": pretraining_cell(run, not one_encoder),
                     "cells": {n: _stat(r) for n, r in cells.items()}})
        counts.update(cells)
    if sort_by is not None:
        if sort_by not in counts:
            raise CompareError(f"--sort {sort_by}: no run measured {sort_by} labels "
                               f"(measured: {', '.join(map(str, sorted(counts)))})")
        rows.sort(key=lambda r: -r["cells"][sort_by]["mean"] if sort_by in r["cells"] else float("inf"))
    for baseline, title in BASELINES.items():
        measured = [(run["name"], {n: _stat(r) for n, r in _cells(run["rows"], baseline).items()})
                    for run in runs]
        distinct = []
        for run, (name, cells) in zip(runs, measured):
            if cells and not any(cells == other for _, _, other in distinct):
                distinct.append((run, name, cells))
        encoders = [run["pretrain"].get("encoder") for run, _, _ in distinct]
        by_encoder = None not in encoders and len(set(encoders)) == len(encoders)   # one row per encoder
        for run, name, cells in distinct:
            tag = run["pretrain"]["encoder"] if by_encoder else name
            label = title if len(distinct) == 1 else f"{title} [{tag}]"
            rows.append({"name": label, "source": "measured", "protocol": baseline, "cells": cells,
                         "training": baseline_cell(baseline, run), "baseline": True})
    if thesis and counts & set(LABEL_COUNTS):
        for name, ref in thesis_by_count().items():
            rows.append({"name": f"thesis: {name}", "source": "thesis", "protocol": "reported",
                         "training": "as published",
                         "cells": {n: {"mean": v, "std": None, "n": None} for n, v in ref.items()}})
    return {"counts": sorted(counts), "rows": rows}


def _stat(r: dict) -> dict:
    return {"mean": float(r["mean"]), "std": float(r["std"]), "n": len(r.get("values", [])) or 1}


def _fmt(cell: Optional[dict]) -> str:
    return "-" if cell is None else mean_std(cell["mean"], cell["std"], cell["n"])


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
        pretext_name = run["pretrain"].get("pretext") or next(   # runs before it was recorded: the row label
            (r["method"] for r in run["rows"] if r.get("protocol") == protocol), "")
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


def markdown(table: dict, pre: list[dict], protocol: str, title: Optional[str] = None,
             paired: Optional[list[dict]] = None, split: str = "test",
             refused: Optional[list[str]] = None) -> str:
    """comparison.md: the table, the pretext table, the paired table and the pairs refused;
    ``split``: what the runs were scored on (the titles say it; default title
    "Few-label <split> accuracy")."""
    counts = table["counts"] or list(LABEL_COUNTS)
    scored = ("" if split == "test" else
              f"scored on the validation split ({RESULTS_NAMES[split]}.json), the test set not looked at; ")
    lines = [f"## {title or f'Few-label {split} accuracy'}", "",
             f"Protocol `{protocol}` (baseline rows: " + ", ".join(f"`{b}`" for b in BASELINES) + "); "
             f"{scored}mean ± std over seeds; thesis rows as published (Torti López 2017, test accuracy).", "",
             "| run | training | " + " | ".join(f"{c} labels" for c in counts) + " |",
             "|---|---|" + "---:|" * len(counts)]
    for row in table["rows"]:
        lines.append(f"| {row['name']} | {row.get('training', '-')} | "
                     + " | ".join(_fmt(row["cells"].get(c)) for c in counts) + " |")
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
    if paired or refused:
        lines += ["", f"## Against from scratch, seed by seed ({split} accuracy)", ""]
    if paired:
        lines += [f"`{protocol}` {split} accuracy minus from-scratch's on the same labeled subset (same seed; "
                  "another run's from-scratch rows, named, only when its subsets are provably the same and "
                  "its encoder is the same): "
                  "mean ± standard error over the seeds both measured, (seeds won / seeds).", "",
                  "| run | " + " | ".join(f"{c} labels" for c in counts) + " |",
                  "|---|" + "---:|" * len(counts)]
        for row in paired:
            name = row["name"] if row.get("baseline") is None else f"{row['name']} (vs {row['baseline']})"
            lines.append(f"| {name} | " + " | ".join(_fmt_paired(row["cells"].get(c)) for c in counts) + " |")
    if refused:
        lines += ["", "Not paired (the labeled subsets are not provably the same, or the encoders differ):", ""]
        lines += [f"- {r}" for r in refused]
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


def compare(run_dirs, out_dir, protocol: str = "frozen_mlp", skip_missing: bool = False,
            thesis: bool = True, log=print, split: str = "test", sort_by: Optional[int] = None) -> dict:
    """Write comparison.md/.csv/.png for ``run_dirs`` under ``out_dir`` from their results on
    ``split`` (results.json or results_validation.json), runs ordered by ``sort_by`` (see
    :func:`build_table`); returns the table, the paired rows and the pairs refused
    (``refused``, also in comparison.md)."""
    if not run_dirs:
        raise CompareError("no run directories given (e.g. python -m keras_ssl.compare runs/*)")
    runs = []
    for d in run_dirs:
        try:
            runs.append(load_run(d, split))
        except CompareError as e:
            if not skip_missing or Path(d, f"{results_name(split)}.json").is_file():
                raise
            log(f"skipped: {e}")
    if not runs:
        raise CompareError(f"none of the run directories has a {results_name(split)}.json")
    table = build_table(runs, protocol, thesis, sort_by)
    pre = pretext_rows(runs, protocol, table["counts"][0])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paired, refused = paired_rows(runs, protocol, SCRATCH, [_display_name(r, runs) for r in runs],
                                  BASELINES[SCRATCH])
    md = markdown(table, pre, protocol, paired=paired, split=split, refused=refused)
    write_text_atomic(out / "comparison.md", md)
    write_csv(table, out / "comparison.csv")
    datasets = {r["protocol"].get("eval_dataset") for r in runs}
    dataset = f"{datasets.pop()} " if len(datasets) == 1 and None not in datasets else ""
    plot(table, out / "comparison.png", f"Few-label {dataset}{split} accuracy", split)
    return {"table": table, "pretext": pre, "paired": paired, "refused": refused, "markdown": md,
            "out": str(out)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_ssl.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories (each with a results.json)")
    p.add_argument("--out", default=None,
                   help="output directory (default: comparison/; with --check: none, nothing written)")
    p.add_argument("--protocol", default="frozen_mlp",
                   help="evaluation protocol to tabulate: frozen_mlp (default), knn, linear:<layer>")
    p.add_argument("--split", choices=tuple(RESULTS_NAMES), default="test",
                   help="results to compare: test (results.json, default) or validation "
                        "(results_validation.json)")
    p.add_argument("--skip-missing", action="store_true",
                   help="leave out of the tables directories without the results file instead of failing "
                        "(--check still reports them)")
    p.add_argument("--no-thesis", action="store_true", help="do not add the thesis's rows")
    p.add_argument("--sort", metavar="LABELS", type=int, default=None,
                   help="order the runs' rows by their mean at this label count, best first "
                        "(default: the order given)")
    p.add_argument("--check", action="store_true",
                   help="check each run against the 'expected' of its config.json: exit 1 if one fails, "
                        "2 if one has no 'expected'; writes nothing unless --out is given")
    p.add_argument("--expected", metavar="CONFIG", default=None,
                   help="with --check: read the expected results from this config file instead of each "
                        "run's config.json (a run made before its config stated its results)")
    p.add_argument("--keep", metavar="DIR", default=None,
                   help="copy each run's record (its config, results, summary, pretext facts) to "
                        "DIR/<run name>/, e.g. docs/runs: tables regenerate from it later")
    args = p.parse_args(argv)
    if args.expected is not None and not args.check:
        p.error("--expected is used with --check")
    code = 0
    if args.keep is not None:
        try:
            keep_records(args.runs, args.keep)
        except RecordError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if not args.check and args.out is None:
            return 0
    if not args.check or args.out is not None:
        try:
            res = compare(args.runs, args.out or "comparison", args.protocol, args.skip_missing,
                          not args.no_thesis, split=args.split, sort_by=args.sort)
        except CompareError as e:
            print(f"error: {e}", file=sys.stderr)
            code = 2
        else:
            print(res["markdown"])
            print(f"wrote {res['out']}/comparison.md, comparison.csv, comparison.png")
    if args.check:
        code = max(code, check_run_dirs(args.runs, err=lambda m: print(m, file=sys.stderr),
                                           expected_config=args.expected))
    return code


if __name__ == "__main__":
    sys.exit(main())
