"""Stopping a cluster of workers together: a SIGTERM (a preemption notice) or SIGINT on
any worker makes every worker save a checkpoint at the same step and stop.

One worker cannot stop alone under MultiWorkerMirroredStrategy: the others would wait
in their next collective for it and fail, and the chief's last checkpoint would be up
to a checkpoint interval old. TensorFlow's
``tf.distribute.experimental.PreemptionCheckpointHandler`` agrees on the step through
the cluster's coordination service: the worker that received the signal names the
next step, every worker acknowledges it, and each saves there (the chief into the run
directory, the others into their temporary directories) and stops. The restart then
loses no step.
"""
from __future__ import annotations

import shutil
import signal
import tempfile
from typing import Callable, Optional

import tensorflow as tf

from keras_ssl.training.errors import Interrupted


class _Stop(Exception):
    """Raised by the handler's exit function, turned into :class:`Interrupted`."""


class ClusterStop:
    """Call :meth:`check` after every step (or chunk of steps; every worker the same
    number of times): returns normally, or raises :class:`Interrupted` once a stop
    requested on any worker has been saved here by ``save(step)``. ``requested``: this
    worker's stop request (a signal number, or None). :meth:`close` at the end."""

    def __init__(self, strategy: tf.distribute.Strategy, requested: Callable[[], Optional[int]],
                 save: Callable[[int], None], latest: Callable[[], Optional[str]]):
        self._requested, self._save, self._latest = requested, save, latest
        self._step = 0
        # The handler wants a checkpoint to restore its own run count from; keras_ssl's
        # checkpoints (and the restore) stay the Pretrainer's, so it gets an empty one in
        # a directory of its own, and ``save_fn`` writes the real checkpoint: its run
        # count then starts at 0 on every worker, as it must for them to agree.
        self._dir = tempfile.mkdtemp(prefix="keras_ssl-preemption-")
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(), self._dir, max_to_keep=1)
        config = tf.distribute.experimental.TerminationConfig(
            termination_watcher_fn=lambda: self._requested() is not None,
            exit_fn=self._exit, save_fn=self._save_here)
        self.handler = tf.distribute.experimental.PreemptionCheckpointHandler(
            strategy.cluster_resolver, manager, termination_config=config)

    def _save_here(self, *args, **kwargs) -> None:
        self._save(self._step)

    def _exit(self) -> None:
        raise _Stop

    def check(self, step: int) -> None:
        self._step = step
        try:
            self.handler.save_checkpoint_if_preempted()
        except _Stop:
            signum = self._requested() or signal.SIGTERM   # the signal reached another worker
            raise Interrupted(step, signum, self._latest()) from None

    def close(self) -> None:
        """Stop the handler's watcher threads (what its ``__del__`` does, which the
        threads' references to it would delay) and remove its directory."""
        for stop in ("_stop_cluster_wise_termination_watcher_thread", "_stop_poll_termination_signal_thread"):
            getattr(self.handler, stop, lambda: None)()
        shutil.rmtree(self._dir, ignore_errors=True)
