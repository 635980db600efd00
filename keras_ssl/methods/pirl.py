"""PIRL: pretext-invariant representation learning (Misra & van der Maaten,
"Self-Supervised Learning of Pretext-Invariant Representations", CVPR 2020).

Two branches share the encoder (pretext ``pirl``):

- image branch f(v_I): the augmented image -> encoder -> linear
  ``embedding`` (128) -> L2 normalisation (output ``image``);
- transformed branch g(v_It): every transformed view (the 9 jigsaw tiles, or
  the rotated image) -> the same encoder, features concatenated in view
  order -> linear ``embedding`` -> L2 normalisation (output ``transformed``).

Loss (paper eq. 5), against the memory bank of f(v_I) embeddings
(:mod:`keras_ssl.methods.memory_bank`, momentum 0.5):

    L = lambda * L_NCE(m_I, g(v_It)) + (1 - lambda) * L_NCE(m_I, f(v_I)),

lambda = ``transform_weight`` (0.5), temperature 0.07, ``negatives`` random
bank entries. The bank is updated with f(v_I). Metrics:
``{image,transformed}_inst_acc`` and ``..._pos_sim``.

A set of transforms (pretext ``transforms``, e.g. jigsaw and rotation, PIRL's
paper's combination): one g per transform, ``g_jigsaw`` over the tiles' features
concatenated and ``g_rotation`` over the one rotated image's features (outputs
``transformed_<name>``, layers ``transformed_<name>_embedding*``), all sharing the
encoder; per image, ``transformed`` is the g of the transform drawn for it (label
``t_choice``), so the loss, the metrics and the gradients above hold unchanged and a
g learns only from the images of its transform. Why not one g with the rotated image
as N copies of a tile: g's linear layer would see [f(r), .., f(r)], i.e. apply the
sum of its tile blocks to f(r), coupling the two transforms' projections through
weights that mean tile positions; separate g's keep each projection its own (the
paper uses one g per transform's input shape too). The cost: every image goes
through every transform's views (1 + 4 + 1 = 6 encoder passes with 2x2 jigsaw
and rotation, against 5 for jigsaw alone), since the step takes one structure of
views.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.methods.base import NO_FACTS, DatasetFacts, siamese_features, view_inputs
from keras_ssl.methods.memory_bank import MemoryBankMethod, MemoryBankParams, bank_size, projection
from keras_ssl.registry import register


@dataclass(frozen=True)
class PirlParams(MemoryBankParams):
    """The memory-bank settings (:class:`MemoryBankParams`) plus ``transform_weight``:
    lambda of paper eq. 5, the weight of the transformed branch's NCE term (0.5)."""
    transform_weight: float = num(0.5, 0.0, 1.0)


class PirlSetMethod(MemoryBankMethod):
    """PIRL over a set of transforms: ``transform_outputs`` (one per transform, in the
    set's order) give, per image, ``transformed`` = the one of its label ``t_choice``."""

    def __init__(self, *args, transform_outputs=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.transform_outputs = tuple(transform_outputs)

    def per_example(self, outputs, labels):
        if "t_choice" not in labels:
            raise ValueError(f"method 'pirl' with several transforms needs label 't_choice', got {sorted(labels)}")
        stacked = tf.stack([outputs[o] for o in self.transform_outputs], axis=1)      # [B, T, D]
        chosen = tf.gather(stacked, tf.cast(labels["t_choice"], tf.int32), batch_dims=1)
        return super().per_example({**outputs, "transformed": chosen}, labels)


@register("method", "pirl", PirlParams)
def build_pirl(p: PirlParams, encoder: keras.Model, pretext, *,
               facts: DatasetFacts = NO_FACTS) -> MemoryBankMethod:
    n = bank_size(facts, "pirl")
    t_views = tuple(getattr(pretext, "transformed_views", ()))
    if "image" not in pretext.view_names or not t_views:
        raise ValueError(f"method 'pirl' needs the 'pirl' pretext (views 'image' and the transformed "
                         f"views), got views {pretext.view_names}")
    by_transform = dict(getattr(pretext, "views_by_transform", None) or {"transform": t_views})
    inputs = dict(zip(pretext.view_names, view_inputs(pretext)))
    f = projection(encoder(inputs["image"]), p.embedding, "image_embedding", p.head_batch_norm)
    weights = {"transformed": p.transform_weight, "image": 1.0 - p.transform_weight}
    if len(by_transform) == 1:   # one transform: the network and method of runs before transform sets
        g = projection(siamese_features(encoder, [inputs[v] for v in t_views]), p.embedding, "transformed_embedding", p.head_batch_norm)
        network = keras.Model(list(inputs.values()), {"image": f, "transformed": g}, name="pirl_branches")
        return MemoryBankMethod(encoder, network, p, n, weights, "image", name="pirl")
    outputs = {"image": f}
    for name, views in by_transform.items():
        outputs[f"transformed_{name}"] = projection(
            siamese_features(encoder, [inputs[v] for v in views]), p.embedding,
            f"transformed_{name}_embedding", p.head_batch_norm)
    network = keras.Model(list(inputs.values()), outputs, name="pirl_branches")
    return PirlSetMethod(encoder, network, p, n, weights, "image", name="pirl",
                         transform_outputs=[f"transformed_{name}" for name in by_transform])
