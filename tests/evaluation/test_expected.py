"""Expected results as data (keras_ssl/evaluation/expected.py) and ``compare --check``:
hand-written run directories (config.json + results.json), no training."""
import json

import pytest

from keras_ssl.config import ConfigError, config_from_dict
from keras_ssl.evaluation import compare as C
from keras_ssl.evaluation.expected import Expected, ExpectedRow, check_run, parse_expected

SOURCE = "python -m keras_ssl.train --config configs/mnist_egomotion.json, 2026-12-02"
EXPECTED = {"source": SOURCE,
            "rows": {"frozen_mlp": {"100": 0.858, "10000": [0.978, 0.005]}, "scratch": {"100": 0.777}}}


def results(measured: dict, split=None) -> dict:
    """A results.json document: ``measured`` = {(protocol, labels): mean}, three seeds each."""
    doc = {"rows": [{"method": p, "protocol": p, "labels": n, "mean": m, "std": 0.01,
                     "values": [m - 0.01, m, m + 0.01]} for (p, n), m in measured.items()],
           "protocol": {"seeds": [0, 1, 2]}}
    if split is not None:
        doc["split"] = split
    return doc


GOOD = {("frozen_mlp", 100): 0.861, ("frozen_mlp", 10000): 0.975, ("scratch", 100): 0.79}


def test_parse_defaults_and_row_tolerance():
    exp = parse_expected(EXPECTED, "cfg.json")
    assert exp == Expected(source=SOURCE, split="test", tolerance=0.02, rows=(
        ExpectedRow("frozen_mlp", 100, 0.858, 0.02), ExpectedRow("frozen_mlp", 10000, 0.978, 0.005),
        ExpectedRow("scratch", 100, 0.777, 0.02)))
    other = parse_expected({**EXPECTED, "split": "validation", "tolerance": 0.1,
                            "rows": {"linear:conv2": {"300": 1}}}, "cfg.json")
    assert other.split == "validation" and other.rows == (ExpectedRow("linear:conv2", 300, 1.0, 0.1),)


def test_a_passing_run():
    assert check_run(parse_expected(EXPECTED, "x"), results(GOOD)) == []
    assert check_run(parse_expected(EXPECTED, "x"), results(GOOD, split="test")) == []


def test_a_failing_row_is_named_exactly():
    failures = check_run(parse_expected(EXPECTED, "x"), results({**GOOD, ("frozen_mlp", 100): 0.8123}))
    assert failures == ["frozen_mlp, 100 labels: measured 0.8123 over 3 seeds, expected 0.858 ± 0.02 "
                        "(off by -0.0457)"]


def test_the_row_tolerance_overrides_the_default():
    exp = parse_expected(EXPECTED, "x")
    # 0.97 is within the default 0.02 of 0.978 but not within the row's own 0.005
    failures = check_run(exp, results({**GOOD, ("frozen_mlp", 10000): 0.97}))
    assert failures == ["frozen_mlp, 10000 labels: measured 0.9700 over 3 seeds, expected 0.978 ± 0.005 "
                        "(off by -0.0080)"]
    # and at the edge of a tolerance, float rounding does not fail the row (0.858 + 0.02)
    assert check_run(exp, results({**GOOD, ("frozen_mlp", 100): 0.878})) == []
    loose = parse_expected({**EXPECTED, "tolerance": 0.1}, "x")
    assert check_run(loose, results({**GOOD, ("frozen_mlp", 100): 0.8, ("scratch", 100): 0.7})) == []


def test_a_split_mismatch_fails_naming_both():
    exp = parse_expected({**EXPECTED, "split": "validation"}, "x")
    [line] = check_run(exp, results(GOOD))                  # no "split": the test split
    assert "'test'" in line and "'validation'" in line and line.startswith("split:")
    [line] = check_run(parse_expected(EXPECTED, "x"), results(GOOD, split="validation"))
    assert "scored on the 'validation' split, expected on 'test'" in line


def test_a_missing_row_is_a_failure():
    measured = {k: v for k, v in GOOD.items() if k != ("scratch", 100)}
    assert check_run(parse_expected(EXPECTED, "x"), results(measured)) == [
        "scratch, 100 labels: not measured (expected 0.777 ± 0.02)"]


@pytest.mark.parametrize("raw, key", [
    ({**EXPECTED, "tolerence": 0.1}, "expected.tolerence"),                       # unknown key
    ({"rows": EXPECTED["rows"]}, "expected.source"),                              # missing source
    ({**EXPECTED, "source": ""}, "expected.source"),
    ({**EXPECTED, "split": "val"}, "expected.split"),
    ({**EXPECTED, "tolerance": 0}, "expected.tolerance"),
    ({**EXPECTED, "tolerance": -0.1}, "expected.tolerance"),
    ({"source": SOURCE}, "expected.rows"),                                        # missing rows
    ({**EXPECTED, "rows": {}}, "expected.rows"),
    ({**EXPECTED, "rows": {"frozen-mlp": {"100": 0.8}}}, "expected.rows.frozen-mlp"),   # not a protocol
    ({**EXPECTED, "rows": {"linear:": {"100": 0.8}}}, "expected.rows.linear:"),
    ({**EXPECTED, "rows": {"knn": 0.8}}, "expected.rows.knn"),
    ({**EXPECTED, "rows": {"frozen_mlp": {"100": "high"}}}, "expected.rows.frozen_mlp.100"),   # non-numeric
    ({**EXPECTED, "rows": {"frozen_mlp": {"100": True}}}, "expected.rows.frozen_mlp.100"),
    ({**EXPECTED, "rows": {"frozen_mlp": {"100": None}}}, "expected.rows.frozen_mlp.100"),
    ({**EXPECTED, "rows": {"frozen_mlp": {"100": 1.5}}}, "expected.rows.frozen_mlp.100"),      # outside [0, 1]
    ({**EXPECTED, "rows": {"frozen_mlp": {"100": -0.1}}}, "expected.rows.frozen_mlp.100"),
    ({**EXPECTED, "rows": {"frozen_mlp": {"100": [1.2, 0.01]}}}, "expected.rows.frozen_mlp.100[0]"),
    ({**EXPECTED, "rows": {"frozen_mlp": {"100": [0.8, 0]}}}, "expected.rows.frozen_mlp.100[1]"),  # tolerance
    ({**EXPECTED, "rows": {"frozen_mlp": {"100": [0.8, -1]}}}, "expected.rows.frozen_mlp.100[1]"),
    ({**EXPECTED, "rows": {"frozen_mlp": {"100": [0.8]}}}, "expected.rows.frozen_mlp.100"),
    ({**EXPECTED, "rows": {"frozen_mlp": {"0": 0.8}}}, "expected.rows.frozen_mlp.0"),          # label counts
    ({**EXPECTED, "rows": {"frozen_mlp": {"-5": 0.8}}}, "expected.rows.frozen_mlp.-5"),
    ({**EXPECTED, "rows": {"frozen_mlp": {"10.5": 0.8}}}, "expected.rows.frozen_mlp.10.5"),
    ({**EXPECTED, "rows": {"frozen_mlp": {"1e2": 0.8}}}, "expected.rows.frozen_mlp.1e2"),
    ({**EXPECTED, "rows": {"frozen_mlp": {"many": 0.8}}}, "expected.rows.frozen_mlp.many"),
])
def test_each_parse_error_names_its_key_and_where(raw, key):
    with pytest.raises(ConfigError) as e:
        parse_expected(raw, "configs/x.json")
    assert f"'{key}'" in str(e.value) and str(e.value).startswith("configs/x.json: ")


def test_a_config_with_a_malformed_expected_does_not_load():
    base = {"name": "x", "encoder": {"name": "bcnn"}, "pretext": {"name": "egomotion"},
            "method": {"name": "classify"}}
    assert config_from_dict({**base, "expected": EXPECTED}, "configs/x.json").expected == EXPECTED
    assert config_from_dict(base, "configs/x.json").expected == {}          # none: nothing checked
    bad = {**EXPECTED, "rows": {"frozen_mlp": {"100": 1.5}}}
    with pytest.raises(ConfigError) as e:
        config_from_dict({**base, "expected": bad}, "configs/x.json")
    assert "'expected.rows.frozen_mlp.100'" in str(e.value) and "configs/x.json" in str(e.value)


# -- python -m keras_ssl.compare RUN... --check -----------------------------------

def run_dir(root, name, measured, expected=EXPECTED, validation=None):
    """A hand-written finished run: config.json (with ``expected``; None: none) and
    results.json (``validation``: also results_validation.json with those means)."""
    d = root / name
    d.mkdir()
    cfg = {"name": name, "encoder": {"name": "bcnn"}}
    if expected is not None:
        cfg["expected"] = expected
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "results.json").write_text(json.dumps({"config": name, **results(measured, split="test")}))
    if validation is not None:
        (d / "results_validation.json").write_text(json.dumps(
            {"config": name, **results(validation, split="validation")}))
    return d


def test_check_exit_codes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)                                  # where comparison/ would be written
    ok = run_dir(tmp_path, "ok", GOOD)
    bad = run_dir(tmp_path, "bad", {**GOOD, ("frozen_mlp", 100): 0.8123})
    none = run_dir(tmp_path, "none", GOOD, expected=None)
    empty = run_dir(tmp_path, "empty", GOOD, expected={})

    assert C.main([str(ok), "--check"]) == 0
    assert capsys.readouterr().out == f"{ok}: OK\n"
    assert C.main([str(ok), str(bad), "--check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{ok}: OK", f"{bad}: frozen_mlp, 100 labels: measured 0.8123 over 3 seeds, "
                                f"expected 0.858 ± 0.02 (off by -0.0457)"]
    for d in (none, empty):
        assert C.main([str(ok), str(bad), str(d), "--check"]) == 2       # 2 wins over 1
        err = capsys.readouterr().err
        assert f"{d / 'config.json'}" in err and "'expected'" in err
    assert not (tmp_path / "comparison").exists()                # --check alone writes nothing
    assert sorted(p.name for p in ok.iterdir()) == ["config.json", "results.json"]


def test_check_validation_split_and_out(tmp_path, capsys):
    val = {**EXPECTED, "split": "validation"}
    d = run_dir(tmp_path, "val", {**GOOD, ("frozen_mlp", 100): 0.1}, expected=val, validation=GOOD)
    assert C.main([str(d), "--check"]) == 0                      # reads results_validation.json
    assert capsys.readouterr().out == f"{d}: OK\n"
    unevaluated = run_dir(tmp_path, "unevaluated", GOOD, expected=val)
    assert C.main([str(unevaluated), "--check"]) == 2
    assert "results_validation.json: not found" in capsys.readouterr().err
    malformed = run_dir(tmp_path, "malformed", GOOD, expected={**EXPECTED, "tolerance": 0})
    assert C.main([str(malformed), "--check"]) == 2
    err = capsys.readouterr().err
    assert str(malformed / "config.json") in err and "'expected.tolerance'" in err
    # with --out: the comparison is written too, and the exit code is still the check's
    assert C.main([str(d), "--check", "--out", str(tmp_path / "cmp"), "--no-thesis"]) == 0
    assert (tmp_path / "cmp" / "comparison.md").is_file()
    assert capsys.readouterr().out.endswith(f"{d}: OK\n")


def test_check_against_a_config_file(tmp_path, capsys):
    """--expected CONFIG: a run made before its config stated results is checked against
    the config file's expected (the run's own config.json has none); a failing row fails."""
    none = run_dir(tmp_path, "none", GOOD, expected=None)
    cfg = tmp_path / "later.json"
    cfg.write_text(json.dumps({"name": "none", "expected": EXPECTED}))
    assert C.main([str(none), "--check"]) == 2
    assert "--expected" in capsys.readouterr().err                    # the error names the way out
    assert C.main([str(none), "--check", "--expected", str(cfg)]) == 0
    assert capsys.readouterr().out == f"{none}: OK\n"
    off = run_dir(tmp_path, "off", {**GOOD, ("scratch", 100): 0.6}, expected=None)
    assert C.main([str(off), "--check", "--expected", str(cfg)]) == 1
    assert "scratch, 100 labels: measured 0.6000" in capsys.readouterr().out
    (tmp_path / "no_expected.json").write_text(json.dumps({"name": "x"}))
    assert C.main([str(none), "--check", "--expected", str(tmp_path / "no_expected.json")]) == 2
    assert str(tmp_path / "no_expected.json") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        C.main([str(none), "--expected", str(cfg)])                    # only with --check


def test_check_through_python_m(tmp_path):
    import subprocess
    import sys

    from support import SUBPROCESS_ENV

    bad = run_dir(tmp_path, "bad", {**GOOD, ("scratch", 100): 0.5})
    p = subprocess.run([sys.executable, "-m", "keras_ssl.compare", str(bad), "--check"], cwd=tmp_path,
                       env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert p.stdout == f"{bad}: scratch, 100 labels: measured 0.5000 over 3 seeds, expected 0.777 ± 0.02 " \
                       f"(off by -0.2770)\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bad"]              # nothing written
