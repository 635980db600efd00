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
"""
from __future__ import annotations

from dataclasses import dataclass

import keras

from keras_ssl.config import num
from keras_ssl.methods.base import NO_FACTS, DatasetFacts, siamese_features, view_inputs
from keras_ssl.methods.memory_bank import MemoryBankMethod, MemoryBankParams, bank_size, projection
from keras_ssl.registry import register


@dataclass(frozen=True)
class PirlParams(MemoryBankParams):
    """The memory-bank settings (:class:`MemoryBankParams`) plus ``transform_weight``:
    lambda of paper eq. 5, the weight of the transformed branch's NCE term (0.5)."""
    transform_weight: float = num(0.5, 0.0, 1.0)


@register("method", "pirl", PirlParams)
def build_pirl(p: PirlParams, encoder: keras.Model, pretext, *,
               facts: DatasetFacts = NO_FACTS) -> MemoryBankMethod:
    n = bank_size(facts, "pirl")
    t_views = tuple(getattr(pretext, "transformed_views", ()))
    if "image" not in pretext.view_names or not t_views:
        raise ValueError(f"method 'pirl' needs the 'pirl' pretext (views 'image' and the transformed "
                         f"views), got views {pretext.view_names}")
    inputs = dict(zip(pretext.view_names, view_inputs(pretext)))
    f = projection(encoder(inputs["image"]), p.embedding, "image_embedding", p.head_batch_norm)
    g = projection(siamese_features(encoder, [inputs[v] for v in t_views]), p.embedding, "transformed_embedding", p.head_batch_norm)
    network = keras.Model(list(inputs.values()), {"image": f, "transformed": g}, name="pirl_branches")
    weights = {"transformed": p.transform_weight, "image": 1.0 - p.transform_weight}
    return MemoryBankMethod(encoder, network, p, n, weights, "image", name="pirl")
