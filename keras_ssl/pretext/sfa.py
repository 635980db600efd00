"""Egomotion pairs labelled close or far, for the SFA (slow feature
analysis) contrastive baseline of Agrawal et al. 2015, MNIST protocol of the
2017 thesis reproduction.

Each pair is (image, moved copy), the move being a rotation about the centre
by integer degrees in [-R, R] (0 excluded by default) then an integer shift in
[-S, S] pixels on each axis, made by :func:`keras_ssl.pretext.egomotion.apply_transform`
(the egomotion sampler's own transform). A pair is *close* when
``|tx| <= close_shift_px``, ``|ty| <= close_shift_px`` and
``|rotation| <= close_rotation_deg`` (1 px and 3 degrees in the thesis), *far*
otherwise. Labels: ``close`` (1 close, 0 far) and the raw ``tx_px``,
``ty_px``, ``rz_deg``. No classification targets: use method ``contrastive``.

``close_ratio``: the fraction of close pairs. Drawing the transform uniformly
over all of them (``close_ratio: null``, the plain egomotion distribution)
makes close pairs rare: 3*3*6 = 54 of 7*7*60 = 2940 transforms, 1.8%, so
the loss would almost only push pairs apart. With a number, each pair is close
with that probability and its transform is then uniform over the close set,
else uniform over the far set (both sets enumerated, so no rejection loop).
The configs use 0.5 (balanced, the usual choice for siamese contrastive
training); the fraction seen in training is logged as the ``close_frac`` metric.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.pretext.base import Pretext
from keras_ssl.pretext.egomotion import apply_transform
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class SFAPairsParams(Params):
    """The moves and the close/far rule (the thesis's MNIST protocol by default).

    - ``max_shift_px``, ``max_rotation_deg``, ``exclude_zero_rotation``: the
      moves, as egomotion's (integer pixels and degrees).
    - ``close_shift_px``, ``close_rotation_deg``: a pair is close when |tx|, |ty|
      and |rotation| are all within these (pixels, degrees; the thesis: 1 and 3).
    - ``close_ratio``: the probability that a pair is close; None: the move
      uniform over all of them (module docstring).
    """
    max_shift_px: int = num(3, 0, 16)
    max_rotation_deg: int = num(30, 0, 180)
    exclude_zero_rotation: bool = True
    close_shift_px: int = num(1, 0)
    close_rotation_deg: int = num(3, 0)
    close_ratio: Optional[float] = num(0.5, 0.0, 1.0)

    def transforms(self) -> np.ndarray:
        """Every (tx, ty, deg) the sampler can draw, int32 [N, 3]."""
        s, r = self.max_shift_px, self.max_rotation_deg
        degs = [d for d in range(-r, r + 1) if d or not self.exclude_zero_rotation]
        return np.array(list(itertools.product(range(-s, s + 1), range(-s, s + 1), degs)), np.int32)

    def is_close(self, t: np.ndarray) -> np.ndarray:
        return ((np.abs(t[:, 0]) <= self.close_shift_px) & (np.abs(t[:, 1]) <= self.close_shift_px)
                & (np.abs(t[:, 2]) <= self.close_rotation_deg))

    def validate(self):
        t = self.transforms()
        if len(t) == 0:
            raise ValueError("no transforms: max_rotation_deg=0 with exclude_zero_rotation")
        close = self.is_close(t)
        if self.close_ratio is not None:
            if self.close_ratio > 0 and not close.any():
                raise ValueError("close_ratio > 0 but no transform is close under the thresholds")
            if self.close_ratio < 1 and close.all():
                raise ValueError("close_ratio < 1 but every transform is close under the thresholds")


class SFAPairsPretext(Pretext):
    def __init__(self, params: SFAPairsParams, image_shape):
        super().__init__(view_names=("first", "second"), view_shape=tuple(image_shape), targets={})
        self.params = params
        t = params.transforms()
        close = params.is_close(t)
        self._all = tf.constant(t)
        self._close = tf.constant(t[close].reshape(-1, 3))
        self._far = tf.constant(t[~close].reshape(-1, 3))
        self.uniform_close_fraction = float(close.mean())

    def __call__(self, images, index, seed):
        p = self.params
        b = tf.shape(images)[0]
        s_pick, s_close, s_far = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        if p.close_ratio is None:
            k = tf.random.stateless_uniform([b], s_pick, 0, self._all.shape[0], dtype=tf.int32)
            t = tf.gather(self._all, k)
        else:
            want_close = tf.random.stateless_uniform([b], s_pick) < p.close_ratio
            t = self._far if self._far.shape[0] else self._close
            t_far = tf.gather(t, tf.random.stateless_uniform([b], s_far, 0, t.shape[0], dtype=tf.int32))
            t = self._close if self._close.shape[0] else self._far
            t_close = tf.gather(t, tf.random.stateless_uniform([b], s_close, 0, t.shape[0], dtype=tf.int32))
            t = tf.where(want_close[:, None], t_close, t_far)
        tx, ty, deg = t[:, 0], t[:, 1], t[:, 2]
        close = ((tf.abs(tx) <= p.close_shift_px) & (tf.abs(ty) <= p.close_shift_px)
                 & (tf.abs(deg) <= p.close_rotation_deg))
        moved = apply_transform(images, tx, ty, deg)
        labels = {"close": tf.cast(close, tf.int32), "tx_px": tx, "ty_px": ty, "rz_deg": deg}
        return {"first": images, "second": moved}, labels

    def describe(self, labels, i):
        kind = "close" if int(labels["close"][i]) else "far"
        return (f"{kind}: tx={int(labels['tx_px'][i])}px ty={int(labels['ty_px'][i])}px "
                f"rot={int(labels['rz_deg'][i])}deg")


@register("pretext", "sfa_pairs", SFAPairsParams)
def build_sfa_pairs(params: SFAPairsParams, image_shape) -> SFAPairsPretext:
    return SFAPairsPretext(params, image_shape)
