import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.config import Component, EvalConfig
from keras_ssl.data import split_validation
from keras_ssl.data.core import ImageSet
from keras_ssl.encoders import build_encoder
from keras_ssl.encoders.convnet import ConvNetParams
from keras_ssl.evaluation.classifier import accuracy, mlp_head, train_classifier
from keras_ssl.evaluation.features import knn_accuracy
from keras_ssl.evaluation.protocols import evaluate_encoder
from keras_ssl.evaluation.results import results_markdown
from keras_ssl.evaluation.subsets import labeled_subset
from keras_ssl.evaluation.validation import validation_score


def test_knn_on_separable_features():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(10, 16)) * 5
    ytr, yte = np.arange(100) % 10, np.arange(50) % 10
    xtr = centers[ytr] + rng.normal(size=(100, 16))
    xte = centers[yte] + rng.normal(size=(50, 16))
    assert knn_accuracy(xtr, ytr, xte, yte, k=5, num_classes=10) > 0.95
    assert knn_accuracy(xtr, ytr, xte, (yte + 1) % 10, k=5, num_classes=10) < 0.1


def test_train_classifier_learns():
    rng = np.random.default_rng(1)
    y = np.arange(200) % 10
    x = (np.eye(10)[y] * 3 + rng.normal(size=(200, 10)) * 0.3).astype(np.float32)
    head = mlp_head(10, 32, 0.0, num_classes=10)
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
                           validation_images=50, seed=0, encoder_label="egomotion", progress=False)
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
    # the thesis's rows are MNIST's: not beside another labeled set's table
    other = results_markdown({**res, "protocol": {**res["protocol"], "eval_dataset": "folder_labeled"}}, "t")
    assert "| egomotion | frozen_mlp |" in other and "thesis:" not in other
    assert res["protocol"]["test_images"] == 100 and res["protocol"]["labeled_pool"] == 250
    # where the time went: one entry per enabled protocol, within the evaluation's time
    spent = res["protocol_seconds"]
    assert set(spent) == {"frozen_mlp", "random_frozen", "linear", "knn", "scratch"}
    assert all(v > 0 for v in spent.values()) and sum(spent.values()) <= res["seconds"]
    # Same seeds, same numbers.
    again = evaluate_encoder(enc, lambda: build_encoder(comp, (28, 28, 1)), e, train, test,
                             validation_images=50, seed=0, encoder_label="egomotion", progress=False)
    assert [r["values"] for r in again["rows"] if r["protocol"] != "scratch"] == \
           [r["values"] for r in res["rows"] if r["protocol"] != "scratch"]


class IdentityEncoder(keras.Model):
    """Features that name the image: image i carries i in its first pixel and gets row i of
    ``table`` (distinct random vectors), so its nearest (cosine) neighbour among any set of
    images is itself when it is in the set, and a known other image otherwise."""

    def __init__(self, table):
        super().__init__(name="identity")
        self.table = np.asarray(table, np.float32)

    def call(self, x, training=False):
        ids = tf.cast(tf.round(x[:, 0, 0, 0] * 255.0), tf.int32)
        return tf.gather(tf.constant(self.table), ids)


def identity_set(n, labels):
    """n blank images, image i holding i in pixel (0, 0): an ImageSet with ``labels``."""
    images = np.zeros((n, 28, 28, 1), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)
    return ImageSet(images, np.asarray(labels, np.int64))


def ids(s: ImageSet) -> np.ndarray:
    return s.images[:, 0, 0, 0].astype(int)


def nearest(table, queries, voters) -> np.ndarray:
    """For each query id, the voter id of highest cosine similarity (by hand, numpy)."""
    t = table / np.linalg.norm(table, axis=1, keepdims=True)
    return voters[np.argmax(t[queries] @ t[voters].T, axis=1)]


def test_validation_score_scores_exactly_the_validation_split():
    """kNN (k=1) on features that name the image: each validation image of the seeded split
    (split_validation, same seed) is rigged to be right exactly when its own label is that of
    its nearest voter of the labeled subset drawn from the rest. The score is then exactly the
    number of rigged-right images / the split's size: every one of the split's images is
    scored, and nothing else (an image outside the split scored, or a validation image voting
    for itself, would change the count)."""
    n, n_val, n_labels, seed = 200, 40, 40, 0
    rng = np.random.default_rng(0)
    table = rng.standard_normal((n, 8))
    train = identity_set(n, rng.integers(0, 4, n))
    pool, val = split_validation(train, n_val, seed)
    assert len(val) == n_val and not set(ids(pool)) & set(ids(val))
    sub = labeled_subset(pool, n_labels, seed, size=n_labels)      # the voters, from the pool
    assert set(ids(sub)) <= set(ids(pool))
    voted = train.labels[nearest(table, ids(val), ids(sub))]        # the 1-NN prediction per image
    right = 13
    labels = train.labels.copy()
    labels[ids(val)] = np.where(np.arange(n_val) < right, voted, (voted + 1) % 4)
    rigged = ImageSet(train.images, labels)
    assert np.array_equal(labels[ids(pool)], train.labels[ids(pool)])   # pool labels: voters unchanged
    enc = IdentityEncoder(table)
    score = validation_score(enc, rigged, validation_images=n_val, seed=seed, labels=n_labels, knn_k=1)
    assert score == right / n_val
    # A validation image voting for itself would be right: all of them right then.
    self_vote = np.mean(labels[ids(val)] == labels[nearest(table, ids(val), np.union1d(ids(sub), ids(val)))])
    assert self_vote == 1.0
    # One more validation image made right moves the score by exactly one image.
    one_more = labels.copy()
    one_more[ids(val)[right]] = voted[right]
    assert validation_score(enc, ImageSet(train.images, one_more), validation_images=n_val, seed=seed,
                            labels=n_labels, knn_k=1) == (right + 1) / n_val
    # Another seed carves another split (and the rigging no longer lines up).
    assert validation_score(enc, rigged, validation_images=n_val, seed=seed + 1, labels=n_labels,
                            knn_k=1) != score
    # Same arguments, same score.
    assert validation_score(enc, rigged, validation_images=n_val, seed=seed, labels=n_labels,
                            knn_k=1) == score


def test_validation_score_votes_come_from_outside_the_split():
    """The validation images have a class of their own (4) that no image of the pool has:
    with features that name the image and k=1, a validation image among the voters would be
    its own nearest neighbour and score (1.0 by hand below). The score is 0.0, with a subset of
    the pool voting and with every pool image voting."""
    n, n_val, seed = 120, 24, 3
    rng = np.random.default_rng(1)
    table = rng.standard_normal((n, 8))
    blank = identity_set(n, np.zeros(n))
    pool, val = split_validation(blank, n_val, seed)
    labels = np.zeros(n, np.int64)
    labels[ids(pool)] = np.arange(len(pool)) % 4                     # 24 per class: balanced
    labels[ids(val)] = 4
    train = identity_set(n, labels)
    enc = IdentityEncoder(table)
    for n_labels in (20, len(pool)):                                 # a subset, or the whole pool
        assert validation_score(enc, train, validation_images=n_val, seed=seed, labels=n_labels,
                                knn_k=1) == 0.0
    # The control, by hand: were the validation images among the voters, each would find itself.
    voters = np.union1d(ids(pool), ids(val))
    assert np.all(labels[nearest(table, ids(val), voters)] == 4)


def test_three_classes_give_three_output_heads(digits, monkeypatch):
    """The number of classes comes from the labels: a 3-class set gets 3-way heads and votes."""
    from keras_ssl.evaluation import classifier, protocols
    from keras_ssl.evaluation.subsets import class_count

    images, labels = digits(240, seed=3, classes=3)
    train, test = ImageSet(images[:180], labels[:180]), ImageSet(images[180:], labels[180:])
    assert class_count(train.labels, test.labels) == 3
    with pytest.raises(ValueError, match="outside the 3 classes"):
        class_count(train.labels, np.array([0, 3]))
    outputs, votes = [], []
    real_head, real_knn = classifier.mlp_head, protocols.knn_accuracy

    def head(*args, **kwargs):
        model = real_head(*args, **kwargs)
        outputs.append(model.output.shape[-1])
        return model

    def knn(*args, **kwargs):
        votes.append(kwargs["num_classes"])
        return real_knn(*args, **kwargs)

    monkeypatch.setattr(classifier, "mlp_head", head)
    monkeypatch.setattr(protocols, "knn_accuracy", knn)
    comp = Component("convnet", ConvNetParams(filters=(4,)))
    enc = build_encoder(comp, (28, 28, 1))
    e = EvalConfig(label_counts=(6, 30), seeds=(0,), head_hidden=8, head_steps=20,
                   scratch_steps=20, linear_probe_steps=20, head_batch_size=8)
    res = evaluate_encoder(enc, lambda: build_encoder(comp, (28, 28, 1)), e, train, test,
                           validation_images=30, seed=0, encoder_label="rotation", progress=False)
    assert outputs and set(outputs) == {3} and votes == [3, 3]
    protocols_run = {r["protocol"] for r in res["rows"]}
    assert {"frozen_mlp", "scratch", "random_frozen", "knn", "linear:features"} <= protocols_run
    assert all(len(r["values"]) == 1 and 0.0 <= r["mean"] <= 1.0 for r in res["rows"])
    assert 0.0 <= validation_score(enc, train, validation_images=30, seed=0, labels=30, kind="linear",
                                   steps=20) <= 1.0
    # Each protocol reseeds before it builds a model: turning the others off changes none of its numbers.
    alone = evaluate_encoder(enc, lambda: build_encoder(comp, (28, 28, 1)),
                             dataclasses.replace(e, random_frozen=False, linear_probe=False, knn=False),
                             train, test, validation_images=30, seed=0, encoder_label="rotation",
                             progress=False)
    values = {(r["protocol"], r["labels"]): r["values"] for r in res["rows"]}
    assert {(r["protocol"], r["labels"]): r["values"] for r in alone["rows"]} == \
           {k: v for k, v in values.items() if k[0] in ("frozen_mlp", "scratch")}


def test_validation_score_on_a_small_unbalanced_pool_uses_all_of_it(digits):
    """A labeled set whose pool is smaller than the labels asked for (the kNN monitor asks
    for min(1000, pool)) votes with the whole pool, unbalanced classes and all."""
    from keras_ssl.data import split_validation
    from keras_ssl.evaluation.features import encode

    images, _ = digits(150, seed=4)
    labels = np.repeat([0, 1, 2], [60, 50, 40]).astype(np.int64)
    train = ImageSet(images, labels)
    comp = Component("convnet", ConvNetParams(filters=(4, 8)))
    enc = build_encoder(comp, (28, 28, 1))
    got = validation_score(enc, train, validation_images=30, seed=0, kind="knn", labels=120, knn_k=5)
    pool, val = split_validation(train, 30, 0)
    want = knn_accuracy(encode(enc, pool.images)[0], pool.labels, encode(enc, val.images)[0], val.labels,
                        5, num_classes=3)
    assert got == want


def lambda_encoder(fn, name):
    """A functional encoder (what the evaluation taps: a layer named ``features``) computing
    ``fn`` of the images in [0, 1]."""
    x = keras.Input((28, 28, 1))
    return keras.Model(x, keras.layers.Lambda(fn, name="features")(x), name=name)


def constant_encoder():
    """The same feature vector for every image: no head can tell the images apart."""
    return lambda_encoder(lambda x: tf.ones([tf.shape(x)[0], 8]) + 0.0 * tf.reduce_mean(x), "constant")


def class_code_encoder():
    """Features that name the class coded in pixel (0, 0) as 20 * class: 3 * one-hot."""
    return lambda_encoder(lambda x: 3.0 * tf.one_hot(tf.cast(tf.round(x[:, 0, 0, 0] * 255.0 / 20.0), tf.int32), 10),
                          "class_code")


def test_a_head_that_predicts_one_class_is_flagged_and_the_others_are_not(digits):
    """frozen_mlp on features identical for every image can only predict one class: each
    seed's row is flagged (collapsed_seeds) and results.md marks the cell and says why;
    on features that name the class, nothing is."""
    images, labels = digits(300, seed=3)
    train, test = ImageSet(images[:200], labels[:200]), ImageSet(images[200:], labels[200:])
    e = EvalConfig(label_counts=(30,), seeds=(0, 1), head_hidden=16, head_steps=100, head_dropout=0.0,
                   head_learning_rate=0.2, head_batch_size=10, scratch=False, random_frozen=False, linear_probe=False,
                   knn=False)
    res = evaluate_encoder(constant_encoder(), constant_encoder, e, train, test, validation_images=0,
                           seed=0, encoder_label="const", progress=False)
    (row,) = res["rows"]
    assert row["collapsed_seeds"] == [0, 1]
    # its accuracy is the share of the one class it predicts
    shares = {float(np.mean(test.labels == c)) for c in range(10)}
    assert all(any(abs(v - sh) < 1e-9 for sh in shares) for v in row["values"])
    md = results_markdown(res, "t")
    assert "†" in md.split("| const | frozen_mlp |")[1].splitlines()[0]
    assert "seed(s) 0, 1 predicted one class for every scored image" in md and "no seed trained" in md

    # The class coded in a pixel: the head learns it, no seed is flagged.
    coded = [ImageSet(s.images.copy(), s.labels) for s in (train, test)]
    for s in coded:
        s.images[:, 0, 0, 0] = 20 * s.labels
    res = evaluate_encoder(class_code_encoder(), class_code_encoder, e, *coded, validation_images=0,
                           seed=0, encoder_label="coded", progress=False)
    (row,) = res["rows"]
    assert row["collapsed_seeds"] == [] and row["mean"] > 0.9
    assert "†" not in results_markdown(res, "t")


def test_random_linear_probes_the_random_encoder_of_random_frozen(digits):
    """``random_linear:<layer>`` is ``linear:<layer>`` on the random encoder: evaluating that
    very encoder (built with the subset's seed, as the baseline builds it) gives the same
    values layer by layer, where another encoder does not; off, no rows."""
    from keras_ssl.evaluation.subsets import subset_seed

    images, labels = digits(300, seed=4)
    train, test = ImageSet(images[:200], labels[:200]), ImageSet(images[200:], labels[200:])
    comp = Component("convnet", ConvNetParams(filters=(4, 8)))
    new = lambda: build_encoder(comp, (28, 28, 1))    # noqa: E731
    # a few probe steps, so that accuracies are far from 1 and differ between encoders
    e = EvalConfig(label_counts=(30,), seeds=(1,), head_hidden=16, head_steps=20, scratch=False,
                   linear_probe_steps=3, head_batch_size=16, knn=False, random_linear=True)

    def rows(encoder, cfg=e):
        res = evaluate_encoder(encoder, new, cfg, train, test, validation_images=20, seed=0,
                               encoder_label="pre", progress=False)
        return {r["protocol"]: r["values"] for r in res["rows"]}

    keras.utils.set_random_seed(subset_seed(30, 1))
    same = rows(new())
    layers = [p[len("linear:"):] for p in same if p.startswith("linear:")]
    assert "pool1" in layers and "features" in layers
    for layer in layers:
        assert same[f"random_linear:{layer}"] == same[f"linear:{layer}"], layer
    keras.utils.set_random_seed(12345)
    other = rows(new())
    assert other["random_linear:pool1"] == same["random_linear:pool1"]   # the baseline's own weights
    assert any(other[f"linear:{layer}"] != same[f"linear:{layer}"] for layer in layers)
    assert not any(p.startswith("random_linear:") for p in rows(new(), dataclasses.replace(e, random_linear=False)))


def test_random_linear_without_linear_probes_is_refused():
    from keras_ssl.config import ConfigError, load_config
    from support import ROOT

    path = ROOT / "configs" / "drives_sfa_time.json"
    with pytest.raises(ConfigError, match=r"drives_sfa_time.json.*random_linear needs linear_probe"):
        load_config(path, {"eval.linear_probe": False})
