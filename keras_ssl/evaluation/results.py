"""The few-label results written to a run directory: ``results.json`` (the document
:func:`keras_ssl.evaluation.protocols.evaluate_encoder` returns, with the job's
``config``, ``pretrain`` and ``provenance``) and ``results.md`` (:func:`results_markdown`: one row per (method, protocol), one
column per label count, mean ± std over seeds, the thesis's rows beneath).
Scored on the validation split (``eval.split: "validation"``), the same
documents are ``results_validation.json`` / ``.md`` (:func:`results_name`),
so choosing on validation never overwrites the test report.

Reading these files back is :mod:`keras_ssl.evaluation.compare`'s job; this
module only writes them. Imports no TensorFlow.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from keras_ssl.evaluation.reference import thesis_by_count
from keras_ssl.files import write_json_atomic, write_text_atomic

#: Table order of the protocols; the rest (linear probes) follow in the order measured.
_ROW_ORDER = {"frozen_mlp": 0, "finetune": 1, "scratch": 2, "random_frozen": 3, "knn": 4}

#: Scored split -> the stem of the results files.
RESULTS_NAMES = {"test": "results", "validation": "results_validation"}


def results_name(split: str) -> str:
    """``results`` for the test split, ``results_validation`` for the validation split."""
    return RESULTS_NAMES[split]


def mean_std(mean: float, std: Optional[float], n: Optional[int]) -> str:
    """``mean ± std`` over ``n`` seeds to 3 decimals, the mean alone for one seed;
    a published figure (``std`` None) to its 2 decimals."""
    if std is None:
        return f"{mean:.2f}"
    return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


#: The mark of a cell averaging a classifier that did not train (``collapsed_seeds``).
COLLAPSED_MARK = "†"


def _fmt(row: Optional[dict]) -> str:
    if row is None:
        return "-"
    cell = mean_std(row["mean"], row["std"], len(row["values"]))
    return f"{cell} {COLLAPSED_MARK}" if row.get("collapsed_seeds") else cell


def collapsed_notes(results: dict) -> list[str]:
    """One line per row whose classifier predicted one class for every scored image on
    some seed (``collapsed_seeds``): the seeds, their accuracy and the mean of the others."""
    seeds = list(results["protocol"]["seeds"])
    notes = []
    for r in results["rows"]:
        bad = r.get("collapsed_seeds") or []
        if not bad:
            continue
        vals = dict(zip(seeds, r["values"]))
        rest = [v for s, v in vals.items() if s not in bad]
        rest_txt = (f"the other seed(s): {mean_std(float(np.mean(rest)), float(np.std(rest)), len(rest))}"
                    if rest else "no seed trained")
        notes.append(f"{COLLAPSED_MARK} {r['method']} / {r['protocol']} at {r['labels']} labels: the classifier "
                     f"of seed(s) {', '.join(str(s) for s in bad)} predicted one class for every scored image "
                     f"(it did not train; accuracy {', '.join(f'{vals[s]:.3f}' for s in bad)}), "
                     f"counted in the mean; {rest_txt}.")
    return notes


def results_markdown(results: dict, title: str = "") -> str:
    """The results table beside the thesis's rows."""
    counts = results["protocol"]["label_counts"]
    by = {(r["method"], r["protocol"], r["labels"]): r for r in results["rows"]}
    keys = []
    for r in results["rows"]:
        k = (r["method"], r["protocol"])
        if k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: _ROW_ORDER.get(k[1], len(_ROW_ORDER)))  # stable: probes stay in layer order
    head = "| method | protocol | " + " | ".join(str(c) for c in counts) + " |"
    sep = "|---|---|" + "---:|" * len(counts)
    lines = [f"## {title}" if title else "", head, sep]
    for m, p in keys:
        lines.append(f"| {m} | {p} | " + " | ".join(_fmt(by.get((m, p, c))) for c in counts) + " |")
    # the thesis's rows are MNIST's: beside another labeled set's table they would be noise
    on_mnist = results["protocol"].get("eval_dataset", "mnist") == "mnist"
    for name, ref in thesis_by_count().items() if on_mnist else ():
        lines.append(f"| thesis: {name} | reported | " + " | ".join(
            f"{ref[c]:.2f}" if c in ref else "-" for c in counts) + " |")
    p = results["protocol"]
    split = results.get("split", "test")
    scored = (f"scored on the validation split ({p.get('scored_images', p['validation_images'])} images; "
              f"the test set not looked at)" if split == "validation" else f"test images: {p['test_images']}")
    lines += ["", f"Protocol: {len(p['seeds'])} seed(s) {p['seeds']}; frozen head dense {p['head_hidden']} "
              f"+ dropout {p['head_dropout']}, {p['head_steps']} steps, batch {p['head_batch_size']}, "
              f"lr {p['head_learning_rate']}; scratch {p['scratch_steps']} steps"
              f"{f' at lr ' + str(p['scratch_learning_rate']) if p.get('scratch_learning_rate') else ''}; linear probes "
              f"{p['linear_probe_steps']} steps; kNN k={p['knn_k']} (cosine); {scored}; labeled subsets drawn from {p['labeled_pool']} training images "
              f"({p['validation_images']} held out for validation, seed {p.get('validation_seed', '?')}). "
              f"Mean ± std over seeds."]
    notes = collapsed_notes(results)
    if notes:
        lines += [""] + notes
    return "\n".join(l for l in lines if l is not None) + "\n"


def write_results(results: dict, run_dir: Path, title: str = "") -> str:
    """Write ``results.json`` and ``results.md`` (``results_validation.*`` when scored on
    the validation split) under ``run_dir``; returns the markdown."""
    run_dir = Path(run_dir)
    stem = results_name(results.get("split", "test"))
    write_json_atomic(run_dir / f"{stem}.json", results)
    md = results_markdown(results, title)
    write_text_atomic(run_dir / f"{stem}.md", md)
    return md
