import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import config_from_dict
from keras_ssl.training.errors import TrainingError
from keras_ssl.training.loop import Pretrainer
from keras_ssl.training.optimizer import LearningRate

from support import ROOT  # noqa: E402


def small_cfg(**train):
    return config_from_dict({
        "name": "t", "seed": 3,
        "encoder": {"name": "convnet", "filters": [8, 16]},
        "pretext": {"name": "egomotion", "max_shift_px": 2, "max_rotation_deg": 10, "rotation_bins": 4},
        "method": {"name": "classify", "hidden": 32, "dropout": 0.0, "init": "glorot"},
        "train": {"steps": 8, "batch_size": 16, "steps_per_execution": 2, "checkpoint_every": 4,
                  "log_every": 2, "sample_examples": 2, "learning_rate": 0.05, **train},
    })


def trainer(cfg, run_dir, strategy=None):
    pre = registry.build("pretext", cfg.pretext, (28, 28, 1))
    return Pretrainer(cfg, run_dir, pre, strategy=strategy, progress=False)


def weights(t):
    return [w.numpy().copy() for w in t.method.trainable_weights]


def test_loss_goes_down_and_tensorboard_logs(tmp_path, digits):
    images, _ = digits(64)
    cfg = small_cfg(steps=40, learning_rate=0.05)
    t = trainer(cfg, tmp_path)
    s = t.train(images)
    assert s["final"]["loss"] < np.log(5) + np.log(5) + np.log(4)
    assert {"tx_acc", "ty_acc", "rz_acc", "examples_per_s", "learning_rate"} <= set(s["final"])
    tags = set()
    for f in (tmp_path / "tb" / "pretrain").glob("events.out.tfevents.*"):
        for e in tf.compat.v1.train.summary_iterator(str(f)):
            tags |= {v.tag for v in e.summary.value}
    assert {"loss", "tx_acc", "learning_rate", "examples_per_s"} <= tags
    assert any(t.startswith("pretext_samples") for t in tags)


def test_resume_continues_where_it_stopped(tmp_path, digits):
    images, _ = digits(64)
    straight = trainer(small_cfg(), tmp_path / "a")
    straight.train(images)
    # An "interrupted" run: same config and run dir, stopped after the step-4 checkpoint.
    first = trainer(small_cfg(), tmp_path / "b")
    first.cfg = small_cfg(steps=4)
    first.train(images)
    assert first.manager.latest_checkpoint.endswith("-4")
    second = trainer(small_cfg(), tmp_path / "b")
    s = second.train(images)
    assert s["start_step"] == 4 and int(second.step.numpy()) == 8
    for a, b in zip(weights(straight), weights(second)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_non_finite_loss_stops_with_message(tmp_path, digits):
    images, _ = digits(32)
    t = trainer(small_cfg(learning_rate=1e12, steps=20), tmp_path)
    with pytest.raises(TrainingError, match="lower train.learning_rate"):
        t.train(images)


def test_step_schedule_halves():
    lr = LearningRate(0.01, "step", 100, decay_steps=10, factor=0.5)
    assert np.isclose(float(lr(0)), 0.01) and np.isclose(float(lr(10)), 0.005)
    assert np.isclose(float(lr(25)), 0.0025)
    cos = LearningRate(1.0, "cosine", 100, warmup=10)
    assert float(cos(0)) < 0.2 and np.isclose(float(cos(100)), 0.0, atol=1e-6)


def test_mirrored_two_replicas_match_one(tmp_path, digits):
    """Same global batch and seed: 2 replicas (logical CPUs) == 1 device, one step."""
    images, _ = digits(64)
    cfg = small_cfg(steps=2, steps_per_execution=1)
    one = trainer(cfg, tmp_path / "one", tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = trainer(cfg, tmp_path / "two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    assert two.strategy.num_replicas_in_sync == 2
    for w1, w2 in zip(one.method.trainable_weights, two.method.trainable_weights):
        w2.assign(w1)
    s1, s2 = one.train(images), two.train(images)
    assert np.isclose(s1["final"]["loss"], s2["final"]["loss"], rtol=1e-4)
    for a, b in zip(weights(one), weights(two)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
