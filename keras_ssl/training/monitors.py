"""Monitors of pretraining: ``encoder -> {tag: float}`` callables the trainer calls every
``train.monitor_every`` steps and at the end (:meth:`keras_ssl.training.loop.Pretrainer.train`).

- The kNN score on the labeled validation split (:func:`keras_ssl.training.job.knn_monitor`).
- :class:`PretextValidation`: the pretext's own loss and metrics on held-out data (frame
  pairs of ``data.validation_sequences``): whether the pretext generalises beyond the
  sequences it trains on, the one signal a choice between pretraining settings can be made
  on before any transfer score is seen.
- :func:`combined`: several monitors as one (their tags must differ).
"""
from __future__ import annotations

import math
from typing import Callable

import tensorflow as tf

Monitor = Callable[[object], dict]


class PretextValidation:
    """The method's loss and metrics (its ``eval_step``: inference mode, no update) on a
    fixed draw of ``ceil(examples / batch_size)`` batches of ``index`` made once by
    ``pretext.batches`` with ``seed`` (the same pairs and crops at every call), averaged
    per example and tagged ``val_<name>`` (``val_loss``, ``val_tx_acc``, ...).

    ``method``: the model being trained (its current weights are scored; the encoder the
    trainer passes is not needed: the method holds it). Batches are kept in memory:
    ``examples`` x views x crop floats.
    """

    def __init__(self, method, pretext, index, *, batch_size: int, examples: int, seed: int):
        if examples < 1:
            raise ValueError("examples must be >= 1")
        self.method = method
        steps = math.ceil(examples / batch_size)
        self.batches = list(pretext.batches(index, batch_size, seed, 0, steps, 0))
        self.examples = steps * batch_size
        self._step = None

    def __call__(self, encoder=None) -> dict:
        if self._step is None:
            self._step = tf.function(self.method.eval_step)
        sums = None
        for views, labels in self.batches:
            out = {k: float(v) for k, v in self._step(views, labels).items()}
            sums = out if sums is None else {k: sums[k] + out[k] for k in sums}
        return {f"val_{k}": v / self.examples for k, v in sums.items()}


def combined(monitors: list) -> Monitor | None:
    """One monitor calling each of ``monitors`` (None entries left out) and merging their
    tags; None when there is none. Two monitors giving one tag is an error."""
    monitors = [m for m in monitors if m is not None]
    if not monitors:
        return None
    if len(monitors) == 1:
        return monitors[0]

    def both(encoder) -> dict:
        out = {}
        for m in monitors:
            values = m(encoder)
            clash = set(values) & set(out)
            if clash:
                raise ValueError(f"two monitors report {sorted(clash)}")
            out.update(values)
        return out

    return both
