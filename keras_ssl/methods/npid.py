"""NPID: non-parametric instance discrimination (Wu, Xiong, Yu, Lin,
"Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
CVPR 2018).

Every image is its own class. The encoder's features go through a linear
projection to ``embedding`` (128) dimensions and L2 normalisation; the
embedding v_i of an augmented image i (pretext ``augment``) is scored
against the memory bank (:mod:`keras_ssl.methods.memory_bank`): its own entry
m_i against ``negatives`` (4096) random entries, temperature 0.07, NCE
(:func:`keras_ssl.losses.nce.nce_loss`). After the step, m_i moves towards
v_i with momentum 0.5. Metrics: ``embedding_inst_acc`` (the own entry beats
every sampled negative) and ``embedding_pos_sim`` (cosine to the own entry).
"""
from __future__ import annotations

import keras

from keras_ssl.methods.base import NO_FACTS, DatasetFacts, view_inputs
from keras_ssl.methods.memory_bank import MemoryBankMethod, MemoryBankParams, bank_size, projection
from keras_ssl.registry import register


@register("method", "npid", MemoryBankParams)
def build_npid(p: MemoryBankParams, encoder: keras.Model, pretext, *,
               facts: DatasetFacts = NO_FACTS) -> MemoryBankMethod:
    n = bank_size(facts, "npid")
    if len(pretext.view_names) != 1:
        raise ValueError(f"method 'npid' needs a pretext with one view (e.g. 'augment'), got "
                         f"{pretext.view_names}")
    inputs = view_inputs(pretext)
    emb = projection(encoder(inputs[0]), p.embedding, "embedding", p.head_batch_norm)
    network = keras.Model(inputs, {"embedding": emb}, name="npid_embedding")
    return MemoryBankMethod(encoder, network, p, n, {"embedding": 1.0}, "embedding", name="npid")
