"""keras_ssl.training.loop and .optimizer: the loss goes down, resume, non-finite loss,
schedules, two replicas equal one."""
from functools import partial

import numpy as np
import pytest
import tensorflow as tf

import support
from keras_ssl.training.errors import TrainingError
from keras_ssl.training.optimizer import LearningRate
from support import trainer, weights

#: Egomotion pairs, classified: the thesis's method on a small convnet.
small_cfg = partial(
    support.small_cfg,
    {"name": "classify", "hidden": 32, "dropout": 0.0, "init": "glorot"},
    {"name": "egomotion", "max_shift_px": 2, "max_rotation_deg": 10, "rotation_bins": 4},
    seed=3, encoder={"name": "convnet", "filters": [8, 16]},
    steps=8, checkpoint_every=4, learning_rate=0.05)


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


def dropout_cfg(dropout, **train):
    return support.small_cfg(
        {"name": "classify", "hidden": 32, "dropout": dropout, "init": "glorot"},
        {"name": "egomotion", "max_shift_px": 2, "max_rotation_deg": 10, "rotation_bins": 4},
        seed=3, encoder={"name": "convnet", "filters": [8, 16]},
        **{"steps": 8, "checkpoint_every": 4, "learning_rate": 0.05, **train})


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_resume_continues_where_it_stopped(tmp_path, digits, dropout):
    """Resumed from the step-4 checkpoint, the run ends where the uninterrupted one
    ends, bit for bit: with dropout too (its SeedGenerator state is checkpointed, so
    the resumed run draws the masks the uninterrupted run draws next)."""
    images, _ = digits(64)
    straight = trainer(dropout_cfg(dropout), tmp_path / "a")
    straight.train(images)
    # An "interrupted" run: same config and run dir, stopped after the step-4 checkpoint.
    first = trainer(dropout_cfg(dropout), tmp_path / "b")
    first.cfg = dropout_cfg(dropout, steps=4)
    first.train(images)
    assert first.manager.latest_checkpoint.endswith("-4")
    second = trainer(dropout_cfg(dropout), tmp_path / "b")
    s = second.train(images)
    assert s["start_step"] == 4 and int(second.step.numpy()) == 8
    for a, b in zip(weights(straight), weights(second)):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_holds_the_dropout_random_state(tmp_path, digits):
    """The checkpoint carries every SeedGenerator's state: restoring it brings back
    the state the run had reached, not the fresh one of a newly built model."""
    from keras_ssl.training.loop import random_states

    images, _ = digits(64)
    t = trainer(dropout_cfg(0.5, steps=4), tmp_path)
    fresh = [v.numpy().copy() for v in random_states(t.method)]
    assert fresh, "the classify head's Dropout has a SeedGenerator"
    t.train(images)
    reached = [v.numpy().copy() for v in random_states(t.method)]
    assert any((a != b).any() for a, b in zip(fresh, reached))   # training advanced the state
    again = trainer(dropout_cfg(0.5, steps=4), tmp_path)
    assert all((v.numpy() == a).all() for v, a in zip(random_states(again.method), fresh))
    again.restore()
    for v, a in zip(random_states(again.method), reached):
        np.testing.assert_array_equal(v.numpy(), a)


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


def test_due_fires_when_a_multiple_is_crossed_or_at_the_last_step():
    from keras_ssl.training.loop import due

    # steps run 25 at a time: the chunk ending at 100 or 101..124 crossed 100
    assert due(100, 25, 100, 1000) and due(101, 25, 100, 1000) and due(124, 25, 100, 1000)
    assert not due(99, 25, 100, 1000) and not due(125, 25, 100, 1000)
    assert due(7, 1, 100, 7)          # the last step always
    assert not due(6, 1, 100, 7)


def test_log_window_means_per_example_and_leaves_monitor_time_out(monkeypatch):
    from keras_ssl.training import loop

    clock = iter([0.0, 10.0])
    monkeypatch.setattr(loop.time, "perf_counter", lambda: next(clock))
    w = loop.LogWindow(batch_size=4)
    w.add({"loss": 8.0}, 1)
    w.add({"loss": 16.0}, 1)
    w.leave_out(2.0)                  # 2 s of monitoring inside the 10 s window
    out = w.close(learning_rate=0.1)
    assert out["loss"] == 24.0 / 8    # summed over 2 steps x 4 examples
    assert out["examples_per_s"] == 8 / 8.0
    assert out["learning_rate"] == 0.1


def test_sigterm_stops_at_the_step_boundary_with_a_checkpoint_there(tmp_path, digits):
    """A SIGTERM received mid-run (here sent by the monitor at step 2) saves a checkpoint
    at that step, although checkpoint_every is 4, and raises Interrupted; the handlers
    are put back afterwards."""
    import os
    import signal

    from keras_ssl.training.errors import Interrupted

    images, _ = digits(64)
    t = trainer(dropout_cfg(0.0, monitor_every=2, steps_per_execution=2), tmp_path)
    before = signal.getsignal(signal.SIGTERM)

    def monitor(encoder):
        os.kill(os.getpid(), signal.SIGTERM)
        return {"probe": 0.0}

    with pytest.raises(Interrupted) as info:
        t.train(images, monitor=monitor)
    assert info.value.step == 2 and info.value.exit_code == 128 + signal.SIGTERM
    assert t.manager.latest_checkpoint.endswith("-2")
    assert signal.getsignal(signal.SIGTERM) is before


def test_before_steps_hook_runs_before_every_chunk_where_the_method_says(tmp_path, digits):
    """Method.before_steps runs on the host before every chunk, with the steps done, the
    images and the run's seed; Method.steps_before_hook caps the chunk (here: chunks end
    at multiples of 3 although steps_per_execution is 4); the scalars it returns go to
    summary["hooks"] and TensorBoard, and the steps run are the same as without it."""
    images, _ = digits(32)
    cfg = small_cfg(steps=8, steps_per_execution=4, checkpoint_every=8, log_every=8)
    t = trainer(cfg, tmp_path / "hooked")
    calls = []

    def hook(step, context):
        calls.append((step, int(t.step.numpy()), context.images is images, context.seed))
        return {"hook/step": float(step)} if step % 3 == 0 else None

    t.method.steps_before_hook = lambda step: 3 - step % 3
    t.method.before_steps = hook
    s = t.train(images)
    assert [c[0] for c in calls] == [0, 3, 6]                  # chunks of 3, 3, 2 steps
    assert all(done == step and same and seed == cfg.seed for step, done, same, seed in calls)
    assert s["hooks"] == [{"step": k, "hook/step": float(k)} for k in (0, 3, 6)]
    tags = set()
    for f in (tmp_path / "hooked" / "tb" / "pretrain").glob("events.out.tfevents.*"):
        for e in tf.compat.v1.train.summary_iterator(str(f)):
            tags |= {v.tag for v in e.summary.value}
    assert "hook/step" in tags
    plain = trainer(cfg, tmp_path / "plain")
    plain.train(images)
    for a, b in zip(weights(plain), weights(t)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
