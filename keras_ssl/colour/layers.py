"""The layer that feeds an encoder Lab channels of RGB images, inside the graph.

:class:`LabInput` maps float sRGB images [B, H, W, 3] in [0, 1] to the Lab channels
``channels`` names, scaled to about unit range: ``L / 100`` (in [0, 1]) and
``a / 110``, ``b / 110`` (sRGB colours: about [-1, 1]). A pretext whose views are Lab
channels of the image declares it as its ``input_transform``
(:class:`keras_ssl.pretext.base.Pretext`): its views are this layer's output, and the
encoder that is evaluated and exported is this layer followed by the encoder
(:func:`keras_ssl.encoders.build_encoder`), so it takes RGB images and sees exactly what
pretraining showed it.
"""
from __future__ import annotations

from typing import Literal

import keras
import tensorflow as tf

from keras_ssl.colour.lab import rgb_to_lab

#: Lab channels an encoder can be fed, and their indices in (L, a, b).
CHANNELS = {"L": (0,), "ab": (1, 2), "Lab": (0, 1, 2)}
L_SCALE, AB_SCALE = 100.0, 110.0
LabChannels = Literal["L", "ab", "Lab"]


def scaled_lab(rgb: tf.Tensor) -> tf.Tensor:
    """float32 [..., 3]: (L / 100, a / 110, b / 110) of sRGB in [0, 1]."""
    return rgb_to_lab(rgb) / tf.constant([L_SCALE, AB_SCALE, AB_SCALE])


@keras.saving.register_keras_serializable(package="keras_ssl")
class LabInput(keras.layers.Layer):
    """sRGB [B, H, W, 3] in [0, 1] -> the scaled Lab ``channels`` [B, H, W, len(channels)]
    (module docstring). Always float32: the conversion's powers stay exact."""

    def __init__(self, channels: str = "L", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if channels not in CHANNELS:
            raise ValueError(f"LabInput channels must be one of {sorted(CHANNELS)}, got {channels!r}")
        self.channels = channels

    def call(self, images):
        lab = scaled_lab(images)
        idx = CHANNELS[self.channels]
        return lab[..., idx[0]:idx[-1] + 1]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(CHANNELS[self.channels]))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}
