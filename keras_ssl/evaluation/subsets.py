"""The labeled subsets every few-label score trains on, and the number of classes.

Contracts:

- :func:`subset_seed` is the one seed of the subset for (label count ``n``,
  evaluation seed ``seed``): the protocol, the validation score and the head
  benchmarks all draw through it, so the same (n, seed) is the same subset
  everywhere and in every run (this is what lets compare pair runs seed by seed).
  The protocols also reseed Keras with it before building each model.
- :func:`labeled_subset` draws a class-stratified subset
  (:func:`keras_ssl.data.few_label_subset`) of a labeled pool.
- :func:`class_count` takes the number of classes from the labels: classes are
  ``0 .. K - 1`` with ``K`` the largest training label + 1; labels outside
  that range in the other sets (e.g. the test set) raise ``ValueError``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from keras_ssl.data import few_label_subset
from keras_ssl.data.core import ImageSet


def subset_seed(n: int, seed: int) -> int:
    """The seed of the ``n``-label subset of evaluation seed ``seed``."""
    return 1000003 * seed + n


def labeled_subset(pool: ImageSet, n: int, seed: int, size: Optional[int] = None) -> ImageSet:
    """The class-stratified subset of ``pool`` for (``n`` labels, ``seed``).

    ``size`` images are drawn (default ``n``) while the seed stays that of
    ``n``: the validation score asks for ``n`` labels but draws at most the
    pool, with the seed of what it asked for.
    """
    size = n if size is None else size
    return pool.take(few_label_subset(pool.labels, size, subset_seed(n, seed)))


def class_count(train_labels: np.ndarray, *other_labels: Optional[np.ndarray]) -> int:
    """Number of classes ``K`` = the largest of ``train_labels`` + 1, every label of
    ``train_labels`` and ``other_labels`` (``None`` skipped) checked to lie in ``[0, K)``."""
    train_labels = np.asarray(train_labels)
    if train_labels.size == 0:
        raise ValueError("no training labels to count the classes of")
    k = int(train_labels.max()) + 1
    for what, labels in [("training", train_labels)] + [("evaluation", o) for o in other_labels]:
        if labels is None or np.size(labels) == 0:
            continue
        lo, hi = int(np.min(labels)), int(np.max(labels))
        if lo < 0 or hi >= k:
            raise ValueError(f"{what} labels span [{lo}, {hi}], outside the {k} classes "
                             f"(0..{k - 1}) the training labels have")
    return k
