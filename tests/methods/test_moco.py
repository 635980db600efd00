"""MoCo v2 (keras_ssl.methods.moco): the queue holds the last keys in order and
wraps, the momentum network gets no gradient and moves by m * old + (1 - m) *
query, the trainer's encoder is the query encoder, 2 replicas equal 1, exact
resume of weights, momentum weights and queue."""
from functools import partial

import keras
import numpy as np
import pytest
import tensorflow as tf

import support
from keras_ssl import registry
from keras_ssl.data.pipeline import pretext_batches
from keras_ssl.encoders import build_encoder
from keras_ssl.methods.base import NO_FACTS, DatasetFacts
from keras_ssl.methods.moco import KeyQueue, MomentumWeights
from support import weights

N_IMAGES = 48
BATCH = 16
QUEUE = 40            # not a multiple of the batch: the third step's keys wrap
M = 0.9
MOCO = ({"name": "moco", "embedding": 8, "head_hidden": 16, "queue_size": QUEUE, "momentum": M},
        {"name": "augment", "views": 2})

small_cfg = partial(support.small_cfg, seed=7)
trainer = partial(support.trainer, num_images=N_IMAGES)


def momentum_weights(t):
    return [v.numpy().copy() for v in t.method.momentum_encoder.weights]


def queue_state(t):
    return t.method.queue.keys.numpy().copy(), int(t.method.queue.pointer.numpy())


def unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# -- the pieces -------------------------------------------------------------------

def test_queue_is_a_ring_buffer_of_the_last_keys():
    q = KeyQueue(5, 2, seed=3)
    init = q.keys.numpy().copy()
    np.testing.assert_allclose(np.linalg.norm(init, axis=1), 1.0, rtol=1e-6)
    assert int(q.pointer.numpy()) == 0
    keys = unit(np.random.default_rng(0).standard_normal((14, 2)))
    q.enqueue(keys[:3])
    np.testing.assert_array_equal(q.keys.numpy()[:3], keys[:3])
    np.testing.assert_array_equal(q.keys.numpy()[3:], init[3:])            # untouched rows
    assert int(q.pointer.numpy()) == 3
    q.enqueue(keys[3:7])                                                   # wraps: rows 3, 4, 0, 1
    assert int(q.pointer.numpy()) == 2
    np.testing.assert_array_equal(q.keys.numpy(), keys[[5, 6, 2, 3, 4]])
    np.testing.assert_array_equal(q.in_order().numpy(), keys[2:7])         # oldest first
    q.enqueue(keys[7:14])                                                  # 7 keys > K = 5: the last 5
    assert int(q.pointer.numpy()) == (2 + 7) % 5
    np.testing.assert_array_equal(q.in_order().numpy(), keys[9:14])


def test_momentum_update_is_the_papers_formula():
    rng = np.random.default_rng(1)
    query = [tf.Variable(rng.standard_normal(s).astype(np.float32)) for s in ((3, 4), (4,))]
    mw = MomentumWeights(query, 0.99)
    for k, q in zip(mw.weights, query):                                    # starts equal
        np.testing.assert_array_equal(k.numpy(), q.numpy())
        assert not k.trainable
    old = [k.numpy().copy() for k in mw.weights]
    for q in query:
        q.assign_add(rng.standard_normal(q.shape).astype(np.float32))
    mw.update(query)
    for k, k0, q in zip(mw.weights, old, query):
        np.testing.assert_array_equal(k.numpy(), np.float32(0.99) * k0 + np.float32(1 - 0.99) * q.numpy())


def _build(pretext: dict, facts=NO_FACTS, **method):
    cfg = small_cfg({"name": "moco", "embedding": 8, "head_hidden": 8, **method}, pretext)
    enc = build_encoder(cfg.encoder, (28, 28, 1))
    pre = registry.build("pretext", cfg.pretext, (28, 28, 1))
    return registry.build("method", cfg.method, enc, pre, facts=facts)


def test_builder_needs_two_views_and_caps_the_queue():
    with pytest.raises(ValueError, match=r"two augmented views .*\"views\": 2"):
        _build({"name": "augment"})
    with pytest.raises(ValueError, match="two augmented views"):
        _build({"name": "pirl", "transform": "rotation"}, DatasetFacts(num_images=30))
    assert _build(MOCO[1]).queue.keys.shape == (65536, 8)                           # the papers' K
    assert _build(MOCO[1], DatasetFacts(num_images=37)).queue.keys.shape == (37, 8)  # capped by N
    assert _build(MOCO[1], DatasetFacts(num_images=37), queue_size=12).queue.size == 12
    m = _build(MOCO[1], head_hidden=0)                                             # v1: linear head
    assert [layer.name for layer in m.network.layers if isinstance(layer, keras.layers.Dense)] == ["query_proj"]
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in m.network.layers)
    m = _build(MOCO[1], head_batch_norm=True)
    assert [layer.name for layer in m.network.layers if isinstance(layer, keras.layers.BatchNormalization)] \
        == ["query_bn"]
    assert len(m.momentum_encoder.weights) == len(m.network.trainable_variables)   # gamma, beta too


def test_momentum_network_gets_no_gradient_and_is_not_trainable():
    m = _build(MOCO[1], DatasetFacts(num_images=N_IMAGES), queue_size=QUEUE)
    trainable = {id(v) for v in m.trainable_variables}
    assert not any(id(k) in trainable for k in m.momentum_encoder.weights)
    assert not any(id(v) in trainable for v in (m.queue.keys, m.queue.pointer))
    assert len(m.trainable_variables) == len(m.momentum_encoder.weights) == len(m.network.trainable_variables)
    x = support.as_float(support.synthetic_digits(BATCH)[0])
    views, labels = support.sample(m_pretext(), x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(m.momentum_encoder.weights)                             # not trainable: watched by hand
        out = m(views, training=True)
        loss = tf.reduce_sum(m.per_example(out, labels)[0])
    assert all(g is None for g in tape.gradient(loss, m.momentum_encoder.weights))
    assert all(g is None for g in tape.gradient(out["key"], m.momentum_encoder.weights))
    assert all(g is not None for g in tape.gradient(loss, m.trainable_variables))


def m_pretext():
    return registry.build("pretext", small_cfg(*MOCO).pretext, (28, 28, 1))


# -- training -----------------------------------------------------------------------

def hand_keys(t, step: int, images) -> np.ndarray:
    """The keys of ``step``'s batch by hand: the batch from the pipeline, a clone of the
    query network holding the momentum weights the step starts from, on view ``image2``."""
    views, _ = next(iter(pretext_batches(images, t.pretext, BATCH, t.cfg.seed, step, step + 1)))
    clone = keras.models.clone_model(t.method.network)
    for c, k in zip(clone.trainable_variables, t.method.momentum_encoder.weights):
        c.assign(k.numpy())
    return clone(views["image2"], training=True).numpy()


def test_steps_fill_the_queue_and_move_the_momentum_network(tmp_path, digits):
    """Three steps of 16 images into a queue of 40, one step at a time (a checkpoint
    after each): each step's momentum weights are m * old + (1 - m) * the new query
    weights; the queue holds the last 40 keys in order, each the momentum network's
    (as it was before its step) on the key view, and the pointer wraps to 48 mod 40."""
    images, _ = digits(N_IMAGES)
    cfg = partial(small_cfg, *MOCO, batch_size=BATCH, steps_per_execution=1, checkpoint_every=1,
                  log_every=1, sample_examples=0)
    t = trainer(cfg(steps=1), tmp_path)
    assert t.encoder is t.method.encoder                                   # the query encoder
    init_queue, ptr = queue_state(t)
    assert ptr == 0
    for q, k in zip(weights(t), momentum_weights(t)):                      # initialised equal
        np.testing.assert_array_equal(q, k)
    keys = []
    for step in range(3):
        t.cfg = cfg(steps=step + 1)
        old = momentum_weights(t)
        keys.append(hand_keys(t, step, images))
        s = t.train(images)
        assert s["start_step"] == step and np.isfinite(s["final"]["loss"])
        for k_new, k_old, q_new in zip(momentum_weights(t), old, weights(t)):
            np.testing.assert_array_equal(k_new, np.float32(M) * k_old + np.float32(1 - M) * q_new)
        queue, ptr = queue_state(t)
        assert ptr == ((step + 1) * BATCH) % QUEUE
        if step == 1:                                                      # 32 keys: 8 rows left as drawn
            np.testing.assert_array_equal(queue[32:], init_queue[32:])
    all_keys = np.concatenate(keys)                                        # 48 keys in batch order
    assert not np.allclose(all_keys[:BATCH], all_keys[BATCH:2 * BATCH], atol=1e-3)
    np.testing.assert_allclose(t.method.queue.in_order().numpy(), all_keys[-QUEUE:], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(queue[:8], all_keys[40:], rtol=1e-4, atol=1e-5)     # the wrap
    np.testing.assert_allclose(np.linalg.norm(queue, axis=1), 1.0, rtol=1e-5)
    # what the trainer exposes and exports is the query encoder, not the momentum one
    enc_ids = {id(v) for v in t.encoder.trainable_variables}
    assert enc_ids <= {id(v) for v in t.method.trainable_variables}
    n_enc = len(t.encoder.trainable_variables)
    for w, q, k in zip(t.encoder.trainable_variables, weights(t)[:n_enc], momentum_weights(t)[:n_enc]):
        np.testing.assert_array_equal(w.numpy(), q)
        assert not np.array_equal(w.numpy(), k)


@pytest.fixture(scope="module")
def two_cpus():
    """A MirroredStrategy over the 2 logical CPUs (ReductionToOneDevice: see
    tests/methods/test_memory_bank.py::two_cpus for why not the collective ops)."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                          cross_device_ops=tf.distribute.ReductionToOneDevice())


@pytest.mark.parametrize("head_batch_norm", [False, True], ids=["mlp_head", "head_bn"])
def test_mirrored_two_replicas_match_one(tmp_path, digits, two_cpus, head_batch_norm):
    """Two steps, same global batches and seed: 2 replicas == 1 device in loss, query
    weights, momentum weights and queue (keys gathered in replica order), and every
    replica holds the same momentum weights and queue; with the head's synchronised
    batch norm too (the key network's included)."""
    images, _ = digits(N_IMAGES)
    cfg = small_cfg({**MOCO[0], "head_batch_norm": head_batch_norm}, MOCO[1], steps=2, steps_per_execution=1, batch_size=32, weight_decay=0.0, momentum=0.0,
                    log_every=2)
    one = trainer(cfg, tmp_path / "one", tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = trainer(cfg, tmp_path / "two", two_cpus)
    assert two.strategy.num_replicas_in_sync == 2
    for w1, w2 in zip(one.method.trainable_weights, two.method.trainable_weights):
        w2.assign(w1)
    for k1, k2 in zip(one.method.momentum_encoder.weights, two.method.momentum_encoder.weights):
        k2.assign(k1)
    np.testing.assert_array_equal(queue_state(one)[0], queue_state(two)[0])
    s1, s2 = one.train(images), two.train(images)
    assert np.isclose(s1["final"]["loss"], s2["final"]["loss"], rtol=1e-5)
    for k in ("queue_acc", "pos_sim"):
        assert np.isclose(s1["final"][k], s2["final"][k], rtol=1e-4, atol=1e-6), k
    for a, b in zip(weights(one), weights(two)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for a, b in zip(momentum_weights(one), momentum_weights(two)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    (q1, p1), (q2, p2) = queue_state(one), queue_state(two)
    assert p1 == p2 == 64 % QUEUE
    np.testing.assert_allclose(q1, q2, rtol=1e-4, atol=1e-5)
    for var in [two.method.queue.keys, two.method.queue.pointer, *two.method.momentum_encoder.weights]:
        first, second = (v.numpy() for v in var.values)
        np.testing.assert_array_equal(first, second)                       # identical on every replica


def test_resume_restores_weights_momentum_weights_and_queue(tmp_path, digits):
    """Stopped after the step-4 checkpoint and restarted: the run ends with the weights,
    momentum weights, queue and pointer of the uninterrupted run, bit for bit."""
    images, _ = digits(N_IMAGES)
    cfg = partial(small_cfg, *MOCO, checkpoint_every=4, log_every=4)
    straight = trainer(cfg(steps=8), tmp_path / "a")
    straight.train(images)
    first = trainer(cfg(steps=8), tmp_path / "b")
    first.cfg = cfg(steps=4)
    first.train(images)
    assert first.manager.latest_checkpoint.endswith("-4")
    at_stop = momentum_weights(first), queue_state(first)
    second = trainer(cfg(steps=8), tmp_path / "b")
    assert not np.array_equal(queue_state(second)[0], at_stop[1][0])      # a fresh queue until restored
    s = second.train(images)
    assert s["start_step"] == 4 and int(second.step.numpy()) == 8
    for a, b in zip(weights(straight), weights(second)):
        np.testing.assert_array_equal(a, b)
    for a, b, c in zip(momentum_weights(straight), momentum_weights(second), at_stop[0]):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(b, c)                                    # the resumed steps moved it
    (qa, pa), (qb, pb) = queue_state(straight), queue_state(second)
    assert pa == pb == (8 * 16) % QUEUE
    np.testing.assert_array_equal(qa, qb)
    names = [n for n, _ in tf.train.list_variables(second.manager.latest_checkpoint)]
    assert any(n.startswith("method/momentum_encoder/weights/") for n in names)
    assert any(n.startswith("method/queue/keys") for n in names)
    assert any(n.startswith("method/queue/pointer") for n in names)
