"""Memory bank, NPID and PIRL: bank updates, replica equivalence on two
logical CPUs, resume with the bank, samplers, the kNN monitor, smoke runs."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import config_from_dict, load_config
from keras_ssl.methods.memory_bank import MemoryBank, dedupe_mean, momentum_update
from keras_ssl.training.errors import TrainingError
from keras_ssl.training.loop import Pretrainer

from support import ROOT  # noqa: E402
N_IMAGES = 48

NPID = ({"name": "npid", "negatives": 32}, {"name": "augment"})
PIRL_ROTATION = ({"name": "pirl", "negatives": 32}, {"name": "pirl", "transform": "rotation"})


def small_cfg(method, pretext, **train):
    return config_from_dict({
        "name": "t", "seed": 5,
        "encoder": {"name": "convnet", "filters": [4, 8], "output": "gap"},
        "pretext": pretext, "method": method,
        "train": {"steps": 4, "batch_size": 16, "steps_per_execution": 2, "checkpoint_every": 2,
                  "log_every": 2, "sample_examples": 2, "learning_rate": 0.1, **train},
    })


def trainer(cfg, run_dir, strategy=None, num_images=N_IMAGES):
    pre = registry.build("pretext", cfg.pretext, (28, 28, 1))
    return Pretrainer(cfg, run_dir, pre, strategy=strategy, progress=False, num_images=num_images)


def weights(t):
    return [w.numpy().copy() for w in t.method.trainable_weights]


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


def test_samplers_emit_index_and_batch_seed():
    images = tf.random.stateless_uniform([4, 28, 28, 1], [0, 1])
    index = tf.constant([5, 9, 5, 0], tf.int64)
    for pretext_cfg, views in [(NPID[1], ("image",)),
                               (PIRL_ROTATION[1], ("image", "t_image")),
                               ({"name": "pirl"}, ("image",) + tuple(f"t_tile{j}" for j in range(9)))]:
        cfg = small_cfg(NPID[0], pretext_cfg)
        pre = registry.build("pretext", cfg.pretext, (28, 28, 1))
        v, lab = pre(images, index, tf.constant([3, 4], tf.int32))
        assert pre.view_names == views and tuple(v) == views
        assert all(v[k].shape == (4, 28, 28, 1) for k in views)
        assert lab["index"].numpy().tolist() == [5, 9, 5, 0]
        assert lab["seed"].shape == (4, 2) and len({tuple(r) for r in lab["seed"].numpy()}) == 1
        v2, _ = pre(images, index, tf.constant([3, 4], tf.int32))
        np.testing.assert_array_equal(v["image"], v2["image"])            # stateless
        assert not np.allclose(v["image"], images)                         # augmented


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
    np.testing.assert_allclose(bank(restored), bank(straight), rtol=1e-4, atol=1e-5)
    for a, b in zip(weights(straight), weights(restored)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
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


def test_pirl_transform_takes_the_jigsaw_settings(tmp_path):
    from keras_ssl.config import ConfigError
    cfg = small_cfg({"name": "pirl"}, {"name": "pirl", "transform": {
        "name": "jigsaw", "grid": 2, "region_px": 20, "tile_px": 8, "permutations": 6,
        "permutation_seed": 3}})
    pre = registry.build("pretext", cfg.pretext, (28, 28, 1))
    assert pre.transformed_views == ("t_tile0", "t_tile1", "t_tile2", "t_tile3")
    assert pre.transform.perms.shape == (6, 4)
    pre.save(tmp_path)
    assert len(json.loads((tmp_path / "permutations.json").read_text())["permutations"]) == 6
    # The short form is the transform with its defaults; its settings are checked as usual.
    short = small_cfg({"name": "pirl"}, {"name": "pirl", "transform": "jigsaw"})
    assert short.pretext.params.transform.params.permutations == 100
    with pytest.raises(ConfigError, match=r"'pretext.transform.tiles'"):
        small_cfg({"name": "pirl"}, {"name": "pirl", "transform": {"name": "jigsaw", "tiles": 4}})
    with pytest.raises(ConfigError, match="transform must be one of"):
        small_cfg({"name": "pirl"}, {"name": "pirl", "transform": "egomotion"})


# -- kNN monitor (every method) ---------------------------------------------

def test_knn_monitor_logs_during_pretraining(tmp_path, digits):
    from keras_ssl.data import ImageSet
    from keras_ssl.training.job import knn_monitor

    images, labels = digits(1200)      # 1,000 labeled voters + 100 validation images
    cfg = config_from_dict({
        "name": "m", "seed": 1, "encoder": {"name": "convnet", "filters": [4], "output": "gap"},
        "pretext": {"name": "rotation"}, "method": {"name": "classify", "hidden": 8, "dropout": 0.0},
        "data": {"validation_images": 100},
        "train": {"steps": 4, "batch_size": 8, "steps_per_execution": 2, "monitor_every": 2,
                  "sample_examples": 0}})
    monitor = knn_monitor(cfg, ImageSet(images, labels))
    t = trainer(cfg, tmp_path, num_images=None)
    s = t.train(images, monitor=monitor)
    assert [m["step"] for m in s["monitor"]] == [2, 4]
    assert all(0.0 <= m["knn_val"] <= 1.0 for m in s["monitor"])
    tags = set()
    for f in (tmp_path / "tb" / "pretrain").glob("events.out.tfevents.*"):
        for e in tf.compat.v1.train.summary_iterator(str(f)):
            tags |= {v.tag for v in e.summary.value}
    assert "knn_val" in tags


# -- configs ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["mnist_npid", "mnist_pirl"])
def test_configs_parse(name):
    cfg = load_config(ROOT / "configs" / f"{name}.json")
    assert cfg.method.name == name.split("_")[1] and cfg.train.monitor_every > 0
    assert cfg.method.params.temperature == 0.07 and cfg.method.params.momentum == 0.5
    assert cfg.method.params.embedding == 128 and cfg.method.params.negatives == 4096
    smoke = load_config(ROOT / "configs" / f"{name}.json", smoke=True)
    assert smoke.train.steps <= 8


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist_npid", "mnist_pirl"])
def test_config_smoke_end_to_end(tmp_path, name):
    run_dir = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "keras_ssl.train", "--config", f"configs/{name}.json",
                        "--smoke", "--run-dir", str(run_dir), "--no-progress"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((run_dir / "results.json").read_text())
    assert ("frozen_mlp", 20) in {(r["protocol"], r["labels"]) for r in res["rows"]}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pretrain"]["monitor"][-1]["knn_val"] >= 0.0
    assert list((run_dir / "export").glob("*/*/saved_model.pb"))
    names = [n for n, _ in tf.train.list_variables(str(run_dir / "checkpoints"))]
    assert any(n.startswith("method/bank/entries") for n in names)
