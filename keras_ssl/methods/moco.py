"""MoCo v2: momentum contrast (He, Fan, Wu, Xie, Girshick, "Momentum Contrast for
Unsupervised Visual Representation Learning", CVPR 2020; Chen, Fan, Girshick, He,
"Improved Baselines with Momentum Contrastive Learning", arXiv:2003.04297, 2020).

Two augmented views of each image (pretext ``augment`` with ``views: 2``):

- the query q = f_q(view 1): the encoder -> the projection head (v2: an MLP,
  Dense ``head_hidden`` + ReLU -> Dense ``embedding``; ``head_hidden: 0``: v1's
  linear head) -> L2 normalisation; trained by the optimizer;
- the key k = f_k(view 2): the same architecture with the **momentum weights**
  theta_k, under ``stop_gradient``. theta_k starts equal to the query weights
  theta_q and is never trained: after every optimizer step,

      theta_k <- m * theta_k + (1 - m) * theta_q                  (m = ``momentum``, 0.999).

Loss: InfoNCE (:func:`keras_ssl.losses.infonce.moco_infonce`) of q against its
key k and the K keys of the **queue**, temperature ``temperature`` (v2: 0.2).
After the step, the keys of the whole global batch are enqueued, the oldest
overwritten. Metrics: ``queue_acc`` (the positive key beats every queued key)
and ``pos_sim`` (q . k).

State beyond the trained weights, in ``tf.Variable``s tracked by the method
(so ``tf.train.Checkpoint`` saves and restores them with the weights and the
optimizer: checkpoint keys ``method/momentum_encoder/...`` and
``method/queue/...``):

- :class:`MomentumWeights`: one float32 variable per trainable weight of the
  query network, in the order of ``network.trainable_variables``; the key is
  computed by ``network.stateless_call`` with these values in place of the query
  weights (one architecture, two sets of weights: the key network is exactly the
  query network's copy, and nothing about it is trainable);
- :class:`KeyQueue`: ``keys`` float32 [K, D] (random unit vectors at first) and
  ``pointer`` (the row the next key goes to), a ring buffer.

Correct under ``tf.distribute`` (the pattern of :mod:`keras_ssl.methods.memory_bank`):
the variables are aggregated ``ONLY_FIRST_REPLICA``; the momentum update reads
the query weights, identical on every replica after the optimizer step; the
enqueue gathers every replica's keys in replica order (``gather_replicas``, the
order of the global batch), so every replica writes the same rows and one step
on R replicas equals one step on one device.

Batch norm: the BCNN has none and by default the head has none (v2's MLP head
has none either), so MoCo's shuffled BN is not needed and not implemented. An
encoder with batch norm (``convnet`` with ``batch_norm``), or
``head_batch_norm``, normalises the key in training mode with the statistics of
its own batch (per replica for the encoder's layers, synchronised for the
head's; not shuffled) and leaves the moving statistics as the query's step
updates them (the key network keeps no statistics of its own).

``queue_size``: 65536 (both papers) capped by the number of pretraining images
(``facts.num_images``, when known). Any size works with any batch: the ring
buffer wraps, and a global batch larger than the queue leaves its last K keys.
A queue near the dataset size holds older keys of the query's own image as
negatives: the MNIST config uses 4096.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.losses.infonce import moco_infonce, queue_accuracy
from keras_ssl.methods.base import NO_FACTS, DatasetFacts, Method, view_inputs
from keras_ssl.methods.memory_bank import gather_replicas
from keras_ssl.pretext.augment import VIEW_NAMES
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class MocoParams(Params):
    """MoCo v2's settings (defaults: Chen et al. 2020, MoCo v2; He et al. 2020, MoCo).

    - ``embedding``: dimension D of the queries, keys and queue entries (128).
    - ``head_hidden``: units of the MLP head's hidden layer (v2: 2048, ReLU); 0: a
      linear head (MoCo v1).
    - ``momentum``: m of the momentum update theta_k <- m theta_k + (1 - m) theta_q (0.999).
    - ``temperature``: tau dividing the logits (v2: 0.2; v1: 0.07).
    - ``queue_size``: K keys in the queue (65536), capped by the number of pretraining
      images; any K works with any batch size (the ring buffer wraps).
    - ``queue_seed``: seed of the queue's initial random unit vectors.
    - ``head_batch_norm``: BatchNormalization before the L2 normalisation (off: the
      papers' v2 head has none). Statistics synchronised across replicas, **not
      shuffled**: the query and the key of an image are normalised with statistics
      of batches holding both, the leak MoCo's shuffled BN removes. The key network
      uses the statistics of its own batch (training mode).
    """
    embedding: int = num(128, 1)
    head_hidden: int = num(2048, 0)
    momentum: float = num(0.999, 0.0, 1.0)
    temperature: float = num(0.2, 0.0, None, lo_open=True)
    queue_size: int = num(65536, 1)
    queue_seed: int = 0
    head_batch_norm: bool = False


def sync_variable(init, name: str, dtype=None) -> tf.Variable:
    """A non-trainable ``tf.Variable`` that replica context writes as the memory bank
    does: ON_WRITE, aggregated ``ONLY_FIRST_REPLICA`` (every replica computes the same
    value; the first one's is written to all)."""
    return tf.Variable(init, trainable=False, name=name, dtype=dtype,
                       synchronization=tf.VariableSynchronization.ON_WRITE,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


class MomentumWeights(tf.Module):
    """theta_k: one float32 variable per query weight (``query_vars``, in order),
    initialised to the query weights' values. Not trainable, no gradient."""

    def __init__(self, query_vars, momentum: float, name="momentum_encoder"):
        super().__init__(name=name)
        self.momentum = float(momentum)
        self.weights = [sync_variable(tf.convert_to_tensor(v), f"k{i}") for i, v in enumerate(query_vars)]

    def update(self, query_vars) -> None:
        """theta_k <- m * theta_k + (1 - m) * theta_q, variable by variable (replica context:
        the query weights are the same on every replica after the optimizer step)."""
        m = self.momentum
        for k, q in zip(self.weights, query_vars):
            k.assign(m * k + (1.0 - m) * tf.cast(tf.convert_to_tensor(q), k.dtype))


class KeyQueue(tf.Module):
    """``keys``: float32 [K, D], a ring buffer of unit vectors; ``pointer``: int64, the
    row the next key is written to (the oldest key). At first, random unit vectors
    (seed ``seed``) and pointer 0."""

    def __init__(self, size: int, dim: int, seed: int = 0, name="queue"):
        super().__init__(name=name)
        self.size, self.dim = int(size), int(dim)
        init = np.random.default_rng(seed).standard_normal((self.size, self.dim)).astype(np.float32)
        init /= np.linalg.norm(init, axis=1, keepdims=True)
        self.keys = sync_variable(init, "keys")
        self.pointer = sync_variable(tf.constant(0, tf.int64), "pointer")

    def enqueue(self, keys: tf.Tensor) -> None:
        """Write the global batch's keys at the pointer, in order, wrapping; advance it.

        Call in replica context with the replica's own keys [b, D]: they are gathered
        from every replica here (in replica order: the order of the global batch). G
        keys in all: rows (pointer + j) mod K get key j; with G > K only the last K
        keys are written (each row once), so the queue holds the last K keys.
        """
        keys = gather_replicas(tf.stop_gradient(tf.cast(keys, tf.float32)))
        g = tf.shape(keys, out_type=tf.int64)[0]
        n = tf.minimum(g, self.size)
        ptr = tf.convert_to_tensor(self.pointer)
        rows = (ptr + g - n + tf.range(n, dtype=tf.int64)) % self.size
        self.keys.scatter_update(tf.IndexedSlices(keys[g - n:], rows))
        self.pointer.assign((ptr + g) % self.size)

    def in_order(self) -> tf.Tensor:
        """The keys oldest first, newest last: [K, D]."""
        return tf.roll(self.keys, -tf.cast(self.pointer, tf.int32), axis=0)


class MocoMethod(Method):
    """MoCo around ``network`` (the query network: one view -> the L2-normalised query).

    Outputs ``query`` (network on view ``view_names[0]``) and ``key`` (the same network
    with the momentum weights on view ``view_names[1]``, under ``stop_gradient``).
    """

    def __init__(self, encoder, network, params: MocoParams, queue_size: int, view_names, **kwargs):
        super().__init__(encoder, network, **kwargs)
        self.params = params
        self.query_view, self.key_view = view_names
        self.momentum_encoder = MomentumWeights(network.trainable_variables, params.momentum)
        self.queue = KeyQueue(queue_size, params.embedding, params.queue_seed)

    def keys(self, images, training=False):
        """The momentum network's L2-normalised keys of ``images`` [B, ...] -> [B, D], no gradient."""
        net = self.network
        k, _ = net.stateless_call([tf.convert_to_tensor(w) for w in self.momentum_encoder.weights],
                                  [tf.convert_to_tensor(v) for v in net.non_trainable_variables],
                                  images, training=training)
        return tf.stop_gradient(k)

    def call(self, views, training=False):
        return {"query": self.network(views[self.query_view], training=training),
                "key": self.keys(views[self.key_view], training=training)}

    def per_example(self, outputs, labels):
        q, k = outputs["query"], outputs["key"]
        queue = tf.convert_to_tensor(self.queue.keys)
        loss = moco_infonce(q, k, queue, self.params.temperature)
        return loss, {"queue_acc": queue_accuracy(q, k, queue),
                      "pos_sim": tf.reduce_sum(q * k, axis=-1)}

    def after_step(self, outputs, labels):
        # MoCo's Algorithm 1: the momentum update after the query's optimizer step,
        # then the batch's keys (computed before it) into the queue.
        self.momentum_encoder.update(self.network.trainable_variables)
        self.queue.enqueue(outputs["key"])


def mlp_head(x, hidden: int, dim: int, name: str, batch_norm: bool = False):
    """MoCo v2's head: Dense ``hidden`` + ReLU -> Dense ``dim`` (``hidden`` 0: Dense
    ``dim`` alone, v1) [-> BatchNormalization, synchronised], then L2 normalisation."""
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name=f"{name}_hidden")(x)
    x = keras.layers.Dense(dim, name=f"{name}_proj")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(synchronized=True, name=f"{name}_bn")(x)
    return keras.layers.UnitNormalization(axis=-1, name=name)(x)


#: The views MoCo takes: the query's and the key's (pretext ``augment``, ``views: 2``).
TWO_VIEWS = VIEW_NAMES[2]


def queue_length(p: MocoParams, facts: DatasetFacts) -> int:
    """K: ``queue_size`` capped by the number of pretraining images when it is known."""
    return min(p.queue_size, int(facts.num_images)) if facts.num_images else p.queue_size


@register("method", "moco", MocoParams)
def build_moco(p: MocoParams, encoder: keras.Model, pretext, *,
               facts: DatasetFacts = NO_FACTS) -> MocoMethod:
    if tuple(pretext.view_names) != TWO_VIEWS:
        raise ValueError(f"method 'moco' needs a pretext with two augmented views of each image, "
                         f"{TWO_VIEWS} (pretext 'augment' with \"views\": 2), got views {pretext.view_names}")
    inp = view_inputs(pretext)[0]
    query = mlp_head(encoder(inp), p.head_hidden, p.embedding, "query", p.head_batch_norm)
    network = keras.Model(inp, query, name="moco_query")
    return MocoMethod(encoder, network, p, queue_length(p, facts), pretext.view_names, name="moco")
