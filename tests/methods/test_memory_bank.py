"""Memory bank, NPID and PIRL: bank updates, replica equivalence on two
logical CPUs, resume with the bank, PIRL training and logging."""
import subprocess
import sys
from functools import partial

import numpy as np
import pytest
import tensorflow as tf

import support
from keras_ssl.methods.memory_bank import MemoryBank, dedupe_mean, momentum_update
from keras_ssl.training.errors import TrainingError
from support import ROOT, weights

N_IMAGES = 48

NPID = ({"name": "npid", "negatives": 32}, {"name": "augment"})
PIRL_ROTATION = ({"name": "pirl", "negatives": 32}, {"name": "pirl", "transform": "rotation"})

#: small_cfg(method, pretext, **train) and trainer(cfg, run_dir, strategy=None, num_images=48).
small_cfg = partial(support.small_cfg, seed=5)
trainer = partial(support.trainer, num_images=N_IMAGES)


def bank(t):
    return t.method.bank.entries.numpy().copy()


# -- the bank itself -----------------------------------------------------------

def test_momentum_update_is_normalised_mean():
    old = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    new = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    out = momentum_update(old, new, 0.5).numpy()
    np.testing.assert_allclose(out[0], [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    np.testing.assert_allclose(out[1], [0.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(momentum_update(old, new, 1.0), old)       # momentum 1: frozen
    np.testing.assert_allclose(momentum_update(old, new, 0.0), new)       # momentum 0: replaced


def test_duplicate_indices_get_their_mean():
    uniq, mean = dedupe_mean(tf.constant([3, 1, 3], tf.int64),
                             tf.constant([[1.0, 0.0], [5.0, 5.0], [0.0, 1.0]]))
    assert uniq.numpy().tolist() == [3, 1]
    np.testing.assert_allclose(mean.numpy(), [[0.5, 0.5], [5.0, 5.0]])


def test_bank_update_touches_only_the_batch_rows():
    b = MemoryBank(10, 4, momentum=0.5, seed=1)
    before = b.entries.numpy().copy()
    np.testing.assert_allclose(np.linalg.norm(before, axis=1), 1.0, rtol=1e-6)
    emb = tf.math.l2_normalize(tf.ones([3, 4]), axis=1)
    b.update(tf.constant([2, 7, 2], tf.int64), emb)
    after = b.entries.numpy()
    changed = np.flatnonzero(np.any(before != after, axis=1)).tolist()
    assert changed == [2, 7]
    np.testing.assert_allclose(after[7], momentum_update(before[7:8], emb[:1], 0.5)[0], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, rtol=1e-6)
    idx, neg = b.sample(100, tf.constant([0, 9]))
    assert idx.shape == (10,) and neg.shape == (10, 4)                    # K capped by N
    np.testing.assert_array_equal(idx, b.sample(100, tf.constant([0, 9]))[0])   # stateless


def test_zero_initialised_bank_takes_the_first_embedding_as_is():
    b = MemoryBank(6, 3, momentum=0.5, init="zeros")
    emb = tf.math.l2_normalize(tf.constant([[1.0, 2.0, 2.0]]), axis=1)
    b.update(tf.constant([4], tf.int64), emb)
    np.testing.assert_allclose(b.entries.numpy()[4], emb[0], rtol=1e-6)
    assert not np.any(b.entries.numpy()[:4])


def test_builder_needs_the_number_of_images(tmp_path):
    with pytest.raises(ValueError, match="num_images"):
        trainer(small_cfg(*NPID), tmp_path, num_images=None)


# -- training ---------------------------------------------------------------

@pytest.fixture(scope="module")
def two_cpus():
    """One MirroredStrategy over the 2 logical CPUs for the whole module.

    Its cross-device ops are ReductionToOneDevice rather than the default
    collective ops: every MirroredStrategy of a process numbers its collective
    groups and instances from the same start, so two strategies running
    collectives in one test session collide ("Shape mismatch in the collective
    instance 100"; test_trainer.py has one). The all_gather and all_reduce under
    test are the same calls either way."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                          cross_device_ops=tf.distribute.ReductionToOneDevice())


NPID_BN = ({**NPID[0], "head_batch_norm": True}, NPID[1])


@pytest.mark.parametrize("method,pretext", [NPID, PIRL_ROTATION, NPID_BN],
                         ids=["npid", "pirl_rotation", "npid_head_bn"])
def test_mirrored_two_replicas_match_one(tmp_path, digits, two_cpus, method, pretext):
    """One step, same global batch and seed: 2 replicas (logical CPUs) == 1 device:
    same loss, same gradients (SGD's first step moves each weight by lr * grad),
    same bank on every replica."""
    check_replicas_match_one(tmp_path, digits(N_IMAGES)[0], two_cpus, method, pretext)


@pytest.mark.slow
def test_mirrored_default_collectives_match_one(tmp_path):
    """The same check with MirroredStrategy's default (collective) cross-device
    ops, in a fresh process (see ``two_cpus`` for why not in this one)."""
    code = (
        "import sys; sys.path[:0] = ['tests', 'tests/methods', '.']\n"
        "import conftest, tensorflow as tf, pathlib, test_memory_bank as T\n"
        "s = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])\n"
        "images = conftest.synthetic_digits(T.N_IMAGES)[0]\n"
        "for i, (m, p) in enumerate([T.NPID, T.PIRL_ROTATION]):\n"
        f"    T.check_replicas_match_one(pathlib.Path(r'{tmp_path}') / str(i), images, s, m, p)\n"
        "print('ok')\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr[-3000:]


def check_replicas_match_one(tmp_path, images, strategy, method, pretext):
    cfg = small_cfg(method, pretext, steps=1, steps_per_execution=1, batch_size=32,
                    weight_decay=0.0, momentum=0.0)
    one = trainer(cfg, tmp_path / "one", tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = trainer(cfg, tmp_path / "two", strategy)
    assert two.strategy.num_replicas_in_sync == 2
    for w1, w2 in zip(one.method.trainable_weights, two.method.trainable_weights):
        w2.assign(w1)
    w0, b0 = weights(one), bank(one)
    np.testing.assert_array_equal(b0, bank(two))
    s1, s2 = one.train(images), two.train(images)
    assert np.isclose(s1["final"]["loss"], s2["final"]["loss"], rtol=1e-5)
    for k in s1["final"]:
        if k.endswith(("_inst_acc", "_pos_sim")):
            assert np.isclose(s1["final"][k], s2["final"][k], rtol=1e-4, atol=1e-6), k
    lr = cfg.train.learning_rate
    for a0, a, b in zip(w0, weights(one), weights(two)):
        g1, g2 = (a0 - a) / lr, (a0 - b) / lr
        np.testing.assert_allclose(g1, g2, rtol=1e-3, atol=1e-5 * max(1.0, np.abs(g1).max()))
    b1 = bank(one)
    assert np.sum(np.any(b1 != b0, axis=1)) > 10                           # the step wrote the bank
    replicas = [v.numpy() for v in two.method.bank.entries.values]
    np.testing.assert_array_equal(replicas[0], replicas[1])                # identical on every replica
    np.testing.assert_allclose(replicas[0], b1, rtol=1e-5, atol=1e-6)      # == the one-device bank


def test_resume_keeps_the_bank(tmp_path, digits):
    images, _ = digits(N_IMAGES)
    cfg = small_cfg(*NPID)
    straight = trainer(cfg, tmp_path / "a")
    straight.train(images)
    first = trainer(cfg, tmp_path / "b")
    first.cfg = small_cfg(*NPID, steps=2)
    first.train(images)
    saved = bank(first)
    # A fresh process-equivalent: new trainer, same run dir -> restores the step-2 bank.
    restored = trainer(cfg, tmp_path / "b")
    assert not np.array_equal(bank(restored), saved)
    assert restored.restore() == 2
    np.testing.assert_array_equal(bank(restored), saved)
    s = restored.train(images)
    assert s["start_step"] == 2
    np.testing.assert_array_equal(bank(restored), bank(straight))       # exact resume
    for a, b in zip(weights(straight), weights(restored)):
        np.testing.assert_array_equal(a, b)
    names = [n for n, _ in tf.train.list_variables(restored.manager.latest_checkpoint)]
    assert any(n.startswith("method/bank/entries") for n in names)
    with pytest.raises(TrainingError, match="built for 48 images"):
        restored.train(images[:40])


def test_pirl_jigsaw_trains_and_logs(tmp_path, digits):
    images, _ = digits(N_IMAGES)
    cfg = small_cfg({"name": "pirl", "negatives": 16}, {"name": "pirl"}, steps=1, batch_size=4,
                    steps_per_execution=1)
    t = trainer(cfg, tmp_path)
    net = t.method.network
    assert set(net.output) == {"image", "transformed"}
    s = t.train(images)
    assert np.isfinite(s["final"]["loss"])
    assert {"image_inst_acc", "transformed_inst_acc", "image_pos_sim"} <= set(s["final"])
