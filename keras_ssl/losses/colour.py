"""Multinomial cross-entropy against soft-encoded bins, per example (Zhang, Isola, Efros
2016, "Colorful Image Colorization", eq. 2).

``soft_bin_cross_entropy(logits, bins, weights, pixel_weights)``: logits float
[B, h, w, Q] (pre-softmax, one distribution over Q bins per target pixel); ``bins`` int
[B, h, w, k], the k bins of each pixel's soft target, and ``weights`` float [B, h, w, k],
their target probabilities (summing to 1 over k; k = 1 with weight 1 is a hard label);
``pixel_weights`` float [B, h, w] or None (the rebalancing weight v(Z_hw) of each pixel,
1 when None). Per example:

    L_b = mean_{h, w} pixel_weights_bhw * ( - sum_k weights_bhwk * log softmax(logits_bhw)[bins_bhwk] )

a mean over target pixels where the paper sums (the same minimiser; the trainer's
learning rate is per example). Returns float32 [B].
"""
from __future__ import annotations

import tensorflow as tf


def pixel_cross_entropy(logits: tf.Tensor, bins: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """float32 [B, h, w]: the cross-entropy of each pixel's soft target (module docstring)."""
    logp = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    picked = tf.gather(logp, tf.cast(bins, tf.int32), batch_dims=3)            # [B, h, w, k]
    return -tf.reduce_sum(tf.cast(weights, tf.float32) * picked, axis=-1)


def soft_bin_cross_entropy(logits: tf.Tensor, bins: tf.Tensor, weights: tf.Tensor,
                           pixel_weights: tf.Tensor | None = None) -> tf.Tensor:
    """float32 [B]: the per-example loss of the module docstring."""
    ce = pixel_cross_entropy(logits, bins, weights)
    if pixel_weights is not None:
        ce = ce * tf.cast(pixel_weights, tf.float32)
    return tf.reduce_mean(ce, axis=[1, 2])
