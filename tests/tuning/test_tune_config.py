"""Tune configs (keras_ssl.tuning.config): bad ones stop before any trial, naming the
key and the file; the shipped one loads, with and without --smoke."""
import pytest

from keras_ssl.config import ConfigError
from keras_ssl.tuning.cli import main
from keras_ssl.tuning.config import load_tune_config

from tune_support import TUNE, tune_file


# --------------------------------------------------------------------------
# Bad tune configs stop before any trial, naming the key and the file
# --------------------------------------------------------------------------

def assert_refused(path, fragments):
    """load_tune_config refuses ``path`` with a message naming the file and every fragment."""
    with pytest.raises(ConfigError) as e:
        load_tune_config(path)
    msg = str(e.value)
    assert str(path) in msg
    for f in fragments:
        assert f in msg, msg


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
    assert_refused(path, fragments)


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
    assert_refused(path, fragments)


def test_cli_bad_space_exits_before_any_trial(tmp_path, monkeypatch, capsys):
    from keras_ssl.training import job as train  # what a trial runs

    def no_trial(*a, **k):
        raise AssertionError("a trial ran")
    monkeypatch.setattr(train, "run", no_trial)
    path = tune_file(tmp_path, space={"train.weight_decay": {"type": "float", "min": 0, "max": 1,
                                                             "log": True}})
    rc = main(["--config", str(path), "--run-dir", str(tmp_path / "run"), "--smoke"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "space.train.weight_decay" in err and str(path) in err
    assert not (tmp_path / "run").exists()


def test_cli_distributed_flags_are_checked(tmp_path, capsys):
    path = tune_file(tmp_path)
    assert main(["--config", str(path), "--chief"]) == 2
    assert "--oracle-address" in capsys.readouterr().err
    assert main(["--config", str(path), "--worker", "w0", "--oracle-address", "nohost"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert main(["--config", str(path), "--worker", "chief2",
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


def test_cli_sweep_directory_that_cannot_be_made_is_one_line(tmp_path, capsys):
    """--run-dir under a file: one line naming the path and the reason, exit code 2."""
    path = tune_file(tmp_path)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the sweep should go")
    run = blocked / "sweep"
    rc = main(["--config", str(path), "--run-dir", str(run), "--smoke", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: cannot write ") and "Not a directory" in err, err
    assert err.endswith(f"run the same command to resume the sweep in {run}\n"), err
