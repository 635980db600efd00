"""The tf.distribute strategy a run trains under (``train.strategy``)."""
from __future__ import annotations

import tensorflow as tf

from keras_ssl.training.errors import TrainingError


def make_strategy(train_cfg) -> tf.distribute.Strategy:
    """``auto``: MirroredStrategy over the GPUs when there are several, else the
    default strategy; ``mirrored``: MirroredStrategy over ``train.devices``
    (or every GPU); ``multi_worker``: MultiWorkerMirroredStrategy (cluster from
    TF_CONFIG, read by TensorFlow itself)."""
    kind = train_cfg.strategy
    devices = list(train_cfg.devices) or None
    if kind == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        kind = "mirrored" if len(gpus) > 1 else "default"
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TrainingError(f"unknown strategy {kind!r}")
