"""Training precision (``train.precision``) and ``train.jit_compile: "auto"``.

The encoder and the method's heads are built under a Keras dtype policy:
``"float32"``, ``"mixed_bfloat16"`` or ``"mixed_float16"``. Under a mixed
policy the weights stay float32 and each layer computes in 16 bits;
:meth:`keras_ssl.methods.base.Method.replica_step` casts every network output
to float32 before the loss, so losses, softmaxes and memory banks stay
float32; float16, whose range is narrow, scales the loss dynamically
(``keras.optimizers.LossScaleOptimizer``, :func:`wrap_optimizer`). What
leaves pretraining (the encoder evaluated, saved as ``encoder.keras`` and
exported) is a float32 copy (:func:`float32_copy`), whatever the policy.
"""
from __future__ import annotations

import contextlib

import keras
import tensorflow as tf


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers created inside get the dtype policy ``name``; the previous global policy
    comes back afterwards (Keras keeps one per process)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def wrap_optimizer(optimizer, precision: str):
    """``optimizer`` under dynamic loss scaling for ``"mixed_float16"``; as is otherwise
    (bfloat16 has float32's exponent range: no scaling needed)."""
    if precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def loss_scale(optimizer):
    """The loss scale of a ``LossScaleOptimizer`` (a variable), else None."""
    return optimizer.dynamic_scale if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else None


def inner_optimizer(optimizer):
    """The optimizer a ``LossScaleOptimizer`` wraps (its learning rate, its slots)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def as_float32(outputs):
    """Every floating tensor of the ``outputs`` structure cast to float32 (others as they are)."""
    return tf.nest.map_structure(
        lambda t: tf.cast(t, tf.float32) if t.dtype.is_floating and t.dtype != tf.float32 else t, outputs)


def computes_in_float32(model: keras.Model) -> bool:
    """Whether every layer of ``model`` computes in float32."""
    return all(getattr(l, "compute_dtype", "float32") == "float32"
               for l in model._flatten_layers(include_self=False, recursive=True))


def float32_copy(model: keras.Model, build) -> keras.Model:
    """``model`` itself when it computes in float32, else ``build()`` (a fresh model of
    the same architecture, built under the float32 policy) holding its weights."""
    if computes_in_float32(model):
        return model
    with dtype_policy("float32"):
        copy = build()
    copy.set_weights(model.get_weights())
    if hasattr(model, "taps"):
        copy.taps = model.taps
    return copy


def resolve_jit(setting) -> bool:
    """``train.jit_compile`` as a bool: ``"auto"`` is on when TensorFlow sees a GPU."""
    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return bool(setting)
