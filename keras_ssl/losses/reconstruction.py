"""Reconstruction loss for autoencoders (the egomotion paper's baseline, Agrawal et al. 2015)."""
from __future__ import annotations

import typing
from typing import Literal

import tensorflow as tf

#: The loss kinds (a config's ``method.loss`` of the autoencoder).
ReconstructionKind = Literal["bce", "mse"]
KINDS = typing.get_args(ReconstructionKind)


def reconstruction_loss(logits: tf.Tensor, target: tf.Tensor, kind: ReconstructionKind = "bce") -> tf.Tensor:
    """Per-example reconstruction loss, float32 [N].

    logits: float [N, H, W, C], the decoder's pre-sigmoid output; target:
    float [N, H, W, C] in [0, 1]. ``bce``: pixel-wise binary cross-entropy
    (targets in [0, 1] are treated as probabilities, as for MNIST), ``mse``:
    squared error of ``sigmoid(logits)``; both averaged over pixels.
    """
    logits = tf.cast(logits, tf.float32)
    target = tf.cast(target, tf.float32)
    if kind == "bce":
        per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
    elif kind == "mse":
        per_pixel = tf.square(tf.sigmoid(logits) - target)
    else:
        raise ValueError(f"unknown reconstruction loss {kind!r}; known: {KINDS}")
    return tf.reduce_mean(tf.reshape(per_pixel, [tf.shape(per_pixel)[0], -1]), axis=1)
