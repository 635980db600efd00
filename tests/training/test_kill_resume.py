"""kill -9 (or SIGTERM, a preemption notice) during pretraining, then the same
command: the run ends where the uninterrupted run ends, bit for bit, having lost at
most one checkpoint interval (SIGTERM: no step). Real subprocesses of
``python -m keras_ssl.train``, dropout 0.5 in the head (its random state must come
back from the checkpoint too)."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from support import ROOT, SUBPROCESS_ENV

STEPS, EVERY = 400, 20

CONFIG = {
    "name": "kill_resume", "seed": 4,
    "encoder": {"name": "convnet", "filters": [4, 8], "output": "gap"},
    "pretext": {"name": "egomotion", "max_shift_px": 2, "max_rotation_deg": 10, "rotation_bins": 4},
    "method": {"name": "classify", "hidden": 32, "dropout": 0.5},
    "data": {"max_pretrain_images": 512, "validation_images": 0},
    "train": {"steps": STEPS, "batch_size": 16, "steps_per_execution": 5, "checkpoint_every": EVERY,
              "log_every": 20, "sample_examples": 0, "learning_rate": 0.05},
}


def command(cfg_path, run_dir):
    return [sys.executable, "-m", "keras_ssl.train", "--config", str(cfg_path), "--run-dir", str(run_dir),
            "--skip-eval", "--skip-export", "--no-progress"]


def latest_step(run_dir):
    ckpt = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    return int(ckpt.rsplit("-", 1)[1]) if ckpt else 0


def encoder_weights(run_dir):
    import keras

    import keras_ssl.encoders  # noqa: F401  (registers the custom layers)
    return [w.numpy() for w in keras.models.load_model(run_dir / "encoder.keras").weights]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """(config path, run directory) of the uninterrupted run."""
    tmp = tmp_path_factory.mktemp("straight")
    cfg_path = tmp / "kill_resume.json"
    cfg_path.write_text(json.dumps(CONFIG))
    p = subprocess.run(command(cfg_path, tmp / "run"), cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return cfg_path, tmp / "run"


def interrupt(cfg_path, run_dir, signum):
    """Start the command, send ``signum`` once it has written its second checkpoint;
    returns (exit code, stderr)."""
    proc = subprocess.Popen(command(cfg_path, run_dir), cwd=ROOT, env=SUBPROCESS_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while latest_step(run_dir) < 2 * EVERY:          # mid-run, after a checkpoint
            assert proc.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


def resume_and_compare(cfg_path, run_dir, straight_dir, start):
    p = subprocess.run(command(cfg_path, run_dir), cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pretrain"]["start_step"] == start          # resumed from the last checkpoint
    for a, b in zip(encoder_weights(straight_dir), encoder_weights(run_dir)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_the_same_command(straight, tmp_path):
    cfg_path, straight_dir = straight
    killed = tmp_path / "killed"
    code, _ = interrupt(cfg_path, killed, signal.SIGKILL)
    assert code == -signal.SIGKILL
    at_kill = latest_step(killed)
    assert 2 * EVERY <= at_kill < STEPS and not (killed / "encoder.keras").exists()
    resume_and_compare(cfg_path, killed, straight_dir, at_kill)


@pytest.mark.slow
def test_sigterm_saves_at_the_next_step_and_says_how_to_resume(straight, tmp_path):
    cfg_path, straight_dir = straight
    stopped = tmp_path / "stopped"
    code, err = interrupt(cfg_path, stopped, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, err[-3000:]
    at_stop = latest_step(stopped)
    assert f"stopped by SIGTERM at step {at_stop}" in err and "run the same command again" in err
    assert 2 * EVERY <= at_stop < STEPS
    resume_and_compare(cfg_path, stopped, straight_dir, at_stop)
