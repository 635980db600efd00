"""Autoencoder baseline (Agrawal et al. 2015 compare egomotion against one):
the encoder's features are decoded back to the image and the reconstruction
loss (:func:`keras_ssl.losses.reconstruction.reconstruction_loss`) trains both.

Decoder (convolutional): dense ``hidden`` (ReLU, optional) -> dense to a
``ceil(H/4) x ceil(W/4) x channels`` map (ReLU) -> transposed conv
``channels // 2`` 4x4 stride 2 (ReLU) -> transposed conv C 4x4 stride 2 ->
cropped to H x W: pre-sigmoid logits. Only the encoder is kept for
evaluation and export. Use with the ``reconstruction`` pretext (one view,
label ``target`` = the clean image).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.losses.reconstruction import ReconstructionKind, reconstruction_loss
from keras_ssl.methods.base import NO_FACTS, DatasetFacts, Method, view_inputs
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class AutoencoderParams(Params):
    """The decoder and its loss (module docstring).

    - ``hidden``: units of a dense layer (ReLU) before the spatial map; 0: none.
    - ``channels``: channels of the first decoder feature map (the second has half).
    - ``loss``: ``"bce"`` (pixel-wise binary cross-entropy) or ``"mse"`` (of the sigmoid).
    - ``target_label``: the label holding the clean image, float32 [B, H, W, C] in [0, 1].
    """
    hidden: int = num(0, 0)
    channels: int = num(64, 2)
    loss: ReconstructionKind = "bce"
    target_label: str = "target"


class Autoencoder(Method):
    def __init__(self, encoder, network, params: AutoencoderParams, **kwargs):
        super().__init__(encoder, network, **kwargs)
        self.params = params

    def per_example(self, outputs, labels):
        logits = outputs["reconstruction"]
        target = labels[self.params.target_label]
        loss = reconstruction_loss(logits, target, self.params.loss)
        mse = tf.reduce_mean(tf.reshape(tf.square(tf.sigmoid(logits) - target), [tf.shape(logits)[0], -1]), 1)
        return loss, {"mse": mse}


def conv_decoder(features, image_shape, hidden: int, channels: int, prefix: str = "dec"):
    """The convolutional decoder of the module docstring: encoder features [B, D]
    -> pre-sigmoid logits [B, H, W, C] of ``image_shape`` (H, W, C). Layers
    ``dec_hidden`` (if ``hidden``), ``dec_map``, ``dec_reshape``, ``dec_up1``,
    ``dec_up2``, ``dec_crop`` (if H or W is not a multiple of 4), ``dec`` being
    ``prefix``; shared by the autoencoder, the context encoder (``methods/inpainting.py``)
    and the colour methods (``methods/colorization.py``, ``methods/split_brain.py``)."""
    h, w, c = image_shape
    h0, w0 = math.ceil(h / 4), math.ceil(w / 4)
    x = features
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name=f"{prefix}_hidden")(x)
    x = keras.layers.Dense(h0 * w0 * channels, activation="relu", name=f"{prefix}_map")(x)
    x = keras.layers.Reshape((h0, w0, channels), name=f"{prefix}_reshape")(x)
    x = keras.layers.Conv2DTranspose(max(channels // 2, 1), 4, strides=2, padding="same",
                                     activation="relu", name=f"{prefix}_up1")(x)
    x = keras.layers.Conv2DTranspose(c, 4, strides=2, padding="same", name=f"{prefix}_up2")(x)
    if 4 * h0 != h or 4 * w0 != w:
        x = keras.layers.Cropping2D(((0, 4 * h0 - h), (0, 4 * w0 - w)), name=f"{prefix}_crop")(x)
    return x


@register("method", "autoencoder", AutoencoderParams)
def build_autoencoder(p: AutoencoderParams, encoder: keras.Model, pretext, *,
                      facts: DatasetFacts = NO_FACTS) -> Autoencoder:
    if len(pretext.view_names) != 1:
        raise ValueError(f"method 'autoencoder' needs a pretext with one view, got {pretext.view_names}")
    inputs = view_inputs(pretext)
    x = conv_decoder(encoder(inputs[0]), pretext.view_shape, p.hidden, p.channels)
    network = keras.Model(inputs, {"reconstruction": x}, name="autoencoder")
    return Autoencoder(encoder, network, p, name="autoencoder")
