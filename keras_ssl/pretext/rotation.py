"""Rotation prediction (Gidaris, Singh, Komodakis, "Unsupervised
Representation Learning by Predicting Image Rotations", ICLR 2018: RotNet).

One view: the image turned by ``k`` quarter turns, ``k`` uniform in
{0, 1, 2, 3}; target ``rotation`` = ``k`` (4 classes). Turns are
counter-clockwise as the image is displayed (``tf.image.rot90``,
``numpy.rot90``), exact (no interpolation). Use with method ``classify``.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from keras_ssl.config import ConfigError
from keras_ssl.pretext.base import Pretext
from keras_ssl.registry import Params, register

QUARTER_TURNS = 4


@dataclass(frozen=True)
class RotationParams(Params):
    """No parameters: the four quarter turns of RotNet (Gidaris et al. 2018)."""


class RotationPretext(Pretext):
    def __init__(self, params: RotationParams, image_shape):
        super().__init__(view_names=("image",), view_shape=tuple(image_shape),
                         targets={"rotation": QUARTER_TURNS})
        self.params = params

    def __call__(self, images, index, seed):
        b = tf.shape(images)[0]
        k = tf.random.stateless_uniform([b], seed, 0, QUARTER_TURNS, dtype=tf.int32)
        turned = tf.stack([tf.image.rot90(images, i) for i in range(QUARTER_TURNS)], axis=1)
        return {"image": tf.gather(turned, k, batch_dims=1)}, {"rotation": k}

    def describe(self, labels, i):
        return f"rotated {90 * int(labels['rotation'][i])} deg counter-clockwise"


@register("pretext", "rotation", RotationParams)
def build_rotation(params: RotationParams, image_shape) -> RotationPretext:
    if image_shape[0] != image_shape[1]:
        raise ConfigError(f"pretext 'rotation' needs square images, got {image_shape[0]}x{image_shape[1]}")
    return RotationPretext(params, image_shape)
