"""The contract between a method and the trainer.

A method is a ``keras.Model`` that owns the encoder (shared by all views) and
a functional ``network`` mapping the pretext's views to named outputs. It
defines the loss per example; the trainer runs :meth:`Method.replica_step`
inside ``strategy.run``. A method with state beyond its weights (a memory
bank) updates it in :meth:`Method.after_step` (or overrides ``replica_step``)
and keeps that state in ``tf.Variable``s
tracked by the model, so checkpoints carry it. Such a method learns the
number of images that the sampler's ``index`` addresses from
``pretext.num_images`` (set by the trainer before the method is built).
"""
from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_ssl")
class StackViews(keras.layers.Layer):
    """[B, ...] x n -> [n*B, ...]: one encoder pass for every view (faster than n calls)."""

    def call(self, views):
        return keras.ops.concatenate(views, axis=0)


@keras.saving.register_keras_serializable(package="keras_ssl")
class SplitConcat(keras.layers.Layer):
    """[n*B, D] -> [B, n*D]: the n views' features side by side."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = n

    def call(self, x):
        return keras.ops.concatenate(keras.ops.split(x, self.n, axis=0), axis=-1)

    def get_config(self):
        return {**super().get_config(), "n": self.n}


def siamese_features(encoder: keras.Model, inputs: list) -> keras.KerasTensor:
    """Shared-weight towers over ``inputs``: features concatenated per example."""
    if len(inputs) == 1:
        return encoder(inputs[0])
    stacked = StackViews(name="stack_views")(inputs)
    return SplitConcat(len(inputs), name="towers")(encoder(stacked))


def view_inputs(pretext) -> list:
    return [keras.Input(shape=pretext.view_shape, name=v) for v in pretext.view_names]


class Method(keras.Model):
    """Base class: subclasses build ``self.network`` and define ``per_example``."""

    def __init__(self, encoder: keras.Model, network: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.network = network

    def call(self, views, training=False):
        return self.network(views, training=training)

    def per_example(self, outputs: dict, labels: dict):
        """-> (loss [B] float32, metrics {name: [B] float32}); metrics are averaged."""
        raise TypeError(f"{type(self).__name__} must define per_example")

    def decayed_weights(self) -> list:
        """Weights that get L2 weight decay: kernels, not biases or norms."""
        return [w for w in self.trainable_weights if w.path.endswith("kernel")]

    def replica_step(self, views, labels, optimizer, global_batch_size, l2: float):
        """One optimizer step on this replica's share of the global batch.

        The loss is summed over the replica's examples and divided by the
        *global* batch size, so gradients summed across replicas equal the
        single-device gradient of the batch mean. ``l2``: Caffe-style weight
        decay, added to the gradient as ``l2 * w`` (coupled with momentum).
        Returns per-replica sums of the loss and each metric.
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            outputs = self(views, training=True)
            loss, metrics = self.per_example(outputs, labels)
            total = tf.reduce_sum(loss) / global_batch_size
        variables = self.trainable_variables
        grads = tape.gradient(total, variables)
        if l2:
            # d/dw of 0.5 * l2 * |w|^2 added to the gradient directly: the same
            # update as differentiating the loss term, measured faster end to end.
            # Divided by the replica count: optimizers sum gradients across replicas.
            decayed = {id(w) for w in self.decayed_weights()}
            coef = l2 / replicas
            grads = [g + coef * tf.convert_to_tensor(w) if (g is not None and id(w) in decayed) else g
                     for g, w in zip(grads, variables)]
        optimizer.apply_gradients(zip(grads, variables))
        self.after_step(outputs, labels)
        return self._sums(loss, metrics)

    def after_step(self, outputs: dict, labels: dict) -> None:
        """Update state beyond the weights from this step's (replica-local)
        outputs, after the optimizer step; default: nothing. Runs in replica
        context: a method that keeps a memory bank gathers across replicas here."""
        return None

    def eval_step(self, views, labels):
        outputs = self(views, training=False)
        loss, metrics = self.per_example(outputs, labels)
        return self._sums(loss, metrics)

    @staticmethod
    def _sums(loss, metrics):
        out = {"loss": tf.reduce_sum(loss)}
        for k, v in metrics.items():
            out[k] = tf.reduce_sum(tf.cast(v, tf.float32))
        return out
