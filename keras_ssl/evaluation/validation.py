"""A label-efficient score on the validation split: for tuning and for monitoring
pretraining, never the test set.

Contract: :func:`validation_score` carves the seeded validation split off the
labeled training set (:func:`keras_ssl.data.split_validation`, the same split
the few-label protocol leaves out), draws ``labels`` stratified images from
the rest (:mod:`.subsets`; the whole rest when ``labels`` is at least its size), fits a kNN vote or a linear probe on their final
features and returns the accuracy on the validation split. The number of
classes is taken from the training labels. Same arguments, same score.
"""
from __future__ import annotations

import keras

from keras_ssl.data import split_validation
from keras_ssl.data.core import ImageSet
from keras_ssl.evaluation.classifier import accuracy, mlp_head, train_classifier
from keras_ssl.evaluation.features import encode, knn_accuracy
from keras_ssl.evaluation.subsets import class_count, labeled_subset


def validation_score(encoder: keras.Model, train: ImageSet, *, validation_images: int, seed: int,
                     kind: str = "knn", labels: int = 1000, knn_k: int = 10,
                     steps: int = 1000, batch: int = 125) -> float:
    """Label-efficient proxy on the validation split (never the test set).

    ``labels`` stratified training images (from the pool outside the
    validation split) train a kNN classifier (``kind="knn"``) or a linear
    probe on the final features (``kind="linear"``); the score is accuracy on
    the validation split. Used for tuning and for monitoring pretraining.
    """
    pool, val = split_validation(train, validation_images, seed)
    if len(val) == 0:
        raise ValueError("validation_score needs data.validation_images > 0")
    num_classes = class_count(train.labels)
    # Asked for the whole pool (a small labeled set): all of it votes, whatever its class
    # balance; a stratified draw of every image would demand equal classes.
    sub = pool if labels >= len(pool) else labeled_subset(pool, labels, seed)
    tr = encode(encoder, sub.images)[0]
    va = encode(encoder, val.images)[0]
    if kind == "knn":
        return knn_accuracy(tr, sub.labels, va, val.labels, knn_k, num_classes=num_classes)
    if kind == "linear":
        lin = mlp_head(tr.shape[1], 0, 0.0, num_classes=num_classes, name="linear")
        train_classifier(lin, tr, sub.labels, steps, batch, 0.01, 0.9, 5e-4, seed)
        return accuracy(lin, va, val.labels)
    raise ValueError(f"unknown validation score kind {kind!r}: use 'knn' or 'linear'")
