"""Few-label evaluation of an encoder (the thesis protocol, plus probes).

For every label count n and seed s, a class-stratified subset of n labeled
training images (seeded by (n, s)) is drawn from the training set minus the
validation split, and these are trained on it and scored on the test set:

- ``frozen_mlp``: the encoder frozen, its features fed to a head dense 500,
  ReLU, dropout, dense 10 (thesis protocol: 4,000 iterations, SGD lr 0.01,
  momentum 0.9, batch 125, weight decay 5e-4);
- ``scratch``: the same classifier with a freshly initialised encoder, every
  layer trained, for ``scratch_steps`` (>= ``head_steps``) iterations;
- ``random_frozen``: ``frozen_mlp`` on a freshly initialised encoder (what the
  head gets from the architecture alone, the floor pretraining must clear);
- ``linear:<layer>``: softmax regression on each tapped layer's features;
- ``knn``: k-nearest neighbours (cosine) on the final features.

Nothing looks at the test set before scoring: step counts and
hyperparameters are fixed by the config, and each model is scored once.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from keras_ssl.data import few_label_subset, split_validation
from keras_ssl.data.core import ImageSet
from keras_ssl.data.pipeline import to_float
from keras_ssl.encoders import tap_outputs
from keras_ssl.evaluation.reference import THESIS_TABLE

NUM_CLASSES = 10


def subset_seed(n: int, seed: int) -> int:
    return 1000003 * seed + n


# --------------------------------------------------------------------------
# Training a classifier in-graph (features or images)
# --------------------------------------------------------------------------

def train_classifier(model: keras.Model, x, y, steps: int, batch: int, lr: float,
                     momentum: float, l2: float, seed: int) -> keras.Model:
    """SGD with momentum and coupled L2 on batches drawn with replacement.

    The whole loop is one ``tf.function`` (no Python per step); batch indices
    come from stateless random ops seeded by ``(seed, step)``.
    """
    x = tf.convert_to_tensor(x)
    y = tf.convert_to_tensor(y, tf.int32)
    n = int(x.shape[0])
    opt = keras.optimizers.SGD(lr, momentum=momentum)
    opt.build(model.trainable_variables)
    decayed = [w for w in model.trainable_weights if w.path.endswith("kernel")]

    @tf.function(reduce_retracing=True)
    def loop(x, y):
        for i in tf.range(steps):
            idx = tf.random.stateless_uniform([batch], tf.stack([seed, i]), 0, n, dtype=tf.int32)
            xb, yb = tf.gather(x, idx), tf.gather(y, idx)
            with tf.GradientTape() as tape:
                logits = model(xb, training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits))
                if l2 and decayed:
                    loss += 0.5 * l2 * tf.add_n([tf.reduce_sum(tf.square(w)) for w in decayed])
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    loop(x, y)
    return model


def accuracy(model: keras.Model, x, y, batch: int = 1000) -> float:
    correct = 0
    for i in range(0, len(y), batch):
        logits = model(tf.convert_to_tensor(x[i:i + batch]), training=False)
        correct += int(np.sum(np.argmax(logits, -1) == y[i:i + batch]))
    return correct / len(y)


def mlp_head(in_dim: int, hidden: int, dropout: float, name="head") -> keras.Model:
    inp = keras.Input((in_dim,), name="features")
    x = inp
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name=f"{name}_fc")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    out = keras.layers.Dense(NUM_CLASSES, name=f"{name}_logits")(x)
    return keras.Model(inp, out, name=name)


def encode(model: keras.Model, images_uint8: np.ndarray, batch: int = 1000):
    """Features of uint8 images (list of arrays when ``model`` has several outputs)."""
    fn = tf.function(lambda x: model(to_float(x), training=False), reduce_retracing=True)
    outs = None
    for i in range(0, len(images_uint8), batch):
        o = fn(tf.convert_to_tensor(images_uint8[i:i + batch]))
        o = [o] if not isinstance(o, (list, tuple)) else list(o)
        outs = [[t.numpy()] for t in o] if outs is None else [a + [t.numpy()] for a, t in zip(outs, o)]
    return [np.concatenate(a) for a in outs]


def knn_accuracy(train_f, train_y, test_f, test_y, k: int, batch: int = 1000) -> float:
    """Majority vote of the k nearest (cosine) labeled neighbours; ties -> most similar sum."""
    def norm(a):
        a = tf.convert_to_tensor(a, tf.float32)
        return tf.math.l2_normalize(tf.reshape(a, [tf.shape(a)[0], -1]), axis=1)
    tr, k = norm(train_f), min(k, len(train_y))
    ty = tf.constant(train_y, tf.int32)
    correct = 0
    for i in range(0, len(test_y), batch):
        sim = tf.matmul(norm(test_f[i:i + batch]), tr, transpose_b=True)
        top_sim, top_idx = tf.math.top_k(sim, k)
        votes = tf.one_hot(tf.gather(ty, top_idx), NUM_CLASSES)          # [b, k, C]
        score = tf.reduce_sum(votes, 1) + 1e-3 * tf.reduce_sum(votes * top_sim[..., None], 1)
        correct += int(np.sum(np.argmax(score, -1) == test_y[i:i + batch]))
    return correct / len(test_y)


# --------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------

def evaluate_encoder(encoder: keras.Model, new_encoder: Callable[[], keras.Model], eval_cfg,
                     train: ImageSet, test: ImageSet, *, validation_images: int, seed: int,
                     method_name: str, progress: bool = True) -> dict:
    """Run the few-label protocol; returns the ``results.json`` document."""
    from tqdm.auto import tqdm

    e = eval_cfg
    pool, _ = split_validation(train, validation_images, seed)
    if e.max_test_images:
        test = test.take(np.arange(min(e.max_test_images, len(test))))
    taps = list(getattr(encoder, "taps", ()) or ())
    taps = [t for t in taps if t != "features"] if e.linear_probe else []
    probe_model = tap_outputs(encoder, taps + ["features"])
    test_feats = encode(probe_model, test.images)
    test_final = test_feats[-1]

    tasks = [(n, s) for n in e.label_counts for s in e.seeds]
    runs: dict[tuple, list] = {}
    t0 = time.perf_counter()
    bar = tqdm(tasks, desc="evaluate", unit="subset", disable=not progress, dynamic_ncols=True)
    for n, s in bar:
        bar.set_postfix(labels=n, seed=s)
        idx = few_label_subset(pool.labels, n, subset_seed(n, s))
        sub = pool.take(idx)
        feats = encode(probe_model, sub.images)
        keras.utils.set_random_seed(subset_seed(n, s))
        head = mlp_head(feats[-1].shape[1], e.head_hidden, e.head_dropout)
        train_classifier(head, feats[-1], sub.labels, e.head_steps, e.head_batch_size,
                         e.head_learning_rate, e.head_momentum, e.head_weight_decay, s)
        runs.setdefault((method_name, "frozen_mlp", n), []).append(accuracy(head, test_final, test.labels))
        if e.random_frozen:
            keras.utils.set_random_seed(subset_seed(n, s))
            rand = new_encoder()
            f_tr, f_te = encode(rand, sub.images)[-1], encode(rand, test.images)[-1]
            keras.utils.set_random_seed(subset_seed(n, s))
            head = mlp_head(f_tr.shape[1], e.head_hidden, e.head_dropout)
            train_classifier(head, f_tr, sub.labels, e.head_steps, e.head_batch_size,
                             e.head_learning_rate, e.head_momentum, e.head_weight_decay, s)
            runs.setdefault(("random", "random_frozen", n), []).append(accuracy(head, f_te, test.labels))
        for layer, f_tr, f_te in zip(taps + ["features"], feats, test_feats):
            if not e.linear_probe:
                break
            keras.utils.set_random_seed(subset_seed(n, s))
            lin = mlp_head(f_tr.shape[1], 0, 0.0, name="linear")
            train_classifier(lin, f_tr, sub.labels, e.linear_probe_steps, e.head_batch_size,
                             e.head_learning_rate, e.head_momentum, e.head_weight_decay, s)
            runs.setdefault((method_name, f"linear:{layer}", n), []).append(accuracy(lin, f_te, test.labels))
        if e.knn:
            runs.setdefault((method_name, "knn", n), []).append(
                knn_accuracy(feats[-1], sub.labels, test_final, test.labels, e.knn_k))
        if e.scratch:
            keras.utils.set_random_seed(subset_seed(n, s))
            enc = new_encoder()
            head = mlp_head(enc.output.shape[-1], e.head_hidden, e.head_dropout)
            x_in = keras.Input(enc.input.shape[1:], name="images")
            clf = keras.Model(x_in, head(enc(x_in)), name="scratch")
            train_classifier(clf, to_float(sub.images), sub.labels, e.scratch_steps, e.head_batch_size,
                             e.head_learning_rate, e.head_momentum, e.head_weight_decay, s)
            runs.setdefault(("scratch", "scratch", n), []).append(
                accuracy(clf, to_float(test.images).numpy(), test.labels))
    bar.close()
    rows = []
    for (method, protocol, n), vals in runs.items():
        rows.append({"method": method, "protocol": protocol, "labels": n,
                     "mean": float(np.mean(vals)), "std": float(np.std(vals)),
                     "values": [float(v) for v in vals]})
    return {"protocol": {**asdict(e), "label_counts": list(e.label_counts), "seeds": list(e.seeds),
                         "test_images": len(test), "labeled_pool": len(pool),
                         "validation_images": validation_images},
            "rows": rows, "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def _fmt(row: Optional[dict]) -> str:
    if row is None:
        return "-"
    return f"{row['mean']:.3f} ± {row['std']:.3f}" if len(row["values"]) > 1 else f"{row['mean']:.3f}"


def results_markdown(results: dict, title: str = "") -> str:
    """The results table beside the thesis's rows."""
    counts = results["protocol"]["label_counts"]
    by = {(r["method"], r["protocol"], r["labels"]): r for r in results["rows"]}
    keys = []
    for r in results["rows"]:
        k = (r["method"], r["protocol"])
        if k not in keys:
            keys.append(k)
    order = {"frozen_mlp": 0, "scratch": 1, "random_frozen": 2, "knn": 3}
    keys.sort(key=lambda k: order.get(k[1], 4))  # stable: probes stay in layer order
    head = "| method | protocol | " + " | ".join(str(c) for c in counts) + " |"
    sep = "|---|---|" + "---:|" * len(counts)
    lines = [f"## {title}" if title else "", head, sep]
    for m, p in keys:
        lines.append(f"| {m} | {p} | " + " | ".join(_fmt(by.get((m, p, c))) for c in counts) + " |")
    for name, vals in THESIS_TABLE.items():
        ref = dict(zip((100, 300, 1000, 10000), vals))
        lines.append(f"| thesis: {name} | reported | " + " | ".join(
            f"{ref[c]:.2f}" if c in ref else "-" for c in counts) + " |")
    p = results["protocol"]
    lines += ["", f"Protocol: {len(p['seeds'])} seed(s) {p['seeds']}; frozen head dense {p['head_hidden']} "
              f"+ dropout {p['head_dropout']}, {p['head_steps']} steps, batch {p['head_batch_size']}, "
              f"lr {p['head_learning_rate']}; scratch {p['scratch_steps']} steps; linear probes "
              f"{p['linear_probe_steps']} steps; kNN k={p['knn_k']} (cosine); test images: "
              f"{p['test_images']}; labeled subsets drawn from {p['labeled_pool']} training images "
              f"({p['validation_images']} held out for validation). Mean ± std over seeds."]
    return "\n".join(l for l in lines if l is not None) + "\n"


def write_results(results: dict, run_dir: Path, title: str = "") -> str:
    run_dir = Path(run_dir)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    md = results_markdown(results, title)
    (run_dir / "results.md").write_text(md)
    return md


def validation_score(encoder: keras.Model, train: ImageSet, *, validation_images: int, seed: int,
                     kind: str = "knn", labels: int = 1000, knn_k: int = 10,
                     steps: int = 1000, batch: int = 125) -> float:
    """Label-efficient proxy on the validation split (never the test set).

    ``labels`` stratified training images (from the pool outside the
    validation split) train a kNN classifier (``kind="knn"``) or a linear
    probe on the final features (``kind="linear"``); the score is accuracy on
    the validation split. Used for tuning and for monitoring pretraining.
    """
    pool, val = split_validation(train, validation_images, seed)
    if len(val) == 0:
        raise ValueError("validation_score needs data.validation_images > 0")
    idx = few_label_subset(pool.labels, min(labels, len(pool)), subset_seed(labels, seed))
    sub = pool.take(idx)
    tr = encode(encoder, sub.images)[0]
    va = encode(encoder, val.images)[0]
    if kind == "knn":
        return knn_accuracy(tr, sub.labels, va, val.labels, knn_k)
    if kind == "linear":
        lin = mlp_head(tr.shape[1], 0, 0.0, name="linear")
        train_classifier(lin, tr, sub.labels, steps, batch, 0.01, 0.9, 5e-4, seed)
        return accuracy(lin, va, val.labels)
    raise ValueError(f"unknown validation score kind {kind!r}: use 'knn' or 'linear'")
