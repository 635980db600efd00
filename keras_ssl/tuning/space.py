"""The search space of a stage: narrowing coarse -> fine, grids, KerasTuner hyperparameters.

A space maps a dotted experiment key to a :class:`~keras_ssl.tuning.config.SearchDim`
or, once narrowed, to :class:`Fixed` (one value). Numeric keys are handled in
"u" space: the log of the value for log keys, the value itself otherwise, so
that margins and grids are even on the key's own scale. Narrowed ranges stay
inside the previous range and on its int / step grid.

Only :func:`kt_hyperparameters` needs KerasTuner (imported when called).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Union

from keras_ssl.tuning.config import SearchDim

#: A narrowed dimension: still searched, or pinned.
Dim = Union[SearchDim, "Fixed"]


@dataclass(frozen=True)
class Fixed:
    """A key pinned to one value for a stage."""
    value: Any


def _to_u(dim: SearchDim, v: float) -> float:
    return math.log(v) if dim.log else float(v)


def _from_u(dim: SearchDim, u: float) -> float:
    return math.exp(u) if dim.log else u


def _snap(dim: SearchDim, v: float, lo: float, hi: float, direction: int) -> float:
    """Round ``v`` onto the dimension's grid (int / step), within [lo, hi]."""
    if dim.step is not None:
        k = (v - dim.min) / dim.step
        k = math.floor(k + 1e-9) if direction < 0 else math.ceil(k - 1e-9)
        v = dim.min + k * dim.step
    if dim.type == "int":
        v = math.floor(v + 1e-9) if direction < 0 else math.ceil(v - 1e-9)
    return min(max(v, lo), hi)


def _default(dim: SearchDim):
    if dim.type == "choice":
        return dim.values[0]
    return dim.min


def narrow_space(space: dict[str, Dim], top_values: list[dict], best: dict,
                 margin: float, pin: tuple[str, ...] = ()) -> dict[str, Dim]:
    """The space of the next stage around the previous stage's best trials.

    ``top_values``: the hyperparameter values of the top-k trials (best
    first); ``best``: those of the best trial. A numeric key becomes
    [min, max] of its top-k values widened on each side by ``margin`` x the
    width of its previous range, measured in log space for log keys, clipped
    to the previous range and snapped to its int / step grid. A choice keeps
    the values the top-k used, in their original order. Keys in ``pin``, and
    keys left with a single value, become :class:`Fixed` at the best value.
    """
    out: dict[str, Dim] = {}
    for key, dim in space.items():
        if isinstance(dim, Fixed):
            out[key] = dim
            continue
        vals = [t[key] for t in top_values if key in t]
        if key in pin or not vals:
            out[key] = Fixed(best.get(key, vals[0] if vals else _default(dim)))
            continue
        if dim.type == "choice":
            kept = tuple(v for v in dim.values if v in vals)
            out[key] = Fixed(best[key]) if len(kept) == 1 else dataclasses.replace(dim, values=kept)
            continue
        u_lo, u_hi = _to_u(dim, dim.min), _to_u(dim, dim.max)
        pad = margin * (u_hi - u_lo)
        lo_u = max(u_lo, min(_to_u(dim, v) for v in vals) - pad)
        hi_u = min(u_hi, max(_to_u(dim, v) for v in vals) + pad)
        lo = _snap(dim, _from_u(dim, lo_u), dim.min, dim.max, -1)
        hi = _snap(dim, _from_u(dim, hi_u), dim.min, dim.max, +1)
        if dim.type == "float" and dim.step is None:
            lo, hi = float(lo), float(hi)
        if hi - lo <= 1e-12 * max(1.0, abs(hi)):
            out[key] = Fixed(best[key])
        else:
            out[key] = dataclasses.replace(dim, min=lo, max=hi)
    return out


def grid_values(dim: SearchDim, points: int) -> tuple:
    """``points`` values spread evenly over a numeric range (in log space for log
    keys), snapped to its grid, deduplicated; a choice's values unchanged."""
    if dim.type == "choice":
        return tuple(dim.values)
    u_lo, u_hi = _to_u(dim, dim.min), _to_u(dim, dim.max)
    out = []
    for i in range(points):
        u = u_lo if points == 1 else u_lo + (u_hi - u_lo) * i / (points - 1)
        v = _from_u(dim, u)
        if dim.type == "int" or dim.step is not None:
            v = _snap(dim, v, dim.min, dim.max, -1 if i < points / 2 else +1)
        v = int(round(v)) if dim.type == "int" else float(f"{v:.6g}")
        if v not in out:
            out.append(v)
    return tuple(out)


def kt_hyperparameters(space: dict[str, Dim], tuner: str, grid_points: int = 3):
    """KerasTuner HyperParameters for a (possibly narrowed) space.

    Floats and ints become ``hp.Float`` / ``hp.Int`` (``sampling="log"`` for
    log keys); for ``tuner == "grid"`` they become ``hp.Choice`` over
    ``grid_points`` values. Pinned keys become ``hp.Fixed``.
    """
    import keras_tuner as kt

    hp = kt.HyperParameters()
    for key, dim in space.items():
        if isinstance(dim, Fixed):
            hp.Fixed(key, dim.value)
        elif dim.type == "choice":
            hp.Choice(key, list(dim.values), ordered=all(isinstance(v, (int, float)) and
                                                         not isinstance(v, bool) for v in dim.values))
        elif tuner == "grid":
            hp.Choice(key, list(grid_values(dim, grid_points)))
        elif dim.type == "float":
            hp.Float(key, float(dim.min), float(dim.max), step=dim.step,
                     sampling="log" if dim.log else "linear")
        else:
            hp.Int(key, int(dim.min), int(dim.max), step=int(dim.step) if dim.step else None,
                   sampling="log" if dim.log else "linear")
    return hp
