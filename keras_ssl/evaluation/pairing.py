"""When two runs' few-label accuracies may be paired seed by seed.

The labeled subset of (label count n, seed s) is ``labeled_subset(pool, n, s)``
(:mod:`.subsets`), ``pool`` being the training images of ``eval_dataset`` minus
the validation split that ``split_validation`` carves with ``validation_seed``
and ``validation_images`` (:mod:`.protocols`); the scored images are the first
``test_images`` test images (``split`` "test") or that validation split. So two
runs drew the same subsets and scored the same images when :data:`IDENTITY`
agrees in their results.json's ``protocol``, and a seed's accuracies are then
paired only on the seeds both measured. Anything less (a field differing or not
recorded) is refused with the reason: :func:`pairing_refusal`. :func:`paired_rows`:
the paired differences of ``python -m keras_ssl.compare``. Imports no TensorFlow.
"""
from __future__ import annotations

import math
from typing import Optional

#: What identifies the labeled subsets and the scored images, in the order checked.
IDENTITY = ("eval_dataset", "validation_seed", "validation_images", "labeled_pool", "split", "test_images")
#: Why a run evaluated before results.json recorded the identity is not paired.
BEFORE_IDENTITY = "results.json made before the protocol recorded validation_seed; rerun its evaluation"


def subset_identity(protocol: dict) -> dict:
    """The :data:`IDENTITY` fields of a results.json ``protocol`` (None: not recorded)."""
    return {k: protocol.get(k) for k in IDENTITY}


def pairing_refusal(a: dict, b: dict, names: tuple[str, str] = ("a", "b")) -> Optional[str]:
    """Why runs with results.json protocols ``a`` and ``b`` (named ``names`` in the
    message) may not be paired seed by seed: the first :data:`IDENTITY` field that
    differs, with both values, or that one does not record, or no seed in common;
    None when they drew the same subsets and scored the same images."""
    for name, p in zip(names, (a, b)):
        if p.get("validation_seed") is None:
            return f"{name}'s {BEFORE_IDENTITY}"
    ia, ib = subset_identity(a), subset_identity(b)
    for key in IDENTITY:
        for name, ident in zip(names, (ia, ib)):
            if ident[key] is None:
                return f"{key} not recorded in {name}'s results.json; rerun its evaluation"
        if ia[key] != ib[key]:
            return f"{key} differs: {ia[key]!r} in {names[0]}, {ib[key]!r} in {names[1]}"
    sa, sb = a.get("seeds"), b.get("seeds")
    if sa is not None and sb is not None and not set(sa) & set(sb):
        return f"no seed in common: seeds {list(sa)} in {names[0]}, {list(sb)} in {names[1]}"
    return None


def _encoder_refusal(a: dict, b: dict, names: tuple[str, str]) -> Optional[str]:
    """Why run ``b``'s baseline rows do not stand for run ``a``'s: a baseline trains or
    samples the encoder's own architecture (from scratch, a random encoder), so it is
    borrowed only from a run with the same encoder (results.json ``pretrain.encoder``)."""
    ea, eb = (r.get("pretrain", {}).get("encoder") for r in (a, b))
    if ea != eb:
        return f"encoder differs: {ea!r} in {names[0]}, {eb!r} in {names[1]}"
    return None


def _by_seed(run: dict, protocol: str) -> dict:
    """label count -> {seed: accuracy} of one protocol's rows (seeds from the run's protocol)."""
    out = {}
    for r in run["rows"]:
        if r.get("protocol") != protocol:
            continue
        n = int(r["labels"])
        values = r.get("values") or []
        seeds = run["protocol"].get("seeds") or list(range(len(values)))
        if len(seeds) == len(values):
            out[n] = dict(zip(seeds, values))
    return out


def paired_rows(runs: list[dict], protocol: str, baseline: str = "scratch", names: Optional[list[str]] = None,
                title: str = "from scratch") -> tuple[list[dict], list[str]]:
    """Per run and label count: the run's accuracy minus ``baseline``'s, seed by seed.

    The baseline is the run's own when it measured one (the same evaluation drew
    both on the same subsets), else another run's: only a run whose subsets are
    provably the same (:func:`~keras_ssl.evaluation.pairing.pairing_refusal`) and whose
    encoder is the same (the baseline trains that architecture), and
    only when all such runs measured the same baseline numbers; only on the seeds
    both have. Returns (rows, refused): rows ``{name, baseline (None: its own),
    cells}``, ``cells``: label count -> {diff, se (None for one seed), wins, n};
    refused: one line per pair not made, naming the run and why. ``runs``: as
    :func:`~keras_ssl.evaluation.compare.load_run` returns them, named ``names`` (default:
    their config names); ``title``: the baseline's name in the lines.
    """
    names = names or [run["name"] for run in runs]
    name_of = {id(run): name for run, name in zip(runs, names)}
    measured = [run for run in runs if _by_seed(run, baseline)]
    out, refused = [], []
    for run, name in zip(runs, names):
        own, source = _by_seed(run, baseline), None
        if not own:
            agreeing = []
            for other in measured:
                other_name = name_of[id(other)]
                why = (pairing_refusal(run["protocol"], other["protocol"], (name, other_name))
                       or _encoder_refusal(run, other, (name, other_name)))
                if why:
                    refused.append(f"{name}: not paired with {title} of {other_name}: {why}")
                else:
                    agreeing.append((other_name, _by_seed(other, baseline)))
            if not agreeing:
                continue
            if any(b != agreeing[0][1] for _, b in agreeing):
                refused.append(f"{name}: not paired: the {title} rows of {', '.join(n for n, _ in agreeing)} "
                               f"differ on the same subsets (another encoder or budget); compare them by hand")
                continue
            source, own = ", ".join(n for n, _ in agreeing), agreeing[0][1]
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
            out.append({"name": name, "baseline": source, "cells": cells})
        elif source is not None:
            refused.append(f"{name}: not paired with {title} of {source}: no (label count, seed) "
                           f"measured by both")
    return out, refused
