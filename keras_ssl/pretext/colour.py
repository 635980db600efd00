"""Lab views of colour images: colorization (Zhang, Isola, Efros 2016, "Colorful Image
Colorization") and split-brain autoencoders (Zhang, Isola, Efros 2017, "Split-Brain
Autoencoders: Unsupervised Learning by Cross-Channel Prediction").

Both take RGB images (``data.channels`` 3), mirror each left-right with probability
``flip_prob`` (stateless, from the batch's seed) and convert it to CIE Lab in the graph
(:mod:`keras_ssl.colour.lab`). Labels, in Lab units: ``L``, float32 [B, H, W, 1] in
[0, 100]; ``ab``, float32 [B, H, W, 2].

- ``colorization``: one view ``L``, the lightness alone, ``L / 100`` [B, H, W, 1]: the
  input carries no colour (two images of the same lightness give the same view). Its
  ``input_transform`` is :class:`~keras_ssl.colour.layers.LabInput` ``"L"``: the
  evaluated and exported encoder takes RGB images and sees their L channel, as Zhang et
  al. evaluate their colorization features on grayscale images. Use method
  ``colorization``.
- ``split_brain``: one view ``lab``, (L / 100, a / 110, b / 110) [B, H, W, 3]; input transform
  ``LabInput("Lab")``. Use method ``split_brain`` with encoder ``channel_split``
  (groups [1, 2]), whose halves see L and ab.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from keras_ssl.colour.lab import rgb_to_lab
from keras_ssl.colour.layers import CHANNELS, LabInput
from keras_ssl.config import ConfigError, num
from keras_ssl.pretext.base import Pretext
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class ColourParams(Params):
    """``flip_prob``: probability that an image is mirrored left-right before conversion
    (augmentation; the papers train on random crops with mirroring)."""
    flip_prob: float = num(0.5, 0.0, 1.0)


def _check_rgb(name: str, image_shape) -> None:
    if len(image_shape) != 3 or int(image_shape[-1]) != 3:
        raise ConfigError(f"pretext {name!r} needs RGB images: data.channels must be 3, got image shape "
                          f"{tuple(image_shape)}")


class LabPretext(Pretext):
    """The shared sampler: ``view`` is the name of the one view, ``channels`` the Lab
    channels it holds (:data:`keras_ssl.colour.layers.CHANNELS`)."""

    def __init__(self, params: ColourParams, image_shape, view: str, channels: str):
        transform = LabInput(channels, name="encoder_input")
        h, w = int(image_shape[0]), int(image_shape[1])
        super().__init__(view_names=(view,), view_shape=(h, w, len(CHANNELS[channels])),
                         targets={}, input_transform=transform)
        self.params, self.view = params, view

    def __call__(self, images, index, seed):
        images = tf.convert_to_tensor(images, tf.float32)
        flip = tf.random.stateless_uniform([tf.shape(images)[0]], seed) < self.params.flip_prob
        images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
        lab = rgb_to_lab(images)
        return {self.view: self.input_transform(images)}, {"L": lab[..., :1], "ab": lab[..., 1:]}

    def describe(self, labels, i):
        ab = labels["ab"][i]
        return (f"{self.view} in; mean L {float(tf.reduce_mean(labels['L'][i])):.1f}, "
                f"mean |ab| {float(tf.reduce_mean(tf.norm(ab, axis=-1))):.1f}")


@register("pretext", "colorization", ColourParams)
def build_colorization(params: ColourParams, image_shape) -> LabPretext:
    _check_rgb("colorization", image_shape)
    return LabPretext(params, image_shape, "L", "L")


@register("pretext", "split_brain", ColourParams)
def build_lab(params: ColourParams, image_shape) -> LabPretext:
    _check_rgb("split_brain", image_shape)
    return LabPretext(params, image_shape, "lab", "Lab")
