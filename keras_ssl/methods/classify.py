"""Pretext classification: shared-weight towers over the views, features
concatenated, a top network (dense, ReLU, dropout) and one softmax head per
pretext target; loss = sum of the heads' cross-entropies.

With the egomotion pretext this is the siamese network of Agrawal et al.
(2015): TCNN "F1000-D-Op" with heads tx (7), ty (7), rz (20). With one view
it is RotNet-style single-image classification; with 9 tiles, jigsaw.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.methods.base import (NO_FACTS, DatasetFacts, DenseInit, Method, SplitViews, StackViews,
                                    dense_initializer, siamese_features, view_inputs)
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class ClassifyParams(Params):
    """Top network and heads of pretext classification (Agrawal et al. 2015: F1000-D-Op).

    - ``hidden``: units of the top dense layer (ReLU) on the concatenated
      features; 0: the heads sit directly on the features.
    - ``dropout``: dropout rate after the top layer (0: none).
    - ``init``: dense initialisation: ``"caffe"`` N(0, 0.005) or ``"glorot"``.
    - ``top_convs``: filter counts of 3x3 convolutions (ReLU, "same" padding) on the views'
      last feature maps concatenated along the channels, before the dense layer: the
      thesis's KITTI top, C256-C128-F500-D-Op, is ``[256, 128]`` with ``hidden`` 500
      (empty: the dense layer sits on the flattened features, the MNIST top). Needs an
      encoder whose ``features`` layer flattens a map (``bcnn``/``alexnet`` with
      ``features: "last"``).
    """
    hidden: int = num(1000, 0)
    dropout: float = num(0.5, 0.0, 1.0)
    init: DenseInit = "caffe"
    top_convs: tuple[int, ...] = ()

    def validate(self):
        if any(f < 1 for f in self.top_convs):
            raise ValueError(f"top_convs must list filter counts >= 1, got {list(self.top_convs)}")


class PretextClassifier(Method):
    def __init__(self, encoder, network, targets, **kwargs):
        super().__init__(encoder, network, **kwargs)
        self.targets = dict(targets)

    def per_example(self, outputs, labels):
        loss = 0.0
        metrics = {}
        for name in self.targets:
            logits = outputs[name]
            y = tf.cast(labels[name], tf.int32)
            loss += tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            metrics[f"{name}_acc"] = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)
        return loss, metrics


def _conv_top(p: ClassifyParams, encoder: keras.Model, inputs: list) -> keras.KerasTensor:
    """The views' last feature maps (the input of the encoder's flattening ``features``
    layer), side by side along the channels, through ``p.top_convs``; flattened."""
    names = [l.name for l in encoder.layers]
    feat = encoder.get_layer("features") if "features" in names else None
    if not isinstance(feat, keras.layers.Flatten):
        raise ValueError(f"method.top_convs needs an encoder whose 'features' layer flattens a feature "
                         f"map (bcnn or alexnet with features 'last'); {encoder.name}'s does not")
    maps = keras.Model(encoder.inputs, feat.input, name=f"{encoder.name}_maps")
    stacked = StackViews(name="stack_views")(inputs) if len(inputs) > 1 else inputs[0]
    x = maps(stacked)
    if len(inputs) > 1:
        x = SplitViews(len(inputs), concat=True, name="towers")(x)
    for k, f in enumerate(p.top_convs, 1):
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"top_conv{k}")(x)
    return keras.layers.Flatten(name="top_flat")(x)


@register("method", "classify", ClassifyParams, shared=True)
def build_classify(p: ClassifyParams, encoder: keras.Model, pretext, *,
                   facts: DatasetFacts = NO_FACTS) -> PretextClassifier:
    if not pretext.targets:
        raise ValueError("method 'classify' needs a pretext with classification targets")
    init = dense_initializer(p.init)
    inputs = view_inputs(pretext)
    x = _conv_top(p, encoder, inputs) if p.top_convs else siamese_features(encoder, inputs)
    if p.hidden:
        x = keras.layers.Dense(p.hidden, activation="relu", kernel_initializer=init, name="top")(x)
        if p.dropout:
            x = keras.layers.Dropout(p.dropout, name="top_dropout")(x)
    outputs = {name: keras.layers.Dense(n, kernel_initializer=init, name=name)(x)
               for name, n in pretext.targets.items()}
    network = keras.Model(inputs, outputs, name="pretext_classifier")
    return PretextClassifier(encoder, network, pretext.targets, name="classify")
