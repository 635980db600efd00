"""Relative camera motion between two frames of a sequence, frame pairs, and motion classes.

The egomotion pretext on real sequences (Agrawal, Carreira, Malik, "Learning to See by
Moving", ICCV 2015; the KITTI protocol of the 2017 thesis reproduction) classifies the
motion from frame i to frame j (at most 7 frames apart) along three axes: translation along
x and z and rotation about y, 20 classes each.

Conventions (camera frame as KITTI's and TUM's optical frame: x right, y down, z forward):

- Poses are camera-to-world 4x4 transforms (:class:`keras_ssl.data.sequences.Sequence`).
  The motion from frame i to frame j is camera j's pose in camera i's frame,
  ``T = inv(T_i) @ T_j``.
- ``tx``, ``tz``: ``T[0, 3]``, ``T[2, 3]``, where camera j's centre is in camera i's frame:
  ``tz > 0`` moved forward, ``tx > 0`` moved right.
- ``yaw``: radians in (-pi, pi], the rotation about camera i's y axis (pointing down) by the
  right-hand rule: ``yaw > 0`` turned right (camera j's forward axis swings towards camera
  i's +x; seen from above, clockwise). It is the first angle of the intrinsic Y-X-Z Euler
  decomposition R = R_y(yaw) R_x(pitch) R_z(roll) (scipy's ``as_euler("YXZ")[0]``):
  ``atan2(R[0, 2], R[2, 2])``, the heading of camera j's forward axis in camera i's x-z plane.

Classes (:func:`fit_bins`, :func:`to_bins`): quantile edges fitted on the training pairs'
values, so each class holds the same number of training pairs (a balanced classification
target). The original authors' code instead bins z-score-scaled values uniformly with two
overflow classes (thesis_protocol.md, "Beyond MNIST"); quantile bins need no overflow
classes since values beyond the outer edges are clipped into the first or last class.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence as Seq

import numpy as np

#: The three motion values the KITTI egomotion task classifies, in label order.
AXES = ("tx", "tz", "yaw")


class Motion(NamedTuple):
    """Relative motion values, each float64 of the pairs' shape (see the module docstring)."""
    tx: np.ndarray
    tz: np.ndarray
    yaw: np.ndarray


def _rigid_inverse(t: np.ndarray) -> np.ndarray:
    """inv of rigid 4x4 transforms [..., 4, 4]: [R^T | -R^T t] (exact for a rotation R)."""
    r = t[..., :3, :3]
    rt = np.swapaxes(r, -1, -2)
    out = np.zeros_like(t)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", rt, t[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def relative_transform(T_i, T_j) -> np.ndarray:
    """``inv(T_i) @ T_j`` for camera-to-world rigid transforms [..., 4, 4] (broadcast): camera
    j's pose in camera i's frame."""
    T_i, T_j = np.asarray(T_i, np.float64), np.asarray(T_j, np.float64)
    if T_i.shape[-2:] != (4, 4) or T_j.shape[-2:] != (4, 4):
        raise ValueError(f"poses must be [..., 4, 4], got {T_i.shape} and {T_j.shape}")
    return _rigid_inverse(T_i) @ T_j


def relative_motion(T_i, T_j) -> Motion:
    """(tx, tz, yaw) of the motion from frame i to frame j in camera i's frame, for poses
    ``T_i``, ``T_j`` [..., 4, 4] (broadcast): conventions in the module docstring."""
    t = relative_transform(T_i, T_j)
    return Motion(t[..., 0, 3].copy(), t[..., 2, 3].copy(),
                  np.arctan2(t[..., 0, 2], t[..., 2, 2]))


def motion_matrix(tx, tz, yaw) -> np.ndarray:
    """The planar motion [..., 4, 4]: rotation ``yaw`` about y then (in the first frame)
    translation (tx, 0, tz); :func:`relative_motion` of ``(I, motion_matrix(m))`` is ``m``."""
    tx, tz, yaw = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (tx, tz, yaw)))
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.zeros(tx.shape + (4, 4))
    out[..., 0, 0], out[..., 0, 2], out[..., 2, 0], out[..., 2, 2] = c, s, -s, c
    out[..., 1, 1] = out[..., 3, 3] = 1.0
    out[..., 0, 3], out[..., 2, 3] = tx, tz
    return out


def pair_motion(poses: np.ndarray, pairs: np.ndarray) -> Motion:
    """:func:`relative_motion` of ``poses[i]`` to ``poses[j]`` for each row (i, j) of ``pairs``."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    return relative_motion(poses[pairs[:, 0]], poses[pairs[:, 1]])


def concat_motion(motions: Seq[Motion]) -> Motion:
    """The pairs of several sequences' :func:`pair_motion` as one :class:`Motion` (to fit
    bins on all training sequences at once)."""
    if not motions:
        raise ValueError("no motion to concatenate")
    return Motion(*(np.concatenate([np.ravel(getattr(m, a)) for m in motions]) for a in AXES))


# --------------------------------------------------------------------------
# Pairs
# --------------------------------------------------------------------------

def all_pairs(n_frames: int, max_gap: int, backward: bool = True) -> np.ndarray:
    """Every (i, j), int64 [P, 2], with 1 <= j - i <= max_gap (and, with ``backward``, also
    1 <= i - j <= max_gap), frames of one sequence of ``n_frames``; sorted by (i, j)."""
    if n_frames < 0 or max_gap < 1:
        raise ValueError(f"need n_frames >= 0 and max_gap >= 1, got {n_frames}, {max_gap}")
    rows = []
    for g in range(1, min(max_gap, n_frames - 1) + 1):
        i = np.arange(n_frames - g)
        rows.append(np.stack([i, i + g], 1))
        if backward:
            rows.append(np.stack([i + g, i], 1))
    if not rows:
        return np.zeros((0, 2), np.int64)
    p = np.concatenate(rows).astype(np.int64)
    return p[np.lexsort((p[:, 1], p[:, 0]))]


def sample_pairs(n_frames: int, max_gap: int, n_pairs: Optional[int] = None, seed: int = 0,
                 backward: bool = True, replace: bool = False) -> np.ndarray:
    """Frame pairs (i, j) of one sequence, int64 [P, 2], with 1 <= |j - i| <= max_gap (only
    j > i unless ``backward``): all of them (:func:`all_pairs`) if ``n_pairs`` is None, else
    ``n_pairs`` drawn uniformly among them (without replacement unless ``replace``), in
    draw order. Same arguments, same pairs."""
    every = all_pairs(n_frames, max_gap, backward)
    if n_pairs is None:
        return every
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
    if len(every) == 0 and n_pairs:
        raise ValueError(f"a sequence of {n_frames} frames has no pairs")
    if not replace and n_pairs > len(every):
        raise ValueError(f"asked for {n_pairs} distinct pairs; {n_frames} frames at most "
                         f"{max_gap} apart give {len(every)}")
    idx = np.random.default_rng(seed).choice(len(every), n_pairs, replace=replace)
    return every[idx]


# --------------------------------------------------------------------------
# Classes
# --------------------------------------------------------------------------

def fit_bins(values, bins: int) -> np.ndarray:
    """Bin edges, float64 [bins + 1], fitted on training ``values`` so that the ``bins``
    classes are balanced: the sorted values are cut into ``bins`` runs of floor or ceil of
    n / bins values, each inner edge halfway between the last value of a run and the first of
    the next. ``edges[0]``, ``edges[-1]``: the smallest and largest value (the fitted range;
    :func:`to_bins` clips values beyond it into the first or last class).

    With distinct values, class counts differ by at most 1. ValueError if there are fewer
    values than bins, a value is not finite, or ties make two inner edges coincide (a class
    would be empty: fewer bins or more varied values needed).
    """
    v = np.sort(np.asarray(values, np.float64).ravel())
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if not np.all(np.isfinite(v)):
        raise ValueError("cannot fit bins: a value is not finite")
    if len(v) < bins:
        raise ValueError(f"cannot fit {bins} bins on {len(v)} values")
    cut = (np.arange(1, bins) * len(v)) // bins           # first index of classes 1..bins-1
    inner = (v[cut - 1] + v[cut]) / 2.0
    edges = np.concatenate([[v[0]], inner, [v[-1]]])
    same = np.flatnonzero(np.diff(edges[:-1]) <= 0)     # class k empty if edges k, k+1 coincide
    if same.size:
        k = int(same[0])
        raise ValueError(f"cannot fit {bins} balanced bins: edges {k} and {k + 1} coincide at "
                         f"{edges[k]!r} (too many equal values)")
    return edges


def to_bins(values, edges) -> np.ndarray:
    """Class ids int64 in [0, bins) of ``values`` under ``edges`` (:func:`fit_bins`): class c
    holds edges[c] <= v < edges[c + 1] (a value on an inner edge goes up); values below
    ``edges[0]`` or above ``edges[-1]`` are clipped into class 0 or bins - 1."""
    edges = _check_edges(edges)
    v = np.asarray(values, np.float64)
    if np.any(np.isnan(v)):
        raise ValueError("cannot bin NaN")
    return np.searchsorted(edges[1:-1], v, side="right").astype(np.int64)


def _check_edges(edges) -> np.ndarray:
    e = np.asarray(edges, np.float64)
    if e.ndim != 1 or len(e) < 2 or not np.all(np.isfinite(e)) or e[-1] < e[-2] \
            or np.any(np.diff(e[:-1]) <= 0):
        raise ValueError(f"not bin edges (finite, increasing, at least 2): {edges!r}")
    return e


def edges_to_json(edges) -> list[float]:
    """Edges as a JSON list of floats (Python's float repr round-trips exactly)."""
    return [float(x) for x in _check_edges(edges)]


def edges_from_json(obj) -> np.ndarray:
    """Edges from :func:`edges_to_json`'s list (checked)."""
    return _check_edges(obj)


def fit_zscore_bins(values, bins: int, bin_size: float = 1.0) -> np.ndarray:
    """The original authors' binning (Agrawal et al.'s code, ../docs/sequences.md): the
    values z-scored with the training mean m and standard deviation s, ``bins`` classes of
    ``bin_size`` standard deviations each spanning [-bins/2, bins/2] * bin_size around the
    mean, and one overflow class on each side: ``bins + 2`` classes, edges float64
    [bins + 3] (the outer two: the training range, widened to hold one bin beyond the
    inner edges; :func:`to_bins` clips beyond them as for :func:`fit_bins`).

    Not balanced: most pairs fall in the central classes. ValueError if a value is not
    finite or all values are equal (no spread to scale by)."""
    v = np.asarray(values, np.float64).ravel()
    if bins < 1 or not bin_size > 0:
        raise ValueError(f"bins must be >= 1 and bin_size > 0, got {bins}, {bin_size}")
    if not len(v) or not np.all(np.isfinite(v)):
        raise ValueError("cannot fit bins: no values, or a value is not finite")
    mean, std = float(np.mean(v)), float(np.std(v))
    if std == 0.0:
        raise ValueError(f"cannot z-score: all {len(v)} values equal {mean!r}")
    width = std * bin_size
    inner = mean + width * (np.arange(bins + 1) - bins / 2.0)
    return np.concatenate([[min(v.min(), inner[0] - width)], inner, [max(v.max(), inner[-1] + width)]])


#: How :func:`fit_motion_bins` cuts each axis: balanced quantiles (``bins`` classes,
#: the default) or the authors' z-scored uniform bins with overflow (``bins + 2`` classes).
BINNINGS = ("quantile", "zscore")


def bin_count(bins: int, binning: str = "quantile") -> int:
    """The classes per axis ``bins`` gives under ``binning``."""
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")
    return bins + 2 if binning == "zscore" else bins


def fit_motion_bins(motion: Motion, bins: int = 20, binning: str = "quantile",
                    bin_size: float = 1.0) -> dict[str, list[float]]:
    """Edges per axis (:data:`AXES`), JSON-ready, fitted on the training pairs' motion:
    :func:`fit_bins` (``"quantile"``) or :func:`fit_zscore_bins` (``"zscore"``, ``bin_size``
    standard deviations per class)."""
    bin_count(bins, binning)
    if binning == "zscore":
        return {a: edges_to_json(fit_zscore_bins(getattr(motion, a), bins, bin_size)) for a in AXES}
    return {a: edges_to_json(fit_bins(getattr(motion, a), bins)) for a in AXES}


def motion_labels(motion: Motion, edges: dict[str, Seq[float]]) -> dict[str, np.ndarray]:
    """Class ids per axis of ``motion`` under ``edges`` (:func:`fit_motion_bins`)."""
    missing = [a for a in AXES if a not in edges]
    if missing:
        raise ValueError(f"bin edges for {missing} missing (have {sorted(edges)})")
    return {a: to_bins(getattr(motion, a), edges[a]) for a in AXES}


def pair_labels(poses: np.ndarray, pairs: np.ndarray,
                edges: dict[str, Seq[float]]) -> dict[str, np.ndarray]:
    """Class ids per axis for frame pairs of one sequence: :func:`motion_labels` of
    :func:`pair_motion`."""
    return motion_labels(pair_motion(poses, pairs), edges)
