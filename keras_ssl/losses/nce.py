"""Noise-contrastive loss against a memory bank (NPID: Wu, Xiong, Yu, Lin,
"Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
CVPR 2018; PIRL: Misra & van der Maaten, "Self-Supervised Learning of
Pretext-Invariant Representations", CVPR 2020).

A query ``q`` (an L2-normalised embedding of one image or of its transform)
is scored against its positive ``p`` (that image's memory-bank entry) and
``K`` negatives ``n_k`` (other images' entries) by ``s = q . x / tau``.

- ``kind="nce"`` (the papers' NCE, default): binary classification of data
  against noise with a uniform noise distribution P_n = 1/N over the N bank
  entries. P(x | q) = exp(s) / Z, h(x) = P / (P + K P_n), and

      L = -log h(p) - sum_k log(1 - h(n_k)).

  The normalising constant is the Monte-Carlo estimate of NPID eq. 6,
  Z ~ N mean_k exp(s_k), computed per query from its own negatives and held
  constant (no gradient), as NPID holds its Z. Then K P_n Z = sum_k exp(s_k),
  so h(x) = exp(s_x) / (exp(s_x) + sum_k exp(s_k)): no N, no state, and the
  same value whatever the number of replicas. Its gradients are those of the
  softmax below; its floor is not 0 but about 1 (the K noise terms sum to
  about sum_k h(n_k) ~ 1 however far the negatives are).
- ``kind="softmax"``: the non-parametric softmax (NPID eq. 2) over the
  positive and the sampled negatives, i.e. cross-entropy with the positive as
  the class (InfoNCE).

Negatives drawn at random from the bank can be the query's own entry (always,
once K reaches N): ``exclude`` masks such collisions out of the loss.
"""
from __future__ import annotations

import typing
from typing import Literal

import tensorflow as tf

#: The loss kinds (a config's ``method.loss`` of NPID and PIRL).
NCEKind = Literal["nce", "softmax"]
KINDS = typing.get_args(NCEKind)


def similarity_logits(query: tf.Tensor, positive: tf.Tensor, negatives: tf.Tensor,
                      temperature: float) -> tuple[tf.Tensor, tf.Tensor]:
    """(s_pos [B], s_neg [B, K]): dot products divided by ``temperature``.

    query, positive: float [B, D]; negatives: float [K, D] shared by the batch
    (one draw from the bank) or [B, K, D] per query.
    """
    q = tf.cast(query, tf.float32)
    pos = tf.reduce_sum(q * tf.cast(positive, tf.float32), axis=-1)
    negatives = tf.cast(negatives, tf.float32)
    if negatives.shape.rank == 2:
        neg = tf.matmul(q, negatives, transpose_b=True)
    else:
        neg = tf.einsum("bd,bkd->bk", q, negatives)
    return pos / temperature, neg / temperature


def nce_loss(query: tf.Tensor, positive: tf.Tensor, negatives: tf.Tensor,
             temperature: float = 0.07, kind: NCEKind = "nce",
             exclude: tf.Tensor | None = None) -> tf.Tensor:
    """Per-query loss, float32 [B] (see the module docstring).

    query, positive: float [B, D], L2-normalised (the loss does not normalise:
    scaling ``query`` by c is the same as dividing ``temperature`` by c);
    negatives: float [K, D] (shared) or [B, K, D]; temperature: tau > 0;
    kind: ``"nce"`` or ``"softmax"``; exclude: optional bool [B, K], True where
    a negative must not count (it is the query's own entry). Gradients flow
    into ``query`` (and into ``positive``/``negatives`` if they carry any; bank
    entries do not).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown NCE loss kind {kind!r}; known: {', '.join(KINDS)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    s_pos, s_neg = similarity_logits(query, positive, negatives, temperature)
    keep = None if exclude is None else tf.logical_not(tf.cast(exclude, tf.bool))
    masked = s_neg if keep is None else tf.where(keep, s_neg, tf.fill(tf.shape(s_neg), -1e9))
    neg_lse = tf.reduce_logsumexp(masked, axis=-1)                      # log sum_k exp(s_k)
    if kind == "softmax":
        return tf.reduce_logsumexp(tf.stack([s_pos, neg_lse], axis=-1), axis=-1) - s_pos
    c = tf.stop_gradient(neg_lse)                                       # log(K P_n Z), held constant
    log_h_pos = s_pos - tf.reduce_logsumexp(tf.stack([s_pos, tf.broadcast_to(c, tf.shape(s_pos))], -1), -1)
    log_1m_h_neg = c[:, None] - tf.reduce_logsumexp(
        tf.stack([s_neg, tf.broadcast_to(c[:, None], tf.shape(s_neg))], -1), -1)
    if keep is not None:
        log_1m_h_neg = tf.where(keep, log_1m_h_neg, tf.zeros_like(log_1m_h_neg))
    return -log_h_pos - tf.reduce_sum(log_1m_h_neg, axis=-1)


def instance_accuracy(query: tf.Tensor, positive: tf.Tensor, negatives: tf.Tensor,
                      exclude: tf.Tensor | None = None) -> tf.Tensor:
    """float32 [B]: 1 where the positive scores above every (kept) negative."""
    s_pos, s_neg = similarity_logits(query, positive, negatives, 1.0)
    if exclude is not None:
        s_neg = tf.where(tf.cast(exclude, tf.bool), tf.fill(tf.shape(s_neg), -1e9), s_neg)
    return tf.cast(s_pos > tf.reduce_max(s_neg, axis=-1), tf.float32)
