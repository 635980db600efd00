"""Features of a frozen encoder, and the kNN score on them.

Contracts:

- :func:`encode`: uint8 images -> a list with one float array per output of
  ``model`` (one element for a single-output model), computed in inference
  mode 1,000 images at a time; rows follow the images' order.
- :func:`knn_accuracy`: each test feature gets the majority label of its
  ``k`` nearest (cosine) labeled training features; ties go to the class
  whose neighbours are the most similar in sum. ``num_classes`` is the depth
  of the vote (labels in ``0 .. num_classes - 1``).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_ssl.data.pipeline import to_float


def encode(model: keras.Model, images_uint8: np.ndarray, batch: int = 1000) -> list[np.ndarray]:
    """Features of uint8 images (list of arrays when ``model`` has several outputs)."""
    fn = tf.function(lambda x: model(to_float(x), training=False), reduce_retracing=True)
    outs = None
    for i in range(0, len(images_uint8), batch):
        o = fn(tf.convert_to_tensor(images_uint8[i:i + batch]))
        o = [o] if not isinstance(o, (list, tuple)) else list(o)
        outs = [[t.numpy()] for t in o] if outs is None else [a + [t.numpy()] for a, t in zip(outs, o)]
    return [np.concatenate(a) for a in outs]


def knn_accuracy(train_f, train_y, test_f, test_y, k: int, *, num_classes: int,
                 batch: int = 1000) -> float:
    """Majority vote of the k nearest (cosine) labeled neighbours; ties -> most similar sum."""
    def norm(a):
        a = tf.convert_to_tensor(a, tf.float32)
        return tf.math.l2_normalize(tf.reshape(a, [tf.shape(a)[0], -1]), axis=1)
    tr, k = norm(train_f), min(k, len(train_y))
    ty = tf.constant(train_y, tf.int32)
    correct = 0
    for i in range(0, len(test_y), batch):
        sim = tf.matmul(norm(test_f[i:i + batch]), tr, transpose_b=True)
        top_sim, top_idx = tf.math.top_k(sim, k)
        votes = tf.one_hot(tf.gather(ty, top_idx), num_classes)          # [b, k, C]
        score = tf.reduce_sum(votes, 1) + 1e-3 * tf.reduce_sum(votes * top_sim[..., None], 1)
        correct += int(np.sum(np.argmax(score, -1) == test_y[i:i + batch]))
    return correct / len(test_y)
