"""The main command end to end (smoke), as a user runs it: python -m keras_ssl.train
(and keras_ssl.bench). The main config's --smoke run here is its only one in the
suite (tests/test_configs_smoke.py runs every other config's)."""
import json
import subprocess
import sys

import pytest

from keras_ssl.config import load_config
from support import ROOT, check_smoke_run


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def train_in_process(capsys, *args):
    """``python -m keras_ssl.train ARGS`` run in this process: (exit code, stderr). The
    run directory is the whole state between commands, so the commands after a real
    first one need no fresh interpreter (each would cost ~4 s of start-up)."""
    from keras_ssl.train import main

    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


def test_main_config_smoke_end_to_end(tmp_path, capsys):
    run_dir = tmp_path / "run"
    again = ("--config", str(ROOT / "configs/mnist_egomotion.json"), "--smoke", "--run-dir", str(run_dir),
             "--no-progress")
    p = run_cli("keras_ssl.train", "--config", "configs/mnist_egomotion.json", "--smoke",
                "--run-dir", str(run_dir), "--no-progress")
    assert p.returncode == 0, p.stderr[-3000:]
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["train"]["steps"] == 8 and cfg["name"] == "mnist_egomotion"
    res = json.loads((run_dir / "results.json").read_text())
    protocols = {(r["protocol"], r["labels"]) for r in res["rows"]}
    assert ("frozen_mlp", 20) in protocols and ("scratch", 50) in protocols
    assert "thesis: egomotion" in (run_dir / "results.md").read_text()
    assert (run_dir / "encoder.keras").is_file()
    versions = list((run_dir / "export").glob("*/*/saved_model.pb"))
    assert len(versions) == 1
    assert list((run_dir / "tb" / "pretrain").glob("events.out.tfevents.*"))
    assert "frozen_mlp" in p.stdout
    check_smoke_run(load_config(ROOT / "configs/mnist_egomotion.json", smoke=True), run_dir)
    # The smoke run reproduces the figures its config's smoke section states (measured once).
    check = json.loads((run_dir / "summary.json").read_text())["expected_check"]
    assert check["ok"] is True and check["checked"] == 8 and check["unmeasured"] == 0, check
    assert "all 8 expected row(s) within tolerance" in p.stdout
    p_check = run_cli("keras_ssl.compare", str(run_dir), "--check")
    assert p_check.returncode == 0, p_check.stdout + p_check.stderr[-2000:]
    first_pretrain = json.loads((run_dir / "summary.json").read_text())["pretrain"]
    # Same command again: resumes (nothing left to train) and exports a new version.
    code, err = train_in_process(capsys, *again, "--skip-eval")
    assert code == 0, err[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pretrain"].get("resumed_finished") is True
    assert len(list((run_dir / "export").glob("*/*/saved_model.pb"))) == 2
    # Another evaluation of the finished run: allowed, nothing is pretrained again.
    code, err = train_in_process(capsys, *again, "--skip-export",
                                 "--set", "eval.scratch=false", "--set", "eval.knn=false")
    assert code == 0, err[-3000:]
    pre = json.loads((run_dir / "summary.json").read_text())["pretrain"]
    assert pre["resumed_finished"] is True
    # The pretraining facts survive the re-evaluation: those of the first run.
    assert pre["seconds"] == first_pretrain["seconds"] > 0 and pre["final"] == first_pretrain["final"]
    protocols = {r["protocol"] for r in json.loads((run_dir / "results.json").read_text())["rows"]}
    assert "frozen_mlp" in protocols and not protocols & {"scratch", "knn"}
    assert json.loads((run_dir / "config.json").read_text())["eval"]["scratch"] is False
    # A different pretraining config on the same checkpoints: refused, nothing overwritten.
    code, err = train_in_process(capsys, *again, "--set", "train.learning_rate=0.5")
    assert code == 2 and "differs in: train" in err, err[-3000:]
    assert json.loads((run_dir / "config.json").read_text())["train"]["learning_rate"] == 0.01


def test_bad_config_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"encoder": {"name": "bcnn"}, "pretext": {"name": "egomotion"},
                               "method": {"name": "classify"}, "train": {"batch_size": -1}}))
    p = run_cli("keras_ssl.train", "--config", str(bad), "--run-dir", str(tmp_path / "r"))
    assert p.returncode != 0
    assert "'train.batch_size' must be >= 1" in p.stderr and str(bad) in p.stderr
    assert "Traceback" not in p.stderr


def test_bench_prints_one_json_line():
    p = run_cli("keras_ssl.bench", "--config", "configs/mnist_egomotion.json", "--steps", "20",
                "--warmup", "10", "--repeats", "1", "--set", "train.steps_per_execution=10",
                "--set", "data.max_pretrain_images=256")
    assert p.returncode == 0, p.stderr[-3000:]
    line = json.loads(p.stdout.strip().splitlines()[-1])
    assert line["examples_per_s"] > 0 and line["examples_per_s_synthetic"] > 0
    assert 0 < line["pipeline_ratio"] < 10 and line["views"] == 2
    assert line["pipeline_alone_per_s"] > 0 and line["pipeline_cpu_ms_per_step"] > 0


def test_how_a_run_is_carried_out_may_change_what_it_learns_may_not(tmp_path):
    from keras_ssl.config import ConfigError
    from keras_ssl.training.run_dir import prepare_run_dir
    run_dir = tmp_path / "run"
    prepare_run_dir(run_dir, load_config(ROOT / "configs/mnist_egomotion.json"))
    (run_dir / "checkpoints").mkdir()
    # Threads making batches, logging and checkpoint cadence: the same batches and updates.
    prepare_run_dir(run_dir, load_config(ROOT / "configs/mnist_egomotion.json", {
        "train.pipeline_threads": 0, "train.log_every": 7, "train.checkpoint_every": 3}))
    assert json.loads((run_dir / "config.json").read_text())["train"]["pipeline_threads"] == 0
    with pytest.raises(ConfigError, match=r"differs in: train\b"):
        prepare_run_dir(run_dir, load_config(ROOT / "configs/mnist_egomotion.json", {"train.momentum": 0.5}))
    # The same settings under another config file's name (a selection's chosen variant written
    # out as its own config): the same checkpoints, so accepted, and the new name recorded.
    renamed = tmp_path / "mnist_egomotion_chosen.json"
    renamed.write_text((ROOT / "configs/mnist_egomotion.json").read_text())
    prepare_run_dir(run_dir, load_config(renamed))
    assert json.loads((run_dir / "config.json").read_text())["name"] == "mnist_egomotion_chosen"
    with pytest.raises(ConfigError, match=r"differs in: encoder\b"):
        prepare_run_dir(run_dir, load_config(renamed, {"encoder.features": "last"}))


def test_an_unwritable_run_directory_is_one_clear_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code, err = train_in_process(capsys, "--config", str(ROOT / "configs/mnist_rotation.json"), "--smoke",
                                 "--run-dir", str(blocker / "run"), "--no-progress")
    assert code == 2
    assert err.startswith("error: cannot write the run directory") and str(blocker) in err
    assert "Traceback" not in err
