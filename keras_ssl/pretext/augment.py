"""Augmented images for instance discrimination (NPID: Wu et al., CVPR 2018;
MoCo: He et al., CVPR 2020).

One view, ``image`` (``views: 1``, the default): the image under a random
affine map about its centre:
scale in [``min_scale``, ``max_scale``], rotation in
[-``max_rotation_deg``, ``max_rotation_deg``] degrees, then a shift in
[-``max_shift_px``, ``max_shift_px``] px on each axis (all uniform,
continuous, bilinear, black fill): MNIST's counterpart of NPID's random
resized crops. No classification target: labels are ``index`` (the images'
dataset indices, which address the memory bank) and ``seed`` (the batch's
stateless seed on every row, from which memory-bank methods draw their
negatives identically on every replica). Use with method ``npid``.

``views: 2``: two views, ``image`` and ``image2``, the same image under two
independent random maps (MoCo's query and key crops). Use with method ``moco``.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.pretext.base import Pretext
from keras_ssl.pretext.transforms import affine_matrices, warp
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class AugmentParams(Params):
    """The random affine map, each parameter uniform (continuous) per image.

    - ``max_shift_px``: shift in [-max, max] pixels on each axis.
    - ``max_rotation_deg``: rotation in [-max, max] degrees.
    - ``min_scale``, ``max_scale``: scale factor range (1: none; min <= max).
    """
    max_shift_px: float = num(3.0, 0.0, 16.0)
    max_rotation_deg: float = num(15.0, 0.0, 180.0)
    min_scale: float = num(0.85, 0.0, None, lo_open=True)
    max_scale: float = num(1.1, 0.0, None, lo_open=True)

    def validate(self):
        if self.min_scale > self.max_scale:
            raise ValueError(f"min_scale={self.min_scale} > max_scale={self.max_scale}")


def random_affine(images: tf.Tensor, seed: tf.Tensor, p: AugmentParams) -> tf.Tensor:
    """``images`` [B, H, W, C] under one random affine map each (stateless)."""
    b = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    s = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    scale = tf.random.stateless_uniform([b], s[0], p.min_scale, p.max_scale)
    deg = tf.random.stateless_uniform([b], s[1], -p.max_rotation_deg, p.max_rotation_deg)
    tx = tf.random.stateless_uniform([b], s[2], -p.max_shift_px, p.max_shift_px)
    ty = tf.random.stateless_uniform([b], s[3], -p.max_shift_px, p.max_shift_px)
    return warp(images, affine_matrices(tx, ty, deg, h, w, scale))


def bank_labels(index: tf.Tensor, seed: tf.Tensor) -> dict:
    """Labels every memory-bank method needs: ``index`` int64 [B] and the
    batch seed ``seed`` int32 [B, 2] (each row the same: a replica's share of
    the batch carries it too)."""
    b = tf.shape(index)[0]
    return {"index": tf.cast(index, tf.int64), "seed": tf.tile(tf.cast(seed, tf.int32)[None], [b, 1])}


@dataclass(frozen=True)
class AugmentPretextParams(AugmentParams):
    """The random affine map (:class:`AugmentParams`) plus ``views``: the number of
    augmented views of each image, 1 (``image``: NPID) or 2 (``image`` and ``image2``,
    independent draws: MoCo's two crops)."""
    views: int = num(1, 1, 2)


#: The view names of ``views`` = 1 and 2.
VIEW_NAMES = {1: ("image",), 2: ("image", "image2")}


class AugmentPretext(Pretext):
    def __init__(self, params: AugmentPretextParams, image_shape):
        super().__init__(view_names=VIEW_NAMES[params.views], view_shape=tuple(image_shape), targets={})
        self.params = params

    def __call__(self, images, index, seed):
        s_aug, s_bank = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if self.params.views == 1:   # one view: the draws NPID's runs were made with
            return {"image": random_affine(images, s_aug, self.params)}, bank_labels(index, s_bank)
        seeds = tf.unstack(tf.random.experimental.stateless_split(s_aug, self.params.views))
        views = {v: random_affine(images, s, self.params) for v, s in zip(self.view_names, seeds)}
        return views, bank_labels(index, s_bank)

    def describe(self, labels, i):
        n = self.params.views
        return f"image {int(labels['index'][i])} ({'augmented' if n == 1 else f'{n} augmented views'})"


@register("pretext", "augment", AugmentPretextParams)
def build_augment(params: AugmentPretextParams, image_shape) -> AugmentPretext:
    return AugmentPretext(params, image_shape)
