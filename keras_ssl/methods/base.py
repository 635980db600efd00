"""The contract between a method and the trainer.

A method is a ``keras.Model`` that owns the encoder (shared by all views) and
a functional ``network`` mapping the pretext's views to named outputs. It
defines the loss per example; the trainer runs :meth:`Method.replica_step`
inside ``strategy.run``. A method with state beyond its weights (a memory
bank) updates it in :meth:`Method.after_step` (or overrides ``replica_step``)
and keeps that state in ``tf.Variable``s tracked by the model, so checkpoints
carry it. A method whose state is recomputed on the host from the whole
pretraining set between steps (DeepCluster's k-means) does it in
:meth:`Method.before_steps`, and says when through :meth:`Method.steps_before_hook`
(the trainer ends its multi-step chunks there).

Every method builder has the signature
``builder(params, encoder, pretext, *, facts=NO_FACTS) -> Method``: what the
pretraining data says (:class:`DatasetFacts`, e.g. the number of images that
the sampler's ``index`` label addresses) comes as ``facts``, from the trainer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

import keras
import tensorflow as tf

from keras_ssl.training.precision import as_float32, loss_scale


@dataclass(frozen=True)
class DatasetFacts:
    """Facts about the pretraining data that a method builder may need.

    ``num_images``: the number N of pretraining images; the sampler's label
    ``index`` lies in [0, N) (a memory bank keeps one entry per image). None:
    not known; a method that needs it refuses to build.
    """
    num_images: Optional[int] = None


@dataclass(frozen=True)
class HookContext:
    """What :meth:`Method.before_steps` gets from the trainer, on the host, between steps.

    ``images``: the uint8 pretraining images [N, H, W, C] (row i is the image of the
    sampler's ``index`` i); ``seed``: the run's seed (``seed`` of the config);
    ``encoder()``: the encoder computing in float32 (the trained one itself, or a
    float32 copy holding its weights under a mixed precision policy), for inference;
    ``strategy``: the run's ``tf.distribute`` strategy; ``optimizer``: the run's
    optimizer (e.g. to reset the slots of re-initialised weights).
    """
    images: Any
    seed: int
    encoder: Callable[[], keras.Model]
    strategy: Any = None
    optimizer: Any = None


#: The facts of a builder called without any (a method that needs one refuses to build).
NO_FACTS = DatasetFacts()

#: Dense-layer initialisation of the heads: ``"caffe"``: N(0, 0.005), the
#: thesis's Caffe model (Agrawal et al. 2015); ``"glorot"``: Glorot uniform.
DenseInit = Literal["caffe", "glorot"]


def dense_initializer(kind: DenseInit) -> keras.initializers.Initializer:
    """The initializer that ``kind`` names (one object, shared by a head's layers)."""
    if kind == "caffe":
        return keras.initializers.RandomNormal(0.0, 0.005)
    return keras.initializers.GlorotUniform()


@keras.saving.register_keras_serializable(package="keras_ssl")
class StackViews(keras.layers.Layer):
    """[B, ...] x n -> [n*B, ...]: one encoder pass for every view (faster than n calls)."""

    def call(self, views):
        return keras.ops.concatenate(views, axis=0)


@keras.saving.register_keras_serializable(package="keras_ssl")
class SplitViews(keras.layers.Layer):
    """Undo :class:`StackViews`: [n*B, D] -> n x [B, D], the views in order;
    with ``concat``, [n*B, D] -> [B, n*D], the n views' features side by side."""

    def __init__(self, n: int, concat: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.n, self.concat = n, concat

    def call(self, x):
        views = keras.ops.split(x, self.n, axis=0)
        return keras.ops.concatenate(views, axis=-1) if self.concat else views

    def get_config(self):
        return {**super().get_config(), "n": self.n, "concat": self.concat}


def siamese_features(encoder: keras.Model, inputs: list) -> keras.KerasTensor:
    """Shared-weight towers over ``inputs``: features concatenated per example."""
    if len(inputs) == 1:
        return encoder(inputs[0])
    stacked = StackViews(name="stack_views")(inputs)
    return SplitViews(len(inputs), concat=True, name="towers")(encoder(stacked))


def view_inputs(pretext) -> list:
    """One ``keras.Input`` per view of ``pretext``, named after the view, in order."""
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
        scale = loss_scale(optimizer)   # mixed_float16: the loss, so the gradients, are scaled
        with tf.GradientTape() as tape:
            # float32 from here on, whatever the layers computed in (train.precision).
            outputs = as_float32(self(views, training=True))
            loss, metrics = self.per_example(outputs, labels)
            total = tf.reduce_sum(loss) / global_batch_size
            if scale is not None:
                total = optimizer.scale_loss(total)
        variables = self.trainable_variables
        grads = tape.gradient(total, variables)
        if l2:
            # d/dw of 0.5 * l2 * |w|^2 added to the gradient directly: the same
            # update as differentiating the loss term, measured faster end to end.
            # Divided by the replica count: optimizers sum gradients across replicas;
            # times the loss scale, which the optimizer divides every gradient by.
            decayed = {id(w) for w in self.decayed_weights()}
            coef = l2 / replicas if scale is None else (l2 / replicas) * tf.convert_to_tensor(scale)
            grads = [g + coef * tf.convert_to_tensor(w) if (g is not None and id(w) in decayed) else g
                     for g, w in zip(grads, variables)]
        optimizer.apply_gradients(zip(grads, variables))
        self.after_step(outputs, labels)
        return self._sums(loss, metrics)

    def prepare(self, images, run_dir=None) -> None:
        """Set state estimated from the pretraining images (uint8 [N, H, W, C], as the data
        holds them) before the first step of a fresh run, and write what a run should keep
        of it into ``run_dir`` (None: nothing written); default: nothing. Called once by
        the trainer, on every worker with the same images, in cross-replica context; keep
        the state in ``tf.Variable``s (a resumed run restores it from the checkpoint and
        is not prepared again)."""
        return None

    def after_step(self, outputs: dict, labels: dict) -> None:
        """Update state beyond the weights from this step's (replica-local)
        outputs, after the optimizer step; default: nothing. Runs in replica
        context: a method that keeps a memory bank gathers across replicas here."""
        return None

    def steps_before_hook(self, step: int) -> Optional[int]:
        """How many steps the trainer may run from ``step`` (steps done so far) before
        it calls :meth:`before_steps` again; None (the default): any number (the
        hook is still called before every chunk of steps, and does nothing)."""
        return None

    def before_steps(self, step: int, context: HookContext) -> Optional[dict]:
        """Called by the trainer on the host (cross-replica context, outside any
        ``tf.function``) before it runs the steps after ``step`` steps done,
        including before the first step and at the start of a resumed run. A
        method that recomputes state from the whole pretraining set does it here
        (assigning its variables: under a mirrored strategy every replica gets the
        value). Returns None or ``{tag: float}`` scalars for TensorBoard and the
        summary (``summary["hooks"]``); the time it takes is left out of the
        training rate. Default: nothing."""
        return None

    def eval_step(self, views, labels):
        outputs = as_float32(self(views, training=False))
        loss, metrics = self.per_example(outputs, labels)
        return self._sums(loss, metrics)

    @staticmethod
    def _sums(loss, metrics):
        out = {"loss": tf.reduce_sum(loss)}
        for k, v in metrics.items():
            out[k] = tf.reduce_sum(tf.cast(v, tf.float32))
        return out
