"""The classifiers the few-label scores train: a head on features, trained in-graph.

Contracts:

- :func:`mlp_head`: ``features [N, in_dim]`` -> logits ``[N, num_classes]``;
  dense ``hidden`` + ReLU + dropout, then dense ``num_classes`` (``hidden=0``:
  softmax regression). Layer names start with ``name``.
- :func:`train_classifier`: trains every trainable weight of any model
  mapping ``x`` to logits (a head on features, or encoder + head on images)
  with SGD + momentum and coupled L2 on the kernels, batches drawn with
  replacement by stateless ops seeded by ``(seed, step)``: the same model
  weights, data and seed give the same trained model.
- :func:`predict`: the model's argmax class of each example, in inference mode (no
  dropout), 1,000 examples at a time; :func:`accuracy`: the fraction of ``y`` it gets right.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def mlp_head(in_dim: int, hidden: int, dropout: float, *, num_classes: int,
             name: str = "head") -> keras.Model:
    """Dense ``hidden`` + ReLU [+ dropout] -> dense ``num_classes`` (``hidden=0``: linear)."""
    inp = keras.Input((in_dim,), name="features")
    x = inp
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name=f"{name}_fc")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    out = keras.layers.Dense(num_classes, name=f"{name}_logits")(x)
    return keras.Model(inp, out, name=name)


def train_classifier(model: keras.Model, x, y, steps: int, batch: int, lr: float,
                     momentum: float, l2: float, seed: int) -> keras.Model:
    """SGD with momentum and coupled L2 on batches drawn with replacement.

    The whole loop is one ``tf.function`` (no Python per step); batch indices
    come from stateless random ops seeded by ``(seed, step)``.
    """
    x = tf.convert_to_tensor(x)
    y = tf.convert_to_tensor(y, tf.int32)
    n = int(x.shape[0])
    opt = keras.optimizers.SGD(lr, momentum=momentum)
    opt.build(model.trainable_variables)
    decayed = [w for w in model.trainable_weights if w.path.endswith("kernel")]

    @tf.function(reduce_retracing=True)
    def loop(x, y):
        for i in tf.range(steps):
            idx = tf.random.stateless_uniform([batch], tf.stack([seed, i]), 0, n, dtype=tf.int32)
            xb, yb = tf.gather(x, idx), tf.gather(y, idx)
            with tf.GradientTape() as tape:
                logits = model(xb, training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits))
                if l2 and decayed:
                    loss += 0.5 * l2 * tf.add_n([tf.reduce_sum(tf.square(w)) for w in decayed])
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    loop(x, y)
    return model


def predict(model: keras.Model, x, batch: int = 1000) -> np.ndarray:
    """int64 [N]: the argmax class of the logits of each example, inference mode."""
    out = [np.argmax(model(tf.convert_to_tensor(x[i:i + batch]), training=False), -1)
           for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.int64) if out else np.zeros([0], np.int64)


def accuracy(model: keras.Model, x, y, batch: int = 1000) -> float:
    """Fraction of ``y`` predicted (argmax of the logits), inference mode."""
    return float(np.mean(predict(model, x, batch) == np.asarray(y)))
