"""Scores of the variants of a selection and the table that records the choice.

Contract: :func:`score` reads one variant's ``results_validation.json`` document:
per label count the seed-mean and std of the criterion's protocol, per seed the
mean over the criterion's label counts, and the criterion (the mean of the
per-count means). :func:`decide` ranks the variants (higher criterion first,
ties in listed order) and pairs each with the first variant listed seed by seed
(a seed draws the same labeled subsets in every variant). :func:`selection_markdown`
is the table; nothing here reads the test set.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from keras_ssl.evaluation.results import mean_std


class SelectionError(ValueError):
    """A variant's results cannot decide: the message names the variant and what is missing."""


def score(results: dict, protocol: str, labels: tuple[int, ...], variant: str) -> dict:
    """The criterion of one variant (see the module's contract)."""
    if results.get("split") != "validation":
        raise SelectionError(f"variant {variant!r}: its results were not scored on the validation split")
    rows = {r["labels"]: r for r in results["rows"] if r["protocol"] == protocol}
    missing = [n for n in labels if n not in rows]
    if missing:
        raise SelectionError(f"variant {variant!r}: no {protocol} row at {missing} labels")
    seeds = results["protocol"]["seeds"]
    per_seed = {s: float(np.mean([rows[n]["values"][i] for n in labels])) for i, s in enumerate(seeds)}
    return {"variant": variant, "criterion": float(np.mean([rows[n]["mean"] for n in labels])),
            "labels": {str(n): {"mean": rows[n]["mean"], "std": rows[n]["std"], "n": len(rows[n]["values"])}
                       for n in labels},
            "per_seed": {str(s): v for s, v in per_seed.items()}}


def decide(scores: list[dict]) -> list[dict]:
    """The scores ranked (best first), each with ``paired`` against the first listed."""
    first = scores[0]["per_seed"]
    out = []
    for i, sc in enumerate(scores):
        common = [s for s in first if s in sc["per_seed"]]
        d = np.array([sc["per_seed"][s] - first[s] for s in common])
        paired: Optional[dict] = None
        if i and len(d):
            se = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
            paired = {"mean": float(d.mean()), "se": se, "won": int((d > 0).sum()), "n": len(d)}
        out.append({**sc, "order": i, "paired": paired})
    return sorted(out, key=lambda r: (-r["criterion"], r["order"]))


def _paired(p: Optional[dict]) -> str:
    if p is None:
        return "(reference)"
    se = "" if math.isnan(p["se"]) else f" ± {p['se']:.3f}"
    return f"{p['mean']:+.3f}{se} ({p['won']}/{p['n']} won)"


def selection_markdown(ranked: list[dict], overrides: dict[str, dict], *, title: str, protocol: str,
                       labels: tuple[int, ...], command: str) -> str:
    """The record of the choice: variants best first, the winner in bold."""
    cols = " | ".join(f"{n}" for n in labels)
    lines = [f"## {title}", "", f"    {command}", "",
             f"Validation-split accuracy of `{protocol}` (mean ± std over seeds); criterion: the mean "
             f"over {list(labels)} labels; paired: the criterion's difference from the first variant "
             f"listed, seed by seed (mean ± standard error, seeds won). The test set was not read.", "",
             f"| variant | overrides | {cols} | criterion | paired |",
             "|---|---|" + "---:|" * len(labels) + "---:|---:|"]
    for i, r in enumerate(ranked):
        cells = [mean_std(r["labels"][str(n)]["mean"], r["labels"][str(n)]["std"], r["labels"][str(n)]["n"])
                 for n in labels]
        crit = f"{r['criterion']:.4f}"
        name = r["variant"]
        sets = " ".join(f"`{k}={v}`" for k, v in overrides[name].items()) or "(base)"
        if i == 0:
            name, crit = f"**{name}**", f"**{crit}**"
        lines.append(f"| {name} | {sets} | " + " | ".join(cells) + f" | {crit} | {_paired(r['paired'])} |")
    lines += ["", f"Chosen: **{ranked[0]['variant']}**."]
    return "\n".join(lines) + "\n"
