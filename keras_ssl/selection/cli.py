"""``python -m keras_ssl.select SELECTION.json``: pretrain and score every variant on the
validation split, write the table that records the choice.

    python -m keras_ssl.select configs/selections/egomotion_features.json [--runs-dir runs/select]
        [--smoke] [--no-progress] [--only NAME ...] [--from-run RUN ...]

Each variant runs the train job (``--skip-export``) under ``RUNS/<selection>/<variant>``;
the same command after an interruption resumes (a finished variant whose
``results_validation.json`` was made from the same resolved config is not run
again). Variants that differ only in what is done after pretraining (``eval.*``) pretrain
once: a variant whose pretraining config equals an earlier variant's (or a ``--from-run``
run directory's, whose pretraining finished) starts from a copy of its checkpoints
(:func:`keras_ssl.training.run_dir.seed_from_pretrained`). Writes
``RUNS/<selection>/selection.md`` and ``selection.json``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from keras_ssl.config import ConfigError, to_dict
from keras_ssl.files import write_json_atomic, write_text_atomic


def _finished(run_dir: Path, cfg) -> dict | None:
    """The variant's validation results if they were made from exactly ``cfg``."""
    from keras_ssl.provenance import config_sha256

    path = run_dir / "results_validation.json"
    if not path.is_file():
        return None
    try:
        res = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    same = res.get("provenance", {}).get("config_sha256") == config_sha256(to_dict(cfg))
    return res if same else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_ssl.select", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("selection", help="selection file, e.g. configs/selections/egomotion_features.json")
    p.add_argument("--runs-dir", default="runs/select", help="parent of the selection's run directories")
    p.add_argument("--smoke", action="store_true", help="every variant with --smoke (tiny data, seconds)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="run only these variants now (the table needs all: run the rest later)")
    p.add_argument("--from-run", nargs="+", default=[], metavar="RUN",
                   help="finished runs whose pretraining variants may start from (when it is theirs)")
    args = p.parse_args(argv)
    from keras_ssl.selection.spec import load_selection
    from keras_ssl.selection.table import SelectionError, decide, score, selection_markdown
    try:
        sel = load_selection(args.selection, smoke=args.smoke)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    unknown = sorted(set(args.only or ()) - {v.name for v in sel.variants})
    if unknown:
        print(f"error: {args.selection}: no variant named {unknown[0]!r}", file=sys.stderr)
        return 2
    import tensorflow as tf
    tf.get_logger().setLevel("ERROR")
    from keras_ssl.data import DataError
    from keras_ssl.training.errors import Interrupted, TrainingError, run_write_error
    from keras_ssl.training.job import run
    from keras_ssl.training.run_dir import seed_from_pretrained

    root = Path(args.runs_dir) / (sel.name + ("_smoke" if args.smoke else ""))
    results = {}
    for i, v in enumerate(sel.variants):
        run_dir = root / v.name
        done = _finished(run_dir, v.config)
        if done is None and args.only and v.name not in args.only:
            continue
        if done is None:
            print(f"[{i + 1}/{len(sel.variants)}] {v.name}: {v.overrides or '(base)'} -> {run_dir}", flush=True)
            for source in [Path(r) for r in args.from_run] + [root / u.name for u in sel.variants[:i]]:
                if seed_from_pretrained(source, run_dir, v.config):
                    print(f"  pretrained as {source}: its checkpoints copied, evaluation only", flush=True)
                    break
            try:
                run(v.config, run_dir, progress=not args.no_progress, export=False, config_path=str(sel.base))
            except (ConfigError, DataError, TrainingError) as e:
                print(f"error: variant {v.name!r}: {e}", file=sys.stderr)
                return 2
            except OSError as e:   # its run directory: not writable, disk full
                print(f"error: variant {v.name!r}: {run_write_error(run_dir, e)}", file=sys.stderr)
                return 2
            except Interrupted as e:
                print(f"\nstopped by {e.signal_name}: run the same command again to resume", file=sys.stderr)
                return e.exit_code
            done = _finished(run_dir, v.config)
        else:
            print(f"[{i + 1}/{len(sel.variants)}] {v.name}: finished before, read from {run_dir}", flush=True)
        results[v.name] = done
    missing = [v.name for v in sel.variants if results.get(v.name) is None]
    if missing:
        print(f"not all variants have run ({', '.join(missing)}): no table yet", file=sys.stderr)
        return 0 if args.only else 1
    try:
        scores = [score(results[v.name], sel.protocol, sel.labels, v.name) for v in sel.variants]
    except SelectionError as e:
        print(f"error: {args.selection}: {e}", file=sys.stderr)
        return 2
    ranked = decide(scores)
    command = "python -m keras_ssl.select " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    md = selection_markdown(ranked, {v.name: v.overrides for v in sel.variants},
                            title=f"{sel.name}: choice on the validation split", protocol=sel.protocol,
                            labels=sel.labels, command=command)
    try:
        write_text_atomic(root / "selection.md", md)
        write_json_atomic(root / "selection.json", {
            "selection": str(sel.path), "base": str(sel.base), "protocol": sel.protocol,
            "labels": list(sel.labels), "chosen": ranked[0]["variant"], "ranked": ranked,
            "overrides": {v.name: v.overrides for v in sel.variants}, "shared": sel.shared})
    except OSError as e:
        print(f"error: cannot write {e.filename or root}: {e.strerror or e}; every variant's results "
              f"are kept: fix that and run the same command to write the table", file=sys.stderr)
        return 2
    print(md)
    return 0
