"""The tf.distribute strategy a run trains under (``train.strategy``)."""
from __future__ import annotations

import tensorflow as tf

from keras_ssl.training.errors import TrainingError
from keras_ssl.training.workers import Role, role, wants_multi_worker

#: The process's MultiWorkerMirroredStrategy: TensorFlow configures collective ops
#: once, at program start, so one process makes one (and every job it runs uses it).
_MULTI_WORKER: tf.distribute.MultiWorkerMirroredStrategy | None = None


def multi_worker_strategy(timeout_seconds: float) -> tf.distribute.MultiWorkerMirroredStrategy:
    """The process's MultiWorkerMirroredStrategy (cluster from ``TF_CONFIG``, read by
    TensorFlow itself), made on the first call: before any other TensorFlow op runs.
    Every collective fails after ``timeout_seconds`` instead of waiting for a dead peer."""
    global _MULTI_WORKER
    if _MULTI_WORKER is None:
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
        try:
            _MULTI_WORKER = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except RuntimeError as e:
            if "program startup" in str(e):
                raise TrainingError("train.strategy 'multi_worker' must be made before any other "
                                    "TensorFlow op of the process: start a new process for it") from None
            raise
    return _MULTI_WORKER


def make_strategy(train_cfg) -> tf.distribute.Strategy:
    """``auto``: MultiWorkerMirroredStrategy when ``TF_CONFIG`` names several training
    tasks, else MirroredStrategy over the GPUs when there are several, else the default
    strategy; ``mirrored``: MirroredStrategy over ``train.devices`` (or every GPU);
    ``multi_worker``: MultiWorkerMirroredStrategy (cluster from TF_CONFIG)."""
    kind = train_cfg.strategy
    devices = list(train_cfg.devices) or None
    if wants_multi_worker(kind):
        return multi_worker_strategy(train_cfg.collective_timeout_seconds)
    if kind == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        kind = "mirrored" if len(gpus) > 1 else "default"
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    raise TrainingError(f"unknown strategy {kind!r}")


def multi_worker_role(strategy: tf.distribute.Strategy) -> Role:
    """This process's :class:`~keras_ssl.training.workers.Role` under ``strategy``: from
    ``TF_CONFIG`` for a MultiWorkerMirroredStrategy, else the one process's."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return role()
    return Role()
