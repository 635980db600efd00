import numpy as np

from keras_ssl.config import Component, EvalConfig
from keras_ssl.data.core import ImageSet
from keras_ssl.encoders import build_encoder
from keras_ssl.encoders.convnet import ConvNetParams
from keras_ssl.evaluation.protocols import (evaluate_encoder, knn_accuracy, mlp_head, accuracy,
                                results_markdown, train_classifier, validation_score)


def test_knn_on_separable_features():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(10, 16)) * 5
    ytr, yte = np.arange(100) % 10, np.arange(50) % 10
    xtr = centers[ytr] + rng.normal(size=(100, 16))
    xte = centers[yte] + rng.normal(size=(50, 16))
    assert knn_accuracy(xtr, ytr, xte, yte, k=5) > 0.95
    assert knn_accuracy(xtr, ytr, xte, (yte + 1) % 10, k=5) < 0.1


def test_train_classifier_learns():
    rng = np.random.default_rng(1)
    y = np.arange(200) % 10
    x = (np.eye(10)[y] * 3 + rng.normal(size=(200, 10)) * 0.3).astype(np.float32)
    head = mlp_head(10, 32, 0.0)
    before = accuracy(head, x, y)
    train_classifier(head, x, y, steps=200, batch=32, lr=0.05, momentum=0.9, l2=0.0, seed=0)
    assert accuracy(head, x, y) > max(0.9, before)


def test_protocol_rows_and_table(digits):
    images, labels = digits(400, seed=1)
    train = ImageSet(images[:300], labels[:300])
    test = ImageSet(images[300:], labels[300:])
    comp = Component("convnet", ConvNetParams(filters=(4, 8)))
    enc = build_encoder(comp, (28, 28, 1))
    e = EvalConfig(label_counts=(20, 50), seeds=(0, 1), head_hidden=16, head_steps=30,
                   scratch_steps=30, linear_probe_steps=30, head_batch_size=16)
    res = evaluate_encoder(enc, lambda: build_encoder(comp, (28, 28, 1)), e, train, test,
                           validation_images=50, seed=0, method_name="egomotion", progress=False)
    rows = {(r["method"], r["protocol"], r["labels"]): r for r in res["rows"]}
    for n in (20, 50):
        for key in [("egomotion", "frozen_mlp", n), ("scratch", "scratch", n), ("egomotion", "knn", n),
                    ("random", "random_frozen", n),
                    ("egomotion", "linear:pool1", n), ("egomotion", "linear:features", n)]:
            r = rows[key]
            assert len(r["values"]) == 2 and 0.0 <= r["mean"] <= 1.0
            assert np.isclose(r["mean"], np.mean(r["values"]))
    assert rows[("egomotion", "knn", 50)]["mean"] > 0.5     # synthetic classes are easy
    # The random-encoder baseline is a freshly initialised encoder, not the one evaluated.
    assert rows[("random", "random_frozen", 20)]["values"] != rows[("egomotion", "frozen_mlp", 20)]["values"]
    md = results_markdown(res, "t")
    assert "| egomotion | frozen_mlp |" in md and "thesis: egomotion" in md
    assert res["protocol"]["test_images"] == 100 and res["protocol"]["labeled_pool"] == 250
    # Same seeds, same numbers.
    again = evaluate_encoder(enc, lambda: build_encoder(comp, (28, 28, 1)), e, train, test,
                             validation_images=50, seed=0, method_name="egomotion", progress=False)
    assert [r["values"] for r in again["rows"] if r["protocol"] != "scratch"] == \
           [r["values"] for r in res["rows"] if r["protocol"] != "scratch"]


def test_validation_score_uses_validation_split(digits):
    images, labels = digits(300, seed=2)
    enc = build_encoder(Component("convnet", ConvNetParams(filters=(4,))), (28, 28, 1))
    s = validation_score(enc, ImageSet(images, labels), validation_images=100, seed=0, labels=100)
    assert 0.3 < s <= 1.0
