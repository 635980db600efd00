"""InfoNCE against a queue of keys (MoCo: He, Fan, Wu, Xie, Girshick, "Momentum
Contrast for Unsupervised Visual Representation Learning", CVPR 2020, eq. 1 and
Algorithm 1; MoCo v2: Chen, Fan, Girshick, He, "Improved Baselines with
Momentum Contrastive Learning", arXiv:2003.04297, 2020, temperature 0.2).

A query q_i (an L2-normalised embedding of one view of image i) is scored
against its positive key k_i (the embedding of another view of the same image,
from the momentum encoder) and the K keys of the queue, n_1 .. n_K (earlier
batches' keys, other images), by dot products over the temperature tau:

    logits_i = [q_i . k_i, q_i . n_1, ..., q_i . n_K] / tau        [B, 1 + K]
    L_i = -log softmax(logits_i)[0]
        = -q_i . k_i / tau + log(exp(q_i . k_i / tau) + sum_j exp(q_i . n_j / tau)),

the cross-entropy of a (1 + K)-way classification whose class is index 0, the
positive. It equals :func:`keras_ssl.losses.nce.nce_loss` with
``kind="softmax"`` (one shared set of negatives), written here as the papers
write it.
"""
from __future__ import annotations

import tensorflow as tf


def _check_temperature(temperature: float) -> None:
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def moco_logits(query: tf.Tensor, key: tf.Tensor, queue: tf.Tensor, temperature: float) -> tf.Tensor:
    """float32 [B, 1 + K]: column 0 ``q_i . k_i / tau``, columns 1..K ``q_i . n_j / tau``.

    query, key: float [B, D]; queue: float [K, D] (shared by the batch).
    """
    _check_temperature(temperature)
    q = tf.cast(query, tf.float32)
    pos = tf.reduce_sum(q * tf.cast(key, tf.float32), axis=-1, keepdims=True)       # [B, 1]
    neg = tf.matmul(q, tf.cast(queue, tf.float32), transpose_b=True)               # [B, K]
    return tf.concat([pos, neg], axis=-1) / temperature


def moco_infonce(query: tf.Tensor, key: tf.Tensor, queue: tf.Tensor,
                 temperature: float = 0.2) -> tf.Tensor:
    """Per-query InfoNCE, float32 [B] (see the module docstring).

    query, key: float [B, D], L2-normalised (not normalised here: scaling the query
    by c divides the temperature by c); queue: float [K, D], K >= 1; temperature:
    tau > 0 (MoCo v1 0.07, v2 0.2). Gradients flow into ``query`` (and into
    ``key``/``queue`` if they carry any: MoCo's keys do not, they are computed under
    ``stop_gradient``).
    """
    logits = moco_logits(query, key, queue, temperature)
    labels = tf.zeros(tf.shape(logits)[:1], tf.int32)                               # the positive: index 0
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def queue_accuracy(query: tf.Tensor, key: tf.Tensor, queue: tf.Tensor) -> tf.Tensor:
    """float32 [B]: 1 where the positive key scores above every key of the queue
    (top-1 of the (1 + K)-way classification)."""
    logits = moco_logits(query, key, queue, 1.0)
    return tf.cast(logits[:, 0] > tf.reduce_max(logits[:, 1:], axis=-1), tf.float32)
