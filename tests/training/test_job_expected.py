"""The job checks its results against the config's ``expected`` rows it measured."""
import dataclasses

from keras_ssl.config import load_config
from keras_ssl.training.job import _check_expected
from support import ROOT


def _cfg(expected, split="validation"):
    cfg = load_config(ROOT / "configs/mnist_egomotion.json", smoke=True)
    return dataclasses.replace(cfg, expected=expected,
                               eval=dataclasses.replace(cfg.eval, split=split))


RESULTS = {"split": "validation",
           "rows": [{"protocol": "frozen_mlp", "labels": 20, "mean": 0.60, "values": [0.6, 0.6]},
                    {"protocol": "scratch", "labels": 20, "mean": 0.40, "values": [0.4, 0.4]}]}


def test_rows_measured_are_checked_and_a_miss_is_named():
    lines = []
    cfg = _cfg({"source": "a run", "split": "validation", "tolerance": 0.05,
                "rows": {"frozen_mlp": {"20": 0.62}, "scratch": {"20": 0.50, "1000": 0.9}}})
    out = _check_expected(cfg, RESULTS, lines.append)
    assert out["ok"] is False and out["checked"] == 2 and out["unmeasured"] == 1
    assert len(out["failures"]) == 1 and out["failures"][0].startswith("scratch, 20 labels: measured 0.4000")
    assert "DIFFERS" in lines[0] and "1 expected row(s) not measured" in lines[0]


def test_all_within_tolerance():
    lines = []
    cfg = _cfg({"source": "a run", "split": "validation", "rows": {"frozen_mlp": {"20": [0.59, 0.011]}}})
    out = _check_expected(cfg, RESULTS, lines.append)
    assert out == {"ok": True, "checked": 1, "failures": [], "unmeasured": 0}
    assert lines[0].startswith("all 1 expected row(s) within tolerance (a run)")


def test_other_split_is_not_checked():
    lines = []
    cfg = _cfg({"source": "a run", "rows": {"frozen_mlp": {"20": 0.1}}}, split="validation")
    out = _check_expected(cfg, RESULTS, lines.append)
    assert out["ok"] is None and out["checked"] == 0 and "not checked" in lines[0]
