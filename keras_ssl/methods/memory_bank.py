"""A memory bank of per-image embeddings and the methods that learn against
it (NPID, PIRL: :mod:`keras_ssl.methods.npid`, :mod:`keras_ssl.methods.pirl`).

The bank holds one L2-normalised ``dim``-d entry per pretraining image
(Wu et al. 2018: 128-d), addressed by the dataset index that the sampler
emits as label ``index``. After each optimizer step the entries of the
batch's images move towards their new embeddings,

    m_i <- normalize(momentum * m_i + (1 - momentum) * f_i)      (momentum 0.5),

and every loss term scores a query against its image's entry (the positive)
and ``negatives`` entries drawn uniformly from the bank.

Correct under ``tf.distribute`` (every replica holds an identical bank):

- the update gathers every replica's embeddings and indices
  (``ReplicaContext.all_gather``) before the scatter, so each replica applies
  the update of the whole global batch; the variable is aggregated
  ``ONLY_FIRST_REPLICA`` (the replicas' updates are identical by
  construction: the first one's is written to all);
- an image drawn twice in one global batch gets the mean of its embeddings
  (a scatter with duplicate indices would keep an arbitrary one);
- negatives are drawn by stateless random ops from the batch seed (label
  ``seed``, the same on every replica), so every replica scores against the
  same negatives and one step on R replicas equals one step on one device.

The bank is a ``tf.Variable`` tracked by the method (checkpoint key
``method/bank/entries``): ``tf.train.Checkpoint`` saves and restores it with
the weights and the optimizer, and a resumed run continues with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np
import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.losses.nce import NCEKind, instance_accuracy, nce_loss
from keras_ssl.methods.base import DatasetFacts, Method
from keras_ssl.registry import Params


@dataclass(frozen=True)
class MemoryBankParams(Params):
    """Bank and loss settings shared by NPID and PIRL (defaults: the papers,
    Wu et al. 2018 and Misra & van der Maaten 2020).

    - ``embedding``: dimension D of the bank entries and of the projections.
    - ``momentum``: weight of the old entry in the bank update (0.5).
    - ``temperature``: tau dividing the similarities (0.07).
    - ``negatives``: K bank entries drawn per step as negatives (capped by the bank size N).
    - ``loss``: ``"nce"`` (the papers) or ``"softmax"`` (InfoNCE).
    - ``bank_init``: ``"random"`` unit vectors (NPID) or ``"zeros"`` (the first visit writes f).
    - ``bank_seed``: seed of the random initial entries.
    - ``head_batch_norm``: BatchNormalization (synchronised) before the L2 normalisation.
    """
    embedding: int = num(128, 1)
    momentum: float = num(0.5, 0.0, 1.0)
    temperature: float = num(0.07, 0.0, None, lo_open=True)
    negatives: int = num(4096, 1)
    loss: NCEKind = "nce"
    bank_init: Literal["random", "zeros"] = "random"
    bank_seed: int = 0
    head_batch_norm: bool = False


def momentum_update(old: tf.Tensor, new: tf.Tensor, momentum: float) -> tf.Tensor:
    """normalize(momentum * old + (1 - momentum) * new), row-wise: [M, D] -> [M, D]."""
    return tf.math.l2_normalize(momentum * old + (1.0 - momentum) * tf.cast(new, old.dtype), axis=-1)


def dedupe_mean(index: tf.Tensor, values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(unique indices [M], mean of the rows of ``values`` sharing each index [M, D])."""
    uniq, seg = tf.unique(index)
    return uniq, tf.math.unsorted_segment_mean(values, seg, tf.size(uniq))


def gather_replicas(x: tf.Tensor) -> tf.Tensor:
    """Concatenate ``x`` over every replica in sync (identity on one replica).

    In replica context under MirroredStrategy the global batch is split in
    replica order, so the gathered tensor is in the order of the global batch.
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x
    devices = tf.distribute.get_strategy().extended.worker_devices
    if len(devices) == 1:
        # On this worker's device: a value computed from the input labels alone (the
        # image indices) has none, and a collective of MultiWorkerMirroredStrategy needs
        # one (under MirroredStrategy each replica's ops are placed on its device already).
        with tf.device(devices[0]):
            x = tf.identity(x)
    return ctx.all_gather(x, axis=0)


class MemoryBank(tf.Module):
    """``entries``: float32 [N, D] ``tf.Variable``, one unit vector per image."""

    def __init__(self, size: int, dim: int, momentum: float, seed: int = 0, init: str = "random",
                 name="bank"):
        super().__init__(name=name)
        self.size, self.dim, self.momentum = int(size), int(dim), float(momentum)
        if init == "zeros":
            # An unvisited entry scores 0 against every query; the first visit
            # writes the image's embedding as is: normalize(m * 0 + (1 - m) f) = f.
            init = np.zeros((self.size, self.dim), np.float32)
        else:
            init = np.random.default_rng(seed).standard_normal((self.size, self.dim)).astype(np.float32)
            init /= np.linalg.norm(init, axis=1, keepdims=True)
        self.entries = tf.Variable(
            init, trainable=False, name="entries",
            synchronization=tf.VariableSynchronization.ON_WRITE,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def read(self, index: tf.Tensor) -> tf.Tensor:
        return tf.gather(self.entries, index)

    def sample(self, count: int, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(indices int64 [K], entries [K, D]), K = min(count, N), drawn uniformly
        with replacement by a stateless op: same ``seed`` -> same draw."""
        k = min(int(count), self.size)
        idx = tf.random.stateless_uniform([k], tf.cast(seed, tf.int32), 0, self.size, dtype=tf.int64)
        return idx, self.read(idx)

    def update(self, index: tf.Tensor, embeddings: tf.Tensor) -> None:
        """Momentum update of the global batch's entries (call in replica context
        with the replica's own rows; they are gathered from every replica here)."""
        index = gather_replicas(tf.cast(index, tf.int64))
        embeddings = gather_replicas(tf.stop_gradient(tf.cast(embeddings, tf.float32)))
        uniq, mean = dedupe_mean(index, embeddings)
        new = momentum_update(tf.gather(self.entries, uniq), mean, self.momentum)
        self.entries.scatter_update(tf.IndexedSlices(new, uniq))


class MemoryBankMethod(Method):
    """A method scored against a memory bank.

    ``query_weights``: network output name -> weight of its NCE term (each
    output an L2-normalised [B, D] embedding scored against the image's
    entry); ``memory_output``: the output whose embeddings update the bank.
    The pretext must emit labels ``index`` (int64 [B], the images' dataset
    indices) and ``seed`` (int32 [B, 2], the batch's seed on every row).
    """

    def __init__(self, encoder, network, params: MemoryBankParams, num_images: int,
                 query_weights: dict, memory_output: str, **kwargs):
        super().__init__(encoder, network, **kwargs)
        self.params = params
        self.query_weights = dict(query_weights)
        self.memory_output = memory_output
        self.bank = MemoryBank(num_images, params.embedding, params.momentum, params.bank_seed,
                               params.bank_init)

    def _bank_labels(self, labels):
        missing = [k for k in ("index", "seed") if k not in labels]
        if missing:
            raise ValueError(f"method {self.name!r} needs a pretext that emits labels 'index' and "
                             f"'seed' (pretexts 'augment', 'pirl'); missing {missing}, got {sorted(labels)}")
        return tf.cast(labels["index"], tf.int64), labels["seed"][0]

    def per_example(self, outputs, labels):
        p = self.params
        index, seed = self._bank_labels(labels)
        neg_index, negatives = self.bank.sample(p.negatives, seed)
        positive = self.bank.read(index)
        exclude = tf.equal(index[:, None], neg_index[None, :])      # own entry drawn as a negative
        loss = 0.0
        metrics = {}
        for name, w in self.query_weights.items():
            q = outputs[name]
            loss += w * nce_loss(q, positive, negatives, p.temperature, p.loss, exclude)
            metrics[f"{name}_inst_acc"] = instance_accuracy(q, positive, negatives, exclude)
            metrics[f"{name}_pos_sim"] = tf.reduce_sum(q * positive, axis=-1)
        return loss, metrics

    def after_step(self, outputs, labels):
        index, _ = self._bank_labels(labels)
        self.bank.update(index, outputs[self.memory_output])


def projection(x, dim: int, name: str, batch_norm: bool = False):
    """Linear projection to ``dim`` then L2 normalisation (NPID, PIRL heads).

    ``batch_norm``: batch normalisation (statistics synchronised across
    replicas) between the two: a batch of embeddings cannot then collapse to
    one point."""
    x = keras.layers.Dense(dim, name=f"{name}_proj")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(synchronized=True, name=f"{name}_bn")(x)
    return keras.layers.UnitNormalization(axis=-1, name=name)(x)


def bank_size(facts: DatasetFacts, method: str) -> int:
    """The bank's size N: ``facts.num_images``; ValueError naming num_images when it is not known."""
    n = facts.num_images
    if not n:
        raise ValueError(f"method {method!r} keeps one memory-bank entry per image and needs the "
                         f"number of pretraining images: pass num_images to the Pretrainer "
                         f"(keras_ssl.train does) or facts=DatasetFacts(num_images=...) to the builder")
    return int(n)
