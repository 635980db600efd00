"""Egomotion pairs (Agrawal, Carreira, Malik, "Learning to See by Moving",
ICCV 2015; MNIST protocol of the 2017 thesis reproduction).

A pair is (image, moved copy): the copy is the image rotated about its centre
by an integer angle, then translated by integer pixels, black fill outside.
Labels describe the move from the first view to the second:

- ``tx``, ``ty``: shift in pixels in [-S, S] -> class ``shift + S`` (2S+1 classes);
  +x moves content right, +y moves content down.
- ``rz``: rotation in integer degrees in [-R, R] (0 excluded by default), the
  sorted values cut into ``rotation_bins`` equal bins of consecutive degrees.
  Positive degrees turn the content clockwise as the image is displayed
  (x right, y down).

Raw values travel too (``tx_px``, ``ty_px``, ``rz_deg``) for methods that
derive other labels from them (SFA close/far pairs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.pretext.base import Pretext
from keras_ssl.pretext.transforms import affine_matrices, warp
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class EgomotionParams(Params):
    """The moves between the two views (the thesis's MNIST protocol by default).

    - ``max_shift_px``: S, shifts in [-S, S] pixels on each axis (2S+1 classes each).
    - ``max_rotation_deg``: R, rotations in [-R, R] integer degrees.
    - ``rotation_bins``: classes of ``rz``: equal bins of consecutive degrees
      (must divide the number of rotation values).
    - ``exclude_zero_rotation``: leave 0 degrees out (the thesis: 60 values for R = 30).
    """
    max_shift_px: int = num(3, 0, 16)
    max_rotation_deg: int = num(30, 0, 180)
    rotation_bins: int = num(20, 1)
    exclude_zero_rotation: bool = True

    def rotation_values(self) -> np.ndarray:
        r = self.max_rotation_deg
        v = np.arange(-r, r + 1)
        return v[v != 0] if self.exclude_zero_rotation else v

    def validate(self):
        n = len(self.rotation_values())
        if n == 0:
            raise ValueError("no rotation values: max_rotation_deg=0 with exclude_zero_rotation")
        if n % self.rotation_bins:
            raise ValueError(f"rotation_bins={self.rotation_bins} must divide the {n} rotation values")


def apply_transform(images, tx, ty, deg, interpolation="BILINEAR") -> tf.Tensor:
    """Rotate about the centre by ``deg`` then shift by (tx, ty); black fill
    (conventions: :mod:`keras_ssl.pretext.transforms`)."""
    h, w = images.shape[1], images.shape[2]
    return warp(images, affine_matrices(tx, ty, deg, h, w), interpolation)


class EgomotionPretext(Pretext):
    def __init__(self, params: EgomotionParams, image_shape):
        s = params.max_shift_px
        super().__init__(view_names=("first", "second"), view_shape=tuple(image_shape),
                         targets={"tx": 2 * s + 1, "ty": 2 * s + 1, "rz": params.rotation_bins})
        self.params = params
        values = params.rotation_values()
        self._rot_values = tf.constant(values, tf.int32)
        self._per_bin = len(values) // params.rotation_bins

    def __call__(self, images, index, seed):
        p = self.params
        b = tf.shape(images)[0]
        s1, s2, s3 = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        s = p.max_shift_px
        tx = tf.random.stateless_uniform([b], s1, -s, s + 1, dtype=tf.int32)
        ty = tf.random.stateless_uniform([b], s2, -s, s + 1, dtype=tf.int32)
        k = tf.random.stateless_uniform([b], s3, 0, len(p.rotation_values()), dtype=tf.int32)
        deg = tf.gather(self._rot_values, k)
        moved = apply_transform(images, tx, ty, deg)
        labels = {"tx": tx + s, "ty": ty + s, "rz": k // self._per_bin,
                  "tx_px": tx, "ty_px": ty, "rz_deg": deg}
        return {"first": images, "second": moved}, labels

    def describe(self, labels, i):
        return (f"tx={int(labels['tx_px'][i])}px ty={int(labels['ty_px'][i])}px "
                f"rot={int(labels['rz_deg'][i])}deg (bin {int(labels['rz'][i])})")


@register("pretext", "egomotion", EgomotionParams)
def build_egomotion(params: EgomotionParams, image_shape) -> EgomotionPretext:
    return EgomotionPretext(params, image_shape)
