"""Jigsaw permutation sets chosen for maximal Hamming distance.

Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving
Jigsaw Puzzles", ECCV 2016, section 3.2: the network classifies which
permutation of a fixed set shuffled the tiles, so the set decides how hard
the task is. The set is built greedily: start from a random permutation, then
repeatedly add the candidate permutation whose Hamming distance to the set is
largest, either on average over the set (``criterion="mean"``, the paper's
maximal-average set) or to its nearest member (``criterion="min"``, maximal
minimal distance). Ties are broken at random, so the set is a pure function
of (size, grid, criterion, seed).

    python -m keras_ssl.permutations --size 100 --grid 3 --criterion mean --out perms.json [--seed 0]

writes the set (JSON, or ``.npy`` for a bare array) and prints its size,
average and minimum pairwise Hamming distance.

Only grids up to 3x3 are supported: candidates are enumerated exhaustively
(9! = 362,880 for 3x3).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

import typing
from typing import Literal

import numpy as np

from keras_ssl.files import write_text_atomic

#: ``"mean"``: maximal average Hamming distance to the set (the paper); ``"min"``: to its nearest member.
Criterion = Literal["mean", "min"]
CRITERIA = typing.get_args(Criterion)
MAX_GRID = 3


def all_permutations(n: int) -> np.ndarray:
    """Every permutation of ``range(n)`` in lexicographic order, int8 [n!, n]."""
    return np.array(list(itertools.permutations(range(n))), dtype=np.int8)


def check_request(size: int, grid: int, criterion: str) -> None:
    """Raise ValueError when (size, grid, criterion) cannot give a set."""
    if not 2 <= grid <= MAX_GRID:
        raise ValueError(f"grid must be 2 or 3 (candidates are enumerated), got {grid}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    total = math.factorial(grid * grid)
    if not 1 <= size <= total:
        raise ValueError(f"size must be in [1, {total}] for a {grid}x{grid} grid, got {size}")


def maximal_hamming_set(size: int, grid: int = 3, criterion: str = "mean", seed: int = 0) -> np.ndarray:
    """Greedy maximal-Hamming-distance permutation set, int32 [size, grid*grid].

    Row ``k`` is permutation ``k``: the tile shown at position ``j`` is the
    tile cut from cell ``row[j]`` (cells in reading order).
    """
    check_request(size, grid, criterion)
    cands = all_permutations(grid * grid)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(cands)))]
    # score[i]: sum (mean criterion) or min (min criterion) of Hamming
    # distances from candidate i to the set so far.
    score = np.count_nonzero(cands != cands[chosen[0]], axis=1).astype(np.int64)
    taken = np.zeros(len(cands), bool)
    taken[chosen[0]] = True
    while len(chosen) < size:
        masked = np.where(taken, -1, score)
        best = np.flatnonzero(masked == masked.max())
        j = int(best[rng.integers(len(best))])
        chosen.append(j)
        taken[j] = True
        d = np.count_nonzero(cands != cands[j], axis=1)
        score = score + d if criterion == "mean" else np.minimum(score, d)
    return cands[chosen].astype(np.int32)


def hamming_stats(perms: np.ndarray) -> dict:
    """Average and minimum pairwise Hamming distance of a set (0 for one member)."""
    perms = np.asarray(perms)
    n = len(perms)
    if n < 2:
        return {"size": n, "mean_hamming": 0.0, "min_hamming": 0}
    d = np.count_nonzero(perms[:, None, :] != perms[None, :, :], axis=2)
    iu = np.triu_indices(n, 1)
    return {"size": n, "mean_hamming": float(d[iu].mean()), "min_hamming": int(d[iu].min())}


def save_permutations(perms: np.ndarray, path: str | Path, **meta) -> dict:
    """Write a set as JSON (with its stats and ``meta``) or ``.npy``; returns the stats."""
    path = Path(path)
    stats = hamming_stats(perms)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, np.asarray(perms, np.int32))
    else:
        doc = {**meta, **stats, "permutations": np.asarray(perms).tolist()}
        write_text_atomic(path, json.dumps(doc) + "\n")
    return stats


def load_permutations(path: str | Path) -> np.ndarray:
    """Read a set written by :func:`save_permutations`; checks it is a set of permutations."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"permutation file not found: {path}")
    if path.suffix == ".npy":
        perms = np.load(path)
    else:
        try:
            perms = np.asarray(json.loads(path.read_text())["permutations"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a permutation set written by keras_ssl.permutations ({e})") from None
    perms = np.asarray(perms)
    if perms.ndim != 2 or len(perms) == 0:
        raise ValueError(f"{path}: expected a [N, tiles] array of permutations")
    n = perms.shape[1]
    if not np.all(np.sort(perms, axis=1) == np.arange(n)):
        raise ValueError(f"{path}: rows are not permutations of 0..{n - 1}")
    if len(np.unique(perms, axis=0)) != len(perms):
        raise ValueError(f"{path}: the set holds the same permutation twice")
    return perms.astype(np.int32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_ssl.permutations",
                                description="Greedy maximal-Hamming-distance permutation set for jigsaw.")
    p.add_argument("--size", type=int, required=True, help="number of permutations in the set")
    p.add_argument("--grid", type=int, default=3, help="tiles per side (2 or 3)")
    p.add_argument("--criterion", choices=CRITERIA, default="mean",
                   help="maximise the mean or the minimum Hamming distance to the set")
    p.add_argument("--seed", type=int, default=0, help="seed of the first permutation and of tie-breaking")
    p.add_argument("--out", required=True, help="output file (.json, or .npy for a bare array)")
    args = p.parse_args(argv)
    try:
        perms = maximal_hamming_set(args.size, args.grid, args.criterion, args.seed)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stats = save_permutations(perms, args.out, grid=args.grid, criterion=args.criterion, seed=args.seed)
    print(f"size {stats['size']}  average Hamming distance {stats['mean_hamming']:.3f}  "
          f"minimum Hamming distance {stats['min_hamming']}  -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
