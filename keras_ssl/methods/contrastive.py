"""Siamese contrastive method: the SFA (slow feature analysis) baseline of
Agrawal, Carreira, Malik 2015 as reproduced by the 2017 thesis.

Two views (a pair from the ``sfa_pairs`` pretext) go through shared towers:
encoder -> dense ``hidden`` -> ReLU -> dropout -> dense ``embedding``
(500 and 100 in the thesis). The loss is
:func:`keras_ssl.losses.contrastive.contrastive_loss` with margin ``margin``
(10 or 100 in the thesis) on the label ``similar_label`` (1 = close pair).

Metrics: ``pair_acc`` (a pair counts as right when close pairs are nearer
than ``margin / 2`` and far pairs farther), ``close_frac`` (the fraction of
close pairs the sampler produced: the ratio the config chose), ``distance``.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.losses.contrastive import contrastive_loss, pair_distance
from keras_ssl.methods.base import (NO_FACTS, DatasetFacts, DenseInit, Method, SplitViews, StackViews,
                                    dense_initializer, view_inputs)
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class ContrastiveParams(Params):
    """Siamese embedding and contrastive loss (Agrawal et al. 2015's SFA baseline;
    the thesis: hidden 500, embedding 100, margin 10 or 100).

    - ``hidden``: units of the dense layer (ReLU) on each tower's features; 0: none.
    - ``dropout``: dropout rate after it (0: none).
    - ``embedding``: dimension of the embedding the loss compares.
    - ``margin``: m of the contrastive loss, in embedding distance units.
    - ``init``: dense initialisation: ``"caffe"`` N(0, 0.005) or ``"glorot"``.
    - ``similar_label``: the label holding 1 for a close pair, 0 for a far one.
    """
    hidden: int = num(500, 0)
    dropout: float = num(0.5, 0.0, 1.0)
    embedding: int = num(100, 1)
    margin: float = num(10.0, 0.0, None, lo_open=True)
    init: DenseInit = "caffe"
    similar_label: str = "close"


class ContrastiveMethod(Method):
    def __init__(self, encoder, network, params: ContrastiveParams, view_names, **kwargs):
        super().__init__(encoder, network, **kwargs)
        self.params = params
        self.view_names = tuple(view_names)

    def per_example(self, outputs, labels):
        a, b = (outputs[v] for v in self.view_names)
        y = tf.cast(labels[self.params.similar_label], tf.float32)
        loss = contrastive_loss(a, b, y, self.params.margin)
        d = pair_distance(a, b)
        right = tf.where(y > 0.5, d < 0.5 * self.params.margin, d >= 0.5 * self.params.margin)
        return loss, {"pair_acc": tf.cast(right, tf.float32), "close_frac": y, "distance": d}


@register("method", "contrastive", ContrastiveParams, shared=True)
def build_contrastive(p: ContrastiveParams, encoder: keras.Model, pretext, *,
                      facts: DatasetFacts = NO_FACTS) -> ContrastiveMethod:
    if len(pretext.view_names) != 2:
        raise ValueError(f"method 'contrastive' needs a pretext with 2 views (a pair), got "
                         f"{len(pretext.view_names)}: {pretext.view_names}")
    init = dense_initializer(p.init)
    inputs = view_inputs(pretext)
    x = encoder(StackViews(name="stack_views")(inputs))
    if p.hidden:
        x = keras.layers.Dense(p.hidden, activation="relu", kernel_initializer=init, name="proj_hidden")(x)
        if p.dropout:
            x = keras.layers.Dropout(p.dropout, name="proj_dropout")(x)
    x = keras.layers.Dense(p.embedding, kernel_initializer=init, name="embedding")(x)
    outs = SplitViews(2, name="split_views")(x)
    network = keras.Model(inputs, dict(zip(pretext.view_names, outs)), name="siamese_embedding")
    return ContrastiveMethod(encoder, network, p, pretext.view_names, name="contrastive")
