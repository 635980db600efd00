"""Optimizer and learning-rate schedule of pretraining (``train.*``)."""
from __future__ import annotations

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_ssl")
class LearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup, then ``step`` (x factor every ``decay_steps``), ``cosine``
    (to 0 at ``total_steps``) or ``constant``."""

    def __init__(self, base, kind="step", total_steps=1, decay_steps=1, factor=0.5, warmup=0):
        self.base, self.kind, self.total_steps = float(base), kind, int(total_steps)
        self.decay_steps, self.factor, self.warmup = int(decay_steps), float(factor), int(warmup)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if self.kind == "step":
            lr = self.base * tf.pow(self.factor, tf.floor(step / self.decay_steps))
        elif self.kind == "cosine":
            t = tf.clip_by_value((step - self.warmup) / max(self.total_steps - self.warmup, 1), 0.0, 1.0)
            lr = self.base * 0.5 * (1.0 + tf.cos(math.pi * t))
        else:
            lr = tf.constant(self.base)
        if self.warmup:
            lr = lr * tf.minimum(1.0, (step + 1.0) / self.warmup)
        return lr

    def get_config(self):
        return {"base": self.base, "kind": self.kind, "total_steps": self.total_steps,
                "decay_steps": self.decay_steps, "factor": self.factor, "warmup": self.warmup}


def make_optimizer(t):
    """(optimizer, coupled L2 coefficient). SGD uses Caffe's coupled L2 (the
    thesis protocol); AdamW its decoupled weight decay."""
    lr = LearningRate(t.learning_rate, t.lr_schedule, t.steps, t.lr_decay_steps,
                      t.lr_decay_factor, t.warmup_steps)
    if t.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=t.momentum), t.weight_decay
    return keras.optimizers.AdamW(lr, weight_decay=t.weight_decay), 0.0
