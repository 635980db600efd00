"""DeepCluster (Caron, Bojanowski, Joulin, Douze, "Deep Clustering for Unsupervised
Learning of Visual Features", ECCV 2018).

Alternates two things:

1. **Reclustering**, on the host, before the first step and then every
   ``recluster_every`` steps (the paper: once per epoch; the trainer calls
   :meth:`DeepClusterMethod.before_steps` between steps, see
   :meth:`keras_ssl.methods.base.Method.before_steps`): the features of the
   pretraining images (all of them, or a subset of ``cluster_images`` drawn
   afresh each round from the run seed) by the encoder computing in float32,
   in inference mode, on the whole un-augmented images; PCA to ``pca_dim`` (256)
   dimensions with whitening and L2 normalisation of each row (the paper's
   pre-processing); k-means into ``clusters`` groups; **empty clusters
   re-seeded** (the paper's trick, Sec. 3.3: a non-empty cluster, drawn with
   probability proportional to its size, is split in two by perturbing its
   centroid in opposite directions, its images going to the nearer of the two;
   repeated until no cluster is empty). The cluster id of every image goes into
   ``state.assignment`` (int64 [N], -1: not clustered this round), and the
   classification head ``cluster_head`` (a Dense ``clusters`` on the encoder's
   features) is **re-initialised** (N(0, 0.01) weights, zero bias, as the
   paper's code re-creates its top layer) together with its optimizer slots
   (the paper's code makes a new optimizer for the top layer each epoch).
2. **Training**: the loss of example i (the pretext ``augment``: one augmented
   view and the label ``index``) is the cross-entropy of the head's logits
   against the pseudo-label ``assignment[index]``, times the example's weight.

Uniform sampling over clusters (the paper samples images uniformly over the
pseudo-labels, so that a huge cluster cannot dominate, Sec. 3.3): done with
**per-example weights inversely proportional to the cluster size**, not a
sampler. The pipeline (:mod:`keras_ssl.data.pipeline`) is a pure function of
(seed, step), which is what makes resumed runs and replicas exact; a sampler
over clusters would make the batches depend on the assignment, i.e. on the
training so far, and would have to be rebuilt after every reclustering. The
weights give the same gradient in expectation: an image of cluster c, drawn
uniformly among N images, has weight w_c = N / (K' |c|) (K' non-empty
clusters), so E[w loss] = (1/K') sum_c mean_{i in c} loss_i, the loss of
sampling a cluster uniformly and then an image of it. The weights average to 1
over the N images (with ``cluster_images`` < N the unclustered images weigh 0
and the clustered ones proportionally more). ``balance: false``: every
clustered image weighs N / (number clustered), for an ablation.

k-means: scikit-learn's ``KMeans`` (Lloyd, ``max_iter`` = ``kmeans_iters`` = 20
as the paper's faiss runs, one initialisation of k points drawn at random as
faiss does, ``random_state`` from (run seed, round)), in a single thread
(threadpoolctl). Measured on MNIST's 60,000 images (640-d BCNN features, PCA 256,
k = 100, 2 shared CPU cores; ``benchmarks/deepcluster_recluster.py``): 2.7 s in
one thread, 3.3-3.4 s in two (the cores are shared); k-means++ initialisation
10-18 s for a 0.2% lower inertia; ``MiniBatchKMeans`` (``kmeans: "minibatch"``)
1.8-5.1 s with a 0.7% higher inertia: Lloyd is kept. One thread also makes the
labels independent of the machine's core count (partial sums added in another
order can move a point: seen on synthetic data). PCA: the covariance
eigendecomposition (17x faster than the randomized SVD on 60,000 x 640).
The whole reclustering takes about 10 s (features 4.6 s, PCA 2 s, k-means 2.7 s).

State, in ``tf.Variable``s of the module ``state`` (checkpoint keys
``method/state/...``), aggregated ``ONLY_FIRST_REPLICA`` and assigned in
cross-replica context, so every replica of a mirrored strategy holds the same
values: ``assignment`` [N] int64, ``weight`` [N] float32, ``clustered_at`` (the
step of the last reclustering, -1 before the first) and ``nmi_previous``
(normalised mutual information between this round's and the previous round's
assignment, the paper's Fig. 2b measure of stability). A run resumed from a
checkpoint continues with the restored assignment and head and does not
recluster, unless the checkpoint's step is one where the uninterrupted run
reclusters too (then the reclustering, deterministic, gives what it gave).
Under MultiWorkerMirroredStrategy every worker computes the same reclustering
(deterministic features and k-means) on its own host.

Metrics: ``pseudo_acc`` (the head's argmax is the pseudo-label), ``cluster_ce``
(the unweighted cross-entropy) and ``nmi_previous``.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Literal, Optional

import keras
import numpy as np
import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.methods.base import NO_FACTS, DatasetFacts, HookContext, Method, view_inputs
from keras_ssl.methods.moco import sync_variable
from keras_ssl.registry import Params, register
from keras_ssl.training.precision import inner_optimizer

#: Standard deviation of the re-initialised head's weights (the paper's code: N(0, 0.01), bias 0).
HEAD_STD = 0.01


@dataclass(frozen=True)
class DeepClusterParams(Params):
    """DeepCluster's settings (defaults: Caron et al. 2018 where MNIST allows).

    - ``clusters``: K, the number of k-means clusters and of the head's classes.
      The paper uses 10x the classes of the downstream data (10,000 for ImageNet's
      1,000, its Fig. 3); MNIST's 10 digits give 100 (the default).
    - ``recluster_every``: steps between reclusterings, the first one before step 1
      (the paper: one epoch; MNIST's 60,000 images in batches of 125: 480).
    - ``cluster_images``: images clustered per round, a subset drawn afresh each round
      from the run seed (the others weigh 0 until the next round); None: all (the
      paper); capped by the number of pretraining images.
    - ``pca_dim``: dimensions kept by PCA before k-means (256, the paper), capped by
      the feature dimension and the images clustered; 0: no PCA.
    - ``whiten``: divide each PCA component by its standard deviation (the paper).
    - ``kmeans``: ``"kmeans"`` (scikit-learn's Lloyd ``KMeans``) or ``"minibatch"``
      (``MiniBatchKMeans``, measured slower on MNIST).
    - ``kmeans_iters``: k-means iterations (20, the paper's faiss runs).
    - ``feature_batch``: images per encoder call in the features pass (memory only).
    - ``balance``: weight each example by N / (K' x its cluster's size), the paper's
      uniform sampling over clusters in expectation; false: equal weights.
    """
    clusters: int = num(100, 2)
    recluster_every: int = num(480, 1)
    cluster_images: Optional[int] = num(None, 1)
    pca_dim: int = num(256, 0)
    whiten: bool = True
    kmeans: Literal["kmeans", "minibatch"] = "kmeans"
    kmeans_iters: int = num(20, 1)
    feature_batch: int = num(1000, 1)
    balance: bool = True


# --------------------------------------------------------------------------
# Pure NumPy pieces (tested on their own)
# --------------------------------------------------------------------------

def round_rng(seed: int, round_: int, purpose: int) -> np.random.Generator:
    """The generator of one use (``purpose``) in reclustering round ``round_`` of run ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(round_), int(purpose)]))


def reduce_features(features: np.ndarray, pca_dim: int, whiten: bool = True) -> np.ndarray:
    """float [n, D] -> float32 [n, d]: PCA to d = min(pca_dim, D, n) dimensions (0: none),
    each component divided by its standard deviation if ``whiten`` (a component of
    no variance stays 0), then every row L2-normalised (a zero row stays 0)."""
    from sklearn.decomposition import PCA

    x = np.asarray(features, np.float32)
    n, dim = x.shape
    d = min(int(pca_dim), dim, n)
    if pca_dim and d >= 1:
        pca = PCA(d, svd_solver="covariance_eigh" if d < min(n, dim) else "full")
        x = pca.fit_transform(x).astype(np.float32)
        if whiten:
            var = pca.explained_variance_.astype(np.float32)
            keep = var > 1e-10 * max(float(var.max()), 1e-30)
            x = np.where(keep, x / np.sqrt(np.where(keep, var, 1.0)), 0.0).astype(np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def run_kmeans(x: np.ndarray, k: int, seed: int, iters: int = 20,
               kind: str = "kmeans") -> tuple[np.ndarray, np.ndarray]:
    """(labels int64 [n], centres float32 [k, d]) of k-means on ``x`` [n, d], one thread,
    one initialisation of k points drawn at random (``seed``): the same result on any
    machine. Clusters may come out empty: see :func:`reseed_empty_clusters`."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    x = np.ascontiguousarray(x, np.float32)
    if kind == "minibatch":
        km = MiniBatchKMeans(k, init="random", n_init=1, max_iter=iters, random_state=seed,
                             batch_size=4096)
    else:
        km = KMeans(k, init="random", n_init=1, max_iter=iters, random_state=seed)
    with threadpool_limits(1), warnings.catch_warnings():
        # fewer distinct points than clusters: the empty ones are re-seeded after
        warnings.simplefilter("ignore", ConvergenceWarning)
        km.fit(x)
    labels = km.predict(x).astype(np.int64)
    return labels, km.cluster_centers_.astype(np.float32)


def reseed_empty_clusters(x: np.ndarray, labels: np.ndarray, centres: np.ndarray, k: int,
                          rng: np.random.Generator):
    """Re-seed every empty cluster of ``labels`` (ids in [0, k)) by splitting a non-empty
    one: the paper's trick (as its faiss k-means does, for any small eps > 0). Returns (labels, centres, the
    number re-seeded).

    For each empty cluster e in turn: a cluster c with at least two images, drawn with
    probability proportional to its size; its centre perturbed in opposite directions,
    c +- eps * u (u a random unit vector), and its images sent to the nearer of the two
    (the sign of (x - centre_c) . u); if that leaves one side empty (identical points),
    the images ranked by (x - centre_c) . u are halved. Both centres become the means of
    their images. Needs k <= n (every cluster then gets an image)."""
    labels = np.array(labels, np.int64, copy=True)
    centres = np.array(centres, np.float32, copy=True)
    n = len(labels)
    if k > n:
        raise ValueError(f"cannot fill {k} clusters with {n} images")
    reseeded = 0
    while True:
        sizes = np.bincount(labels, minlength=k)
        empty = np.flatnonzero(sizes == 0)
        if not len(empty):
            return labels, centres, reseeded
        e = int(empty[0])
        splittable = np.where(sizes >= 2, sizes, 0).astype(np.float64)
        c = int(rng.choice(k, p=splittable / splittable.sum()))
        members = np.flatnonzero(labels == c)
        u = rng.standard_normal(x.shape[1]).astype(np.float32)
        u /= max(float(np.linalg.norm(u)), 1e-12)
        proj = (x[members] - centres[c]) @ u
        move = proj > 0           # nearer to centre + eps u than to centre - eps u
        if move.all() or not move.any():
            move = np.zeros(len(members), bool)
            move[np.argsort(proj, kind="stable")[len(members) // 2:]] = True
        labels[members[move]] = e
        centres[e] = x[members[move]].mean(axis=0)
        centres[c] = x[members[~move]].mean(axis=0)
        reseeded += 1


def cluster_weights(assignment: np.ndarray, k: int, balance: bool = True) -> np.ndarray:
    """float32 [N] per-image loss weights of an ``assignment`` (ids in [0, k), -1: not
    clustered): ``balance``: N / (K' |c|) for an image of cluster c (K' non-empty
    clusters), so that drawing images uniformly weighs every cluster alike; else
    N / (number clustered). Unclustered images weigh 0; the weights sum to N."""
    assignment = np.asarray(assignment, np.int64)
    n = len(assignment)
    clustered = assignment >= 0
    w = np.zeros(n, np.float32)
    m = int(clustered.sum())
    if not m:
        return w
    if not balance:
        w[clustered] = n / m
        return w
    sizes = np.bincount(assignment[clustered], minlength=k)
    w[clustered] = n / (np.count_nonzero(sizes) * sizes[assignment[clustered]])
    return w


# --------------------------------------------------------------------------
# The method
# --------------------------------------------------------------------------

class ClusterState(tf.Module):
    """The per-image pseudo-labels and their weights, and the reclustering's bookkeeping."""

    def __init__(self, num_images: int, name="state"):
        super().__init__(name=name)
        self.assignment = sync_variable(tf.fill([num_images], tf.constant(-1, tf.int64)), "assignment")
        self.weight = sync_variable(tf.zeros([num_images], tf.float32), "weight")
        self.clustered_at = sync_variable(tf.constant(-1, tf.int64), "clustered_at")
        self.nmi_previous = sync_variable(tf.constant(0.0, tf.float32), "nmi_previous")


class DeepClusterMethod(Method):
    """DeepCluster around ``network`` (view ``image`` -> ``logits`` [B, K] of ``head``)."""

    def __init__(self, encoder, network, head, params: DeepClusterParams, num_images: int, **kwargs):
        super().__init__(encoder, network, **kwargs)
        self.params = params
        self.num_images = int(num_images)
        self.head = head
        self.state = ClusterState(self.num_images)
        #: One dict per reclustering done by this object (step, timings): not checkpointed.
        self.reclusterings: list[dict] = []

    # -- the loss --------------------------------------------------------------

    def pseudo_labels(self, index: tf.Tensor) -> tf.Tensor:
        """The cluster ids of the images ``index`` (int64 [B]): ``assignment[index]``."""
        return tf.gather(self.state.assignment, tf.cast(index, tf.int64))

    def per_example(self, outputs, labels):
        if "index" not in labels:
            raise ValueError(f"method 'deepcluster' needs a pretext that emits the label 'index' "
                             f"(pretext 'augment'), got {sorted(labels)}")
        index = tf.cast(labels["index"], tf.int64)
        target = self.pseudo_labels(index)
        weight = tf.gather(self.state.weight, index)
        logits = tf.cast(outputs["logits"], tf.float32)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(target, 0), logits=logits)
        hit = tf.cast(tf.equal(tf.argmax(logits, axis=-1), target), tf.float32)
        nmi = tf.fill(tf.shape(ce), tf.convert_to_tensor(self.state.nmi_previous))
        return weight * ce, {"pseudo_acc": hit, "cluster_ce": ce, "nmi_previous": nmi}

    # -- reclustering between steps ----------------------------------------------

    def steps_before_hook(self, step: int) -> int:
        every = self.params.recluster_every
        return every - step % every

    def before_steps(self, step: int, context: HookContext) -> Optional[dict]:
        """Recluster when ``step`` is a multiple of ``recluster_every`` and the state does
        not already hold that step's clustering (a resumed run's restored one)."""
        if step % self.params.recluster_every or int(self.state.clustered_at.numpy()) == step:
            return None
        return self.recluster(step, context)

    def features(self, encoder: keras.Model, images: np.ndarray) -> np.ndarray:
        """float32 [n, D]: ``encoder`` in inference mode on uint8 ``images`` [n, H, W, C]
        (scaled to [0, 1], whole, not augmented), ``feature_batch`` at a time.

        The function is traced anew each call (a fraction of a second): keeping it, or
        ``encoder``, on the method would make a float32 copy of the encoder part of the
        tracked model (its weights trainable variables of the method, in checkpoints)."""
        fn = tf.function(lambda x: tf.cast(encoder(tf.cast(x, tf.float32) / 255.0, training=False),
                                           tf.float32),
                         input_signature=[tf.TensorSpec([None, *images.shape[1:]], tf.uint8)])
        b = self.params.feature_batch
        out = [fn(tf.constant(images[i:i + b])).numpy() for i in range(0, len(images), b)]
        return np.concatenate(out, axis=0).reshape(len(images), -1)

    def recluster(self, step: int, context: HookContext) -> dict:
        """Cluster the features, store the assignment and weights, reset the head.
        Returns the round's scalars (seconds of each part, NMI to the previous round,
        clusters re-seeded, the largest cluster's share)."""
        p = self.params
        t0 = time.perf_counter()
        round_ = step // p.recluster_every
        n = self.num_images
        images = context.images
        if len(images) != n:
            raise ValueError(f"method 'deepcluster' was built for {n} images, got {len(images)}")
        m = n if p.cluster_images is None else min(int(p.cluster_images), n)
        idx = np.arange(n) if m == n else np.sort(round_rng(context.seed, round_, 0).choice(n, m, replace=False))
        if p.clusters > m:
            raise ValueError(f"method.clusters ({p.clusters}) is more than the images clustered ({m}: "
                             f"method.cluster_images or the number of pretraining images)")
        feats = self.features(context.encoder(), images[idx])
        t1 = time.perf_counter()
        x = reduce_features(feats, p.pca_dim, p.whiten)
        t2 = time.perf_counter()
        km_seed = int(round_rng(context.seed, round_, 1).integers(2 ** 31 - 1))
        labels, centres = run_kmeans(x, p.clusters, km_seed, p.kmeans_iters, p.kmeans)
        t3 = time.perf_counter()
        labels, centres, reseeded = reseed_empty_clusters(x, labels, centres, p.clusters,
                                                          round_rng(context.seed, round_, 2))
        assignment = np.full(n, -1, np.int64)
        assignment[idx] = labels
        previous = self.state.assignment.numpy()
        both = (previous >= 0) & (assignment >= 0)
        nmi = 0.0
        if both.any():
            from sklearn.metrics import normalized_mutual_info_score
            nmi = float(normalized_mutual_info_score(previous[both], assignment[both]))
        self.state.assignment.assign(assignment)
        self.state.weight.assign(cluster_weights(assignment, p.clusters, p.balance))
        self.state.nmi_previous.assign(nmi)
        self.state.clustered_at.assign(step)
        self.reset_head(round_rng(context.seed, round_, 3), context.optimizer)
        t4 = time.perf_counter()
        values = {"recluster/seconds": t4 - t0, "recluster/features_seconds": t1 - t0,
                  "recluster/pca_seconds": t2 - t1, "recluster/kmeans_seconds": t3 - t2,
                  "recluster/nmi_previous": nmi, "recluster/reseeded": float(reseeded),
                  "recluster/largest_cluster": float(np.bincount(labels, minlength=p.clusters).max() / m)}
        self.reclusterings.append({"step": step, **values})
        return values

    def reset_head(self, rng: np.random.Generator, optimizer=None) -> None:
        """Re-initialise the head (weights N(0, 0.01), bias 0) and zero its optimizer slots."""
        kernel, bias = self.head.kernel, self.head.bias
        kernel.assign(rng.normal(0.0, HEAD_STD, tuple(kernel.shape)).astype(np.float32))
        bias.assign(np.zeros(tuple(bias.shape), np.float32))
        if optimizer is None:
            return
        prefixes = tuple(f"{v.path.replace('/', '_')}_" for v in (kernel, bias))
        for slot in inner_optimizer(optimizer).variables:
            if slot.name.startswith(prefixes):
                slot.assign(tf.zeros(slot.shape, slot.dtype))


@register("method", "deepcluster", DeepClusterParams)
def build_deepcluster(p: DeepClusterParams, encoder: keras.Model, pretext, *,
                      facts: DatasetFacts = NO_FACTS) -> DeepClusterMethod:
    n = facts.num_images
    if not n:
        raise ValueError("method 'deepcluster' keeps one pseudo-label per image and needs the number of "
                         "pretraining images: pass num_images to the Pretrainer (keras_ssl.train does) "
                         "or facts=DatasetFacts(num_images=...) to the builder")
    if len(pretext.view_names) != 1:
        raise ValueError(f"method 'deepcluster' needs a pretext with one view and the label 'index' "
                         f"(pretext 'augment'), got views {pretext.view_names}")
    m = n if p.cluster_images is None else min(p.cluster_images, n)
    if p.clusters > m:
        raise ValueError(f"method.clusters ({p.clusters}) is more than the images clustered ({m}: "
                         f"method.cluster_images or the number of pretraining images)")
    inputs = view_inputs(pretext)
    head = keras.layers.Dense(p.clusters, name="cluster_head",
                              kernel_initializer=keras.initializers.RandomNormal(0.0, HEAD_STD))
    network = keras.Model(inputs, {"logits": head(encoder(inputs[0]))}, name="deepcluster_head")
    return DeepClusterMethod(encoder, network, head, p, int(n), name="deepcluster")
