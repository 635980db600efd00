"""DeepCluster (keras_ssl.methods.deepcluster): k-means recovers obvious clusters and the
loss's target for image i is assignment[i]; re-seeding leaves no cluster empty; the
weights make every cluster count alike; the head (and its optimizer slots) is reset
at each reclustering and only then; reclustering happens exactly at the configured
steps; a resumed run needs no reclustering and ends where the straight run ends;
2 replicas hold the same assignment and equal 1 device; a short run learns."""
from functools import partial

import keras
import numpy as np
import pytest
import tensorflow as tf

import support
from keras_ssl import registry
from keras_ssl.config import ConfigError
from keras_ssl.methods.base import NO_FACTS, DatasetFacts, HookContext
from keras_ssl.methods.deepcluster import (HEAD_STD, DeepClusterParams, cluster_weights, reduce_features, reseed_empty_clusters,
                                           round_rng, run_kmeans)
from keras_ssl.pretext.augment import AugmentPretextParams
from keras_ssl.registry import Component
from keras_ssl.training.precision import inner_optimizer
from support import weights

N_IMAGES = 48
BATCH = 16
SEED = 7
DC = ({"name": "deepcluster", "clusters": 4, "pca_dim": 4, "recluster_every": 3}, {"name": "augment"})

small_cfg = partial(support.small_cfg, seed=SEED)
trainer = partial(support.trainer, num_images=N_IMAGES)


def block_images(groups: np.ndarray, size: int = 28, seed: int = 0) -> np.ndarray:
    """uint8 [n, size, size, 1]: image i is bright in the 7x7 block ``groups[i]`` (of 16),
    dark elsewhere, with a little noise: features that pool the blocks cluster by group."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.1, (len(groups), size, size, 1))
    for i, g in enumerate(groups):
        r, c = divmod(int(g), 4)
        x[i, 7 * r:7 * r + 7, 7 * c:7 * c + 7] = rng.uniform(0.8, 1.0)
    return (x * 255).astype(np.uint8)


def block_encoder() -> keras.Model:
    """7x7 average pooling, flattened: 16 features, one per block (no weights)."""
    inp = keras.Input((28, 28, 1), name="images")
    out = keras.layers.Flatten()(keras.layers.AveragePooling2D(7)(inp))
    return keras.Model(inp, out, name="blocks")


def pretext(views: int = 1):
    return registry.build("pretext", Component("augment", AugmentPretextParams(views=views)), (28, 28, 1))


def build(params: dict, encoder, n: int):
    comp = Component("deepcluster", DeepClusterParams(**params))
    return registry.build("method", comp, encoder, pretext(), facts=DatasetFacts(num_images=n)), pretext


def same_partition(a, b) -> bool:
    """Whether labelings ``a`` and ``b`` group the items identically (up to renaming)."""
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))
    return len(pairs) == len(set(a)) == len(set(b))


# -- the pieces -------------------------------------------------------------------

def test_kmeans_recovers_obvious_clusters_and_the_target_of_index_i_is_assignment_i():
    groups = np.arange(60) % 5
    np.random.default_rng(0).shuffle(groups)
    method, _ = build({"clusters": 5, "pca_dim": 8}, block_encoder(), len(groups))
    images = block_images(groups)
    method.recluster(0, HookContext(images=images, seed=SEED, encoder=block_encoder))
    assignment = method.state.assignment.numpy()
    assert assignment.min() >= 0 and same_partition(assignment, groups)
    # the loss of an example: its weight times the cross-entropy against assignment[index]
    index = np.array([3, 17, 3, 59, 0, 42], np.int64)
    logits = np.random.default_rng(1).normal(size=(len(index), 5)).astype(np.float32)
    loss, metrics = method.per_example({"logits": tf.constant(logits)}, {"index": tf.constant(index)})
    np.testing.assert_array_equal(method.pseudo_labels(tf.constant(index)).numpy(), assignment[index])
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    ce = -logp[np.arange(len(index)), assignment[index]]
    w = method.state.weight.numpy()[index]
    np.testing.assert_allclose(loss.numpy(), w * ce, rtol=1e-5)
    np.testing.assert_array_equal(metrics["pseudo_acc"].numpy(),
                                  (logits.argmax(1) == assignment[index]).astype(np.float32))


def test_reseeding_splits_clusters_until_none_is_empty():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    labels = np.where(np.arange(40) < 30, 0, 3)           # clusters 1, 2, 4 empty
    centres = np.zeros((5, 3), np.float32)
    new, new_centres, reseeded = reseed_empty_clusters(x, labels, centres, 5, rng)
    assert reseeded == 3 and np.all(np.bincount(new, minlength=5) > 0)
    moved = new != labels
    assert set(new[moved]) == {1, 2, 4}                    # only to the empty clusters
    for c in range(5):                                     # the centres are their images' means
        np.testing.assert_allclose(new_centres[c], x[new == c].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_reseeding_splits_identical_points_too():
    x = np.ones((6, 2), np.float32)
    new, _, reseeded = reseed_empty_clusters(x, np.zeros(6, np.int64), np.ones((3, 2), np.float32), 3,
                                             np.random.default_rng(0))
    assert reseeded == 2 and np.all(np.bincount(new, minlength=3) > 0)


def test_reclustering_leaves_no_cluster_empty_where_kmeans_does():
    """3 distinct images, 6 clusters: scikit-learn's k-means leaves some empty (checked
    here), the reclustering re-seeds them all."""
    groups = np.arange(30) % 3
    images = np.repeat(block_images(np.arange(3)), 10, axis=0)[np.argsort(np.argsort(groups), kind="stable")]
    x = reduce_features(images.reshape(30, -1).astype(np.float32), 0)
    labels, _ = run_kmeans(x, 6, seed=0)
    assert len(np.unique(labels)) < 6                      # k-means alone leaves clusters empty
    method, _ = build({"clusters": 6, "pca_dim": 4}, block_encoder(), 30)
    values = method.recluster(0, HookContext(images=images, seed=SEED, encoder=block_encoder))
    assignment = method.state.assignment.numpy()
    assert np.all(np.bincount(assignment, minlength=6) > 0) and values["recluster/reseeded"] >= 1


def test_weights_weigh_every_cluster_alike():
    assignment = np.array([0, 0, 0, 1, 2, 2, -1, 0])
    w = cluster_weights(assignment, 4)
    assert w[6] == 0 and np.isclose(w.sum(), len(assignment))
    per_cluster = [w[assignment == c].sum() for c in range(3)]   # cluster 3 is empty: K' = 3
    np.testing.assert_allclose(per_cluster, [len(assignment) / 3] * 3, rtol=1e-6)
    flat = cluster_weights(assignment, 4, balance=False)
    np.testing.assert_allclose(flat[assignment >= 0], len(assignment) / 7)
    assert flat[6] == 0


def test_pca_whitens_and_normalises():
    """reduce_features is PCA (the top eigenvectors of the covariance), each component
    divided by its standard deviation, then each row L2-normalised: checked against
    NumPy's eigendecomposition (up to the sign of each component)."""
    x = np.random.default_rng(0).normal(size=(300, 10)) * np.arange(1, 11) ** 1.5
    xc = x - x.mean(axis=0)
    var, vecs = np.linalg.eigh(np.cov(xc, rowvar=False))
    top = np.argsort(var)[::-1][:4]
    for whiten in (True, False):
        z = xc @ vecs[:, top]
        if whiten:
            z = z / np.sqrt(var[top])
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        y = reduce_features(x, 4, whiten)
        assert y.shape == (300, 4)
        y = y * np.sign(np.sum(y * z, axis=0))               # a component's sign is arbitrary
        np.testing.assert_allclose(y, z, rtol=1e-3, atol=1e-4)
    assert reduce_features(x, 64).shape == (300, 10)        # capped by the feature dimension
    assert reduce_features(x[:5], 64).shape == (5, 5)       # and by the images


def test_builder_refusals_name_what_is_missing():
    encoder = block_encoder()
    comp = Component("deepcluster", DeepClusterParams())
    with pytest.raises(ValueError, match="num_images"):
        registry.build("method", comp, encoder, pretext(), facts=NO_FACTS)
    with pytest.raises(ValueError, match=r"method\.clusters \(100\)"):
        registry.build("method", comp, encoder, pretext(), facts=DatasetFacts(num_images=50))
    with pytest.raises(ValueError, match="one view"):
        registry.build("method", comp, encoder, pretext(2), facts=DatasetFacts(num_images=500))
    with pytest.raises(ConfigError, match="clusters"):
        support.small_cfg({"name": "deepcluster", "clusters": 1}, {"name": "augment"})


# -- in the trainer ------------------------------------------------------------------

def head_slots(t):
    method = t.method
    prefixes = tuple(f"{v.path.replace('/', '_')}_" for v in (method.head.kernel, method.head.bias))
    return [v for v in inner_optimizer(t.optimizer).variables if v.name.startswith(prefixes)]


@pytest.mark.parametrize("steps_per_execution", [2, 4])
def test_reclusters_exactly_at_the_configured_steps_and_resets_the_head_only_then(
        tmp_path, digits, steps_per_execution):
    """recluster_every 3 over 8 steps: reclusterings before steps 1, 4, 7 (steps done 0,
    3, 6), whatever the chunk size; each leaves the head at that round's N(0, 0.01) draw,
    zero bias, zero optimizer slots; a hook call that does not recluster leaves it as is."""
    images, _ = digits(N_IMAGES)
    t = trainer(small_cfg(*DC, steps=8, steps_per_execution=steps_per_execution, batch_size=BATCH,
                          checkpoint_every=8, log_every=8), tmp_path)
    method, calls = t.method, []
    assert len(head_slots(t)) == 2            # SGD momentum of the kernel and the bias
    original = method.before_steps

    def spy(step, context):
        before = method.head.kernel.numpy().copy()
        out = original(step, context)
        calls.append((step, before, method.head.kernel.numpy().copy(), method.head.bias.numpy().copy(),
                      [s.numpy().copy() for s in head_slots(t)], out is not None))
        return out

    method.before_steps = spy
    summary = t.train(images)
    assert [r["step"] for r in method.reclusterings] == [0, 3, 6]
    assert [h["step"] for h in summary["hooks"]] == [0, 3, 6]
    assert all(h["recluster/seconds"] > 0 for h in summary["hooks"])
    assert {c[0] for c in calls} >= {0, 3, 6}                # chunks end at every multiple
    for step, before, kernel, bias, slots, reclustered in calls:
        assert reclustered == (step % 3 == 0)
        if reclustered:
            draw = round_rng(SEED, step // 3, 3).normal(0.0, HEAD_STD, kernel.shape).astype(np.float32)
            np.testing.assert_array_equal(kernel, draw)
            assert not np.any(bias) and not any(np.any(s) for s in slots)
            if step:
                assert not np.array_equal(before, kernel)
        else:
            np.testing.assert_array_equal(before, kernel)
    assert int(method.state.clustered_at.numpy()) == 6


@pytest.mark.parametrize("stop", [4, 6])
def test_resume_keeps_the_assignment_needs_no_reclustering_and_ends_where_the_straight_run_does(
        tmp_path, digits, stop):
    """Stopped after the checkpoint of step ``stop`` and restarted: the restored
    assignment, weights and head are those at the stop, the next step's loss is the one
    the stopped run would compute, the resumed run reclusters only at step 6 (a
    reclustering step the checkpoint was written before, for stop 6) and ends with the
    straight run's weights and assignment, bit for bit."""
    images, _ = digits(N_IMAGES)
    cfg = partial(small_cfg, *DC, steps_per_execution=1, batch_size=BATCH, checkpoint_every=4, log_every=4)
    straight = trainer(cfg(steps=8), tmp_path / "a")
    straight.train(images)
    first = trainer(cfg(steps=stop), tmp_path / "b")
    first.train(images)
    second = trainer(cfg(steps=8), tmp_path / "b")
    assert np.all(second.method.state.assignment.numpy() == -1)      # nothing until restored
    assert second.restore() == stop
    for name in ("assignment", "weight", "clustered_at"):
        np.testing.assert_array_equal(getattr(second.method.state, name).numpy(),
                                      getattr(first.method.state, name).numpy())
    views, labels = support.sample(second.pretext, support.as_float(images[:BATCH]))
    loss_first = first.method.per_example(first.method(views, training=False), labels)[0].numpy()
    loss_second = second.method.per_example(second.method(views, training=False), labels)[0].numpy()
    np.testing.assert_array_equal(loss_first, loss_second)
    s = second.train(images)
    assert s["start_step"] == stop
    assert [r["step"] for r in second.method.reclusterings] == [6]
    for a, b in zip(weights(straight), weights(second)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(straight.method.state.assignment.numpy(),
                                  second.method.state.assignment.numpy())
    names = [n for n, _ in tf.train.list_variables(second.manager.latest_checkpoint)]
    assert any(n.startswith("method/state/assignment") for n in names)


@pytest.fixture(scope="module")
def two_cpus():
    """A MirroredStrategy over the 2 logical CPUs (ReductionToOneDevice: see
    tests/methods/test_memory_bank.py::two_cpus for why not the collective ops)."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                          cross_device_ops=tf.distribute.ReductionToOneDevice())


def test_mirrored_two_replicas_hold_the_same_assignment_and_match_one(tmp_path, digits, two_cpus):
    images, _ = digits(N_IMAGES)
    cfg = small_cfg({**DC[0], "recluster_every": 2}, DC[1], steps=3, steps_per_execution=1, batch_size=32,
                    weight_decay=0.0, momentum=0.0, log_every=3, checkpoint_every=3)
    one = trainer(cfg, tmp_path / "one", tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = trainer(cfg, tmp_path / "two", two_cpus)
    assert two.strategy.num_replicas_in_sync == 2
    for w1, w2 in zip(one.method.trainable_weights, two.method.trainable_weights):
        w2.assign(w1)
    s1, s2 = one.train(images), two.train(images)
    assert [r["step"] for r in two.method.reclusterings] == [0, 2]
    assert np.isclose(s1["final"]["loss"], s2["final"]["loss"], rtol=1e-5)
    np.testing.assert_array_equal(one.method.state.assignment.numpy(), two.method.state.assignment.numpy())
    for a, b in zip(weights(one), weights(two)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    state = two.method.state
    for var in [state.assignment, state.weight, state.clustered_at, two.method.head.kernel._value]:
        first, second = (v.numpy() for v in var.values)
        np.testing.assert_array_equal(first, second)                       # identical on every replica
    assert state.assignment.numpy().min() >= 0


def test_mixed_precision_clusters_float32_features(tmp_path, digits):
    """Under mixed_bfloat16 the features pass uses the float32 copy of the encoder."""
    images, _ = digits(N_IMAGES)
    t = trainer(small_cfg(*DC, steps=2, steps_per_execution=2, batch_size=BATCH, precision="mixed_bfloat16"),
                tmp_path)
    seen = []
    original = t.float32_encoder

    def spy():
        enc = original()
        seen.append(enc)
        return enc

    t.float32_encoder = spy
    n_vars = len(t.method.trainable_variables)
    t.train(images)
    assert len(t.method.trainable_variables) == n_vars        # the copy is not tracked by the method
    assert seen and all(w.dtype == "float32" for w in seen[0].weights)
    assert seen[0].dtype_policy.compute_dtype == "float32" and t.encoder.dtype_policy.compute_dtype == "bfloat16"
    assert t.method.state.assignment.numpy().min() >= 0


def test_a_short_run_learns_the_pseudo_labels(tmp_path, digits):
    """40 steps on 10-class synthetic digits, one reclustering into 10 clusters: on all
    the (un-augmented) images, the head fits the pseudo-labels better after the steps
    than right after the reclustering reset it (lower weighted loss, higher accuracy)."""
    images, _ = digits(80)
    cfg = support.small_cfg({"name": "deepcluster", "clusters": 10, "pca_dim": 8, "recluster_every": 1000},
                            {"name": "augment", "max_rotation_deg": 5.0, "max_shift_px": 1.0},
                            seed=SEED, steps=40, steps_per_execution=5, batch_size=BATCH, log_every=5,
                            checkpoint_every=40, learning_rate=0.3)
    t = support.trainer(cfg, tmp_path, num_images=80)
    x, index = {"image": support.as_float(images)}, {"index": tf.range(80, dtype=tf.int64)}

    def fit():
        loss, metrics = t.method.per_example(t.method(x, training=False), index)
        return float(tf.reduce_mean(loss)), float(tf.reduce_mean(metrics["pseudo_acc"]))

    at_reset = []
    original = t.method.before_steps

    def spy(step, context):
        out = original(step, context)
        if out is not None:
            at_reset.append(fit())
        return out

    t.method.before_steps = spy
    t.train(images)
    (loss0, acc0), (loss1, acc1) = at_reset[0], fit()
    assert len(at_reset) == 1 and loss1 < loss0 and acc1 > acc0, (at_reset, loss1, acc1)
    assert np.all(np.bincount(t.method.state.assignment.numpy(), minlength=10) > 0)
