"""Reconstruction targets for the autoencoder baseline (the egomotion paper,
Agrawal et al. 2015, compares against one).

One view ``image``: the image, with optional Gaussian noise of deviation
``noise_std`` (clipped to [0, 1]; a denoising autoencoder when > 0). Label
``target``: the clean image, float32 [B, H, W, C]. No classification targets:
use method ``autoencoder``.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.pretext.base import Pretext
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class ReconstructionParams(Params):
    """``noise_std``: deviation of the Gaussian noise added to the input view, in
    pixel units of [0, 1] images (0: a plain autoencoder; > 0: denoising)."""
    noise_std: float = num(0.0, 0.0, 1.0)


class ReconstructionPretext(Pretext):
    def __init__(self, params: ReconstructionParams, image_shape):
        super().__init__(view_names=("image",), view_shape=tuple(image_shape), targets={})
        self.params = params

    def __call__(self, images, index, seed):
        x = images
        if self.params.noise_std:
            noise = tf.random.stateless_normal(tf.shape(images), seed, stddev=self.params.noise_std)
            x = tf.clip_by_value(images + noise, 0.0, 1.0)
        return {"image": x}, {"target": images}

    def describe(self, labels, i):
        return f"reconstruct (input noise std {self.params.noise_std})"


@register("pretext", "reconstruction", ReconstructionParams)
def build_reconstruction(params: ReconstructionParams, image_shape) -> ReconstructionPretext:
    return ReconstructionPretext(params, image_shape)
