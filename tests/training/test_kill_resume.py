"""kill -9 during pretraining, then the same command: the run ends where the
uninterrupted run ends, bit for bit, having lost at most one checkpoint interval.
Real subprocesses of ``python -m keras_ssl.train``, dropout 0.5 in the head (its
random state must come back from the checkpoint too)."""
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


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_the_same_command(tmp_path):
    cfg_path = tmp_path / "kill_resume.json"
    cfg_path.write_text(json.dumps(CONFIG))
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    p = subprocess.run(command(cfg_path, straight), cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]

    proc = subprocess.Popen(command(cfg_path, killed), cwd=ROOT, env=SUBPROCESS_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while latest_step(killed) < 2 * EVERY:          # killed mid-run, after a checkpoint
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    at_kill = latest_step(killed)
    assert 2 * EVERY <= at_kill < STEPS and not (killed / "encoder.keras").exists()

    p = subprocess.run(command(cfg_path, killed), cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["pretrain"]["start_step"] == at_kill          # resumed from the last checkpoint
    for a, b in zip(encoder_weights(straight), encoder_weights(killed)):
        np.testing.assert_array_equal(a, b)
