"""Reconstruction loss for autoencoders (the egomotion paper's baseline, Agrawal et al. 2015)
and, with a mask, for context encoders (Pathak et al. 2016, "Context Encoders: Feature
Learning by Inpainting": the loss on the dropped region only)."""
from __future__ import annotations

import typing
from typing import Literal, Optional

import tensorflow as tf

#: The loss kinds (a config's ``method.loss`` of the autoencoder and of inpainting).
ReconstructionKind = Literal["bce", "mse"]
KINDS = typing.get_args(ReconstructionKind)


def reconstruction_loss(logits: tf.Tensor, target: tf.Tensor, kind: ReconstructionKind = "bce",
                        mask: Optional[tf.Tensor] = None, context_weight: float = 0.0) -> tf.Tensor:
    """Per-example reconstruction loss, float32 [N].

    logits: float [N, H, W, C], the decoder's pre-sigmoid output; target:
    float [N, H, W, C] in [0, 1]. ``bce``: pixel-wise binary cross-entropy
    (targets in [0, 1] are treated as probabilities, as for MNIST), ``mse``:
    squared error of ``sigmoid(logits)``.

    Without ``mask``: averaged over pixels (the autoencoder). With ``mask``
    (float [N, H, W, 1] or [N, H, W, C], 1 on the removed pixels, 0 on the
    context; Pathak et al. 2016, eq. 1, ``||M * (x - F((1 - M) * x))||^2``):
    ``sum(w * loss_pixel) / sum(M)`` per example, with ``w = M + context_weight
    * (1 - M)`` and the sums over every pixel and channel (a one-channel mask
    counts once per channel). So the loss is the mean over the removed values,
    plus ``context_weight`` times the context's summed loss in the same unit;
    an example with an empty mask gives ``context_weight`` times its context's
    summed loss (the count is clamped to 1).
    """
    logits = tf.cast(logits, tf.float32)
    target = tf.cast(target, tf.float32)
    if kind == "bce":
        per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
    elif kind == "mse":
        per_pixel = tf.square(tf.sigmoid(logits) - target)
    else:
        raise ValueError(f"unknown reconstruction loss {kind!r}; known: {KINDS}")
    n = tf.shape(per_pixel)[0]
    if mask is None:
        return tf.reduce_mean(tf.reshape(per_pixel, [n, -1]), axis=1)
    if context_weight < 0:
        raise ValueError(f"context_weight must be >= 0, got {context_weight}")
    mask = tf.broadcast_to(tf.cast(mask, tf.float32), tf.shape(per_pixel))
    weight = mask + context_weight * (1.0 - mask) if context_weight else mask
    total = tf.reduce_sum(tf.reshape(weight * per_pixel, [n, -1]), axis=1)
    count = tf.reduce_sum(tf.reshape(mask, [n, -1]), axis=1)
    return total / tf.maximum(count, 1.0)
