"""Helpers the tuning tests share: the shipped configs and a small tune config.

Test modules import this as ``tune_support`` (pytest puts tests/tuning, a
directory without ``__init__.py``, on sys.path).
"""
import json
from pathlib import Path

from support import ROOT

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
