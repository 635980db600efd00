"""Pairwise contrastive loss (Hadsell, Chopra, LeCun, "Dimensionality
Reduction by Learning an Invariant Mapping", CVPR 2006), as used by the SFA
baseline of Agrawal et al. 2015:

    E = 1/(2N) sum_i [ y_i d_i^2 + (1 - y_i) max(m - d_i, 0)^2 ],
    d_i = || a_i - b_i ||_2,

``y = 1`` for similar ("close") pairs, pulled together; ``y = 0`` for
dissimilar ("far") pairs, pushed apart until they are ``m`` apart. A few lines
of ``tf`` ops: no tensorflow-addons (end of life, TF <= 2.15).
"""
from __future__ import annotations

import tensorflow as tf

_EPS = 1e-12


def pair_distance(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Euclidean distance per row: a, b float [N, D] -> [N].

    The square root is taken of ``max(d^2, eps)`` so its gradient stays finite
    for identical rows.
    """
    return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(a - b), axis=-1), _EPS))


def contrastive_loss(a: tf.Tensor, b: tf.Tensor, similar: tf.Tensor, margin: float,
                     reduce: bool = False) -> tf.Tensor:
    """Contrastive loss of embedding pairs.

    a, b: float [N, D]; similar: [N] (1 similar, 0 dissimilar; any dtype);
    margin: m > 0. Returns the per-pair terms ``0.5 * [y d^2 + (1-y) max(m-d, 0)^2]``
    as float32 [N] (their mean is E above), or E itself with ``reduce=True``.
    The similar term uses ``d^2`` directly (exact zero and zero gradient for
    identical pairs).
    """
    a = tf.cast(a, tf.float32)
    b = tf.cast(b, tf.float32)
    y = tf.cast(similar, tf.float32)
    d2 = tf.reduce_sum(tf.square(a - b), axis=-1)
    d = tf.sqrt(tf.maximum(d2, _EPS))
    per_pair = 0.5 * (y * d2 + (1.0 - y) * tf.square(tf.nn.relu(margin - d)))
    return tf.reduce_mean(per_pair) if reduce else per_pair
