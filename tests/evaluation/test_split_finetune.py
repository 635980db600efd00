"""The scored split (test or validation), the finetune protocol and what results.json
records of the protocol and of where its numbers came from."""
import json

import keras
import numpy as np
import pytest

from keras_ssl.config import Component, EvalConfig, load_config, to_dict
from keras_ssl.data import split_validation
from keras_ssl.data.core import ImageSet
from keras_ssl.encoders import build_encoder
from keras_ssl.encoders.convnet import ConvNetParams
from keras_ssl.evaluation.features import encode, knn_accuracy
from keras_ssl.evaluation.protocols import evaluate_encoder
from keras_ssl.evaluation.subsets import labeled_subset, subset_seed
from keras_ssl.provenance import config_sha256
from support import ROOT

COMP = Component("convnet", ConvNetParams(filters=(4, 8)))


def _new():
    return build_encoder(COMP, (28, 28, 1))


@pytest.fixture(scope="module")
def sets():
    from support import synthetic_digits
    images, labels = synthetic_digits(400, seed=3)
    train = ImageSet(images[:300], labels[:300])
    # A test set the encoder cannot score well: noise with random labels.
    rng = np.random.default_rng(0)
    test = ImageSet(rng.integers(0, 256, (100, 28, 28, 1), dtype=np.uint8),
                    rng.integers(0, 10, 100).astype(labels.dtype))
    return train, test


def _eval(enc, e, train, test, **kw):
    return evaluate_encoder(enc, _new, e, train, test, validation_images=60, seed=5,
                            encoder_label="pre", progress=False, **kw)


def _rows(res):
    return {(r["method"], r["protocol"], r["labels"]): r["values"] for r in res["rows"]}


def test_validation_split_scores_the_validation_images_and_never_the_test_set(sets):
    train, test = sets
    enc = _new()
    base = dict(label_counts=(30,), seeds=(0, 1), head_hidden=8, head_steps=5, scratch=False,
                random_frozen=False, linear_probe=False)
    val_res = _eval(enc, EvalConfig(**base, split="validation"), train, test)
    test_res = _eval(enc, EvalConfig(**base), train, test)
    pool, val = split_validation(train, 60, 5)
    for s in (0, 1):   # kNN by hand: the subset from the pool, scored on the validation split
        sub = labeled_subset(pool, 30, s)
        want = knn_accuracy(encode(enc, sub.images)[-1], sub.labels, encode(enc, val.images)[-1],
                            val.labels, 10, num_classes=10)
        assert _rows(val_res)[("pre", "knn", 30)][s] == want
        want_test = knn_accuracy(encode(enc, sub.images)[-1], sub.labels, encode(enc, test.images)[-1],
                                 test.labels, 10, num_classes=10)
        assert _rows(test_res)[("pre", "knn", 30)][s] == want_test
    assert val_res["split"] == "validation" and test_res["split"] == "test"
    p = val_res["protocol"]
    assert p["scored_images"] == 60 and p["test_images"] == 100 and p["labeled_pool"] == 240
    assert p["validation_seed"] == 5 and p["subset_seeds"] == {"30/0": subset_seed(30, 0),
                                                                "30/1": subset_seed(30, 1)}
    assert test_res["protocol"]["subset_seeds"] == p["subset_seeds"]   # the same subsets


def test_validation_split_needs_validation_images(sets):
    train, test = sets
    with pytest.raises(ValueError, match="validation_images"):
        evaluate_encoder(_new(), _new, EvalConfig(label_counts=(30,), seeds=(0,), split="validation"),
                         train, test, validation_images=0, seed=0, encoder_label="pre", progress=False)


def test_finetune_starts_from_the_encoder_and_trains_as_scratch(sets):
    train, test = sets
    n, s = 30, 0
    keras.utils.set_random_seed(subset_seed(n, s))
    same_init = _new()          # the very weights scratch's fresh encoder starts from
    before = [w.copy() for w in same_init.get_weights()]
    e = EvalConfig(label_counts=(n,), seeds=(s,), head_hidden=8, head_steps=10, scratch_steps=10,
                   head_batch_size=16, random_frozen=False, linear_probe=False, knn=False,
                   finetune=True)
    rows = _rows(_eval(same_init, e, train, test))
    # Same init, same head, same steps: finetuning that encoder is scratch, to the bit.
    assert rows[("pre", "finetune", n)] == rows[("scratch", "scratch", n)]
    for a, b in zip(before, same_init.get_weights()):
        assert np.array_equal(a, b)      # the evaluated encoder is copied, never trained
    keras.utils.set_random_seed(123)
    other = _new()
    other_rows = _rows(_eval(other, e, train, test))
    assert other_rows[("scratch", "scratch", n)] == rows[("scratch", "scratch", n)]
    assert other_rows[("pre", "finetune", n)] != rows[("pre", "finetune", n)]


def test_finetune_budget_is_checked():
    from keras_ssl.config import ConfigError
    with pytest.raises(ConfigError, match=r"eval.*scratch_steps \(10\) must be >= head_steps"):
        load_config(ROOT / "configs/mnist_egomotion.json",
                    {"eval.scratch": False, "eval.finetune": True, "eval.scratch_steps": 10})


def test_results_json_records_the_protocol_and_provenance(tmp_path):
    from support import SUBPROCESS_ENV
    import subprocess
    import sys
    cfg_path = ROOT / "configs/mnist_rotation.json"
    run_dir = tmp_path / "run"
    sets = ["--set", "eval.split=validation", "--set", "eval.linear_probe=false", "--set", "eval.knn=false",
            "--set", "eval.random_frozen=false", "--set", "eval.scratch=false"]
    r = subprocess.run([sys.executable, "-m", "keras_ssl.train", "--config", str(cfg_path), "--smoke",
                        "--run-dir", str(run_dir), "--skip-export", "--no-progress", *sets],
                       env=SUBPROCESS_ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (run_dir / "results.json").exists()        # the test report is not written
    res = json.loads((run_dir / "results_validation.json").read_text())
    assert (run_dir / "results_validation.md").read_text().count("validation split") >= 1
    resolved = json.loads((run_dir / "config.json").read_text())
    prov = res["provenance"]
    assert prov["config_path"] == str(cfg_path.resolve())
    assert prov["config_sha256"] == config_sha256(resolved)
    assert prov["code_version"].startswith(("git:", "keras_ssl ", "unknown"))
    assert prov["encoder"] == resolved["encoder"] and prov["method"] == resolved["method"]
    assert prov["pretext"] == resolved["pretext"] and prov["seed"] == resolved["seed"]
    assert prov["pretrain_seconds"] > 0 and prov["evaluate_seconds"] > 0
    p = res["protocol"]
    assert (p["dataset"], p["eval_dataset"], p["validation_seed"]) == ("mnist", "mnist", resolved["seed"])
    assert p["scored_images"] == resolved["data"]["validation_images"]


def test_scratch_learning_rate_trains_scratch_and_finetune_and_not_the_heads(sets, monkeypatch):
    """eval.scratch_learning_rate: the rate of the whole-network rows; every classifier on
    frozen features keeps the head's rate (the rates each fit received, by model)."""
    import keras_ssl.evaluation.protocols as protocols

    seen = []
    real = protocols.train_classifier

    def spy(model, x, y, steps, batch, lr, *rest):
        seen.append((model.name, steps, lr))
        return real(model, x, y, steps, batch, lr, *rest)

    monkeypatch.setattr(protocols, "train_classifier", spy)
    train, test = sets
    e = EvalConfig(label_counts=(30,), seeds=(0,), head_hidden=8, head_steps=3, scratch_steps=4,
                   linear_probe_steps=2, head_learning_rate=0.002, scratch_learning_rate=0.05,
                   finetune=True, random_linear=True)
    res = _eval(_new(), e, train, test)
    whole = [(steps, lr) for name, steps, lr in seen if name == "scratch"]
    frozen = [(steps, lr) for name, steps, lr in seen if name != "scratch"]
    assert whole == [(4, 0.05), (4, 0.05)]                        # scratch, then finetune
    assert frozen and {lr for _, lr in frozen} == {0.002}        # heads and per-layer probes
    assert res["protocol"]["scratch_learning_rate"] == 0.05
    seen.clear()
    _eval(_new(), EvalConfig(label_counts=(30,), seeds=(0,), head_hidden=8, head_steps=3, scratch_steps=4,
                             linear_probe=False, random_frozen=False, head_learning_rate=0.002), train, test)
    assert [lr for name, _, lr in seen if name == "scratch"] == [0.002]     # None: the head's rate


def test_per_class_draws_k_images_of_every_class(sets):
    """eval.per_class: the label counts are k x the classes (10 here), exactly k of each."""
    train, test = sets
    e = EvalConfig(label_counts=(30,), per_class=(1, 3), seeds=(0, 1), head_hidden=8, head_steps=3,
                   scratch=False, random_frozen=False, linear_probe=False)
    res = _eval(_new(), e, train, test)
    p = res["protocol"]
    assert p["label_counts"] == [10, 30] and p["per_class"] == [1, 3] and p["num_classes"] == 10
    assert {r["labels"] for r in res["rows"]} == {10, 30}
    pool, _ = split_validation(train, 60, 5)
    for k, n in ((1, 10), (3, 30)):
        for s in (0, 1):
            assert np.bincount(labeled_subset(pool, n, s).labels, minlength=10).tolist() == [k] * 10
    with pytest.raises(Exception, match="per_class"):
        load_config(ROOT / "configs/mnist_rotation.json", {"eval.per_class": [0]})
