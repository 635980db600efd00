"""Head-side variants of the frozen-encoder protocol, scored on the validation split.

Asks whether the frozen-MLP figure at a label count is limited by the head
(its input, its training) or by the encoder's features. Each variant trains
the thesis's head (dense 500, dropout 0.5, SGD, batch 125) on the labeled
subset of seed 0 and scores it on the 5,000-image validation split (never
the test set):

- ``base``: the protocol as run (the encoder's ``features`` output);
- ``standardize``: features standardised with the subset's mean and std;
- ``conv1_maps``: the unpooled conv1 maps beside the last block;
- ``conv2_maps``: the unpooled conv2 maps beside the first block;
- ``steps8k``: twice the head steps; ``lr03``: lr 0.03;
- ``shift1``, ``shift2``: the input randomly shifted by up to 1 / 2 px while
  the head trains (the encoder frozen, run on every batch).

    python benchmarks/head_variants.py --run-dir runs/mnist_egomotion [--labels 10000 100]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository, for keras_ssl

import keras
import numpy as np
import tensorflow as tf

from keras_ssl.data import load_labeled, split_validation
from keras_ssl.data.pipeline import to_float
from keras_ssl.encoders import tap_outputs
from keras_ssl.evaluation.classifier import accuracy, mlp_head, train_classifier
from keras_ssl.evaluation.features import encode
from keras_ssl.evaluation.subsets import class_count, labeled_subset, subset_seed

VARIANTS = ("base", "standardize", "conv1_maps", "conv2_maps", "steps8k", "lr03", "shift1", "shift2")


class ShiftedInput(keras.Model):
    """Frozen encoder + head; in training the input is shifted by up to ``shift`` px."""

    def __init__(self, encoder, head, shift):
        super().__init__()
        self.encoder, self.head, self.shift = encoder, head, shift
        encoder.trainable = False

    def call(self, x, training=False):
        if training:
            s = self.shift
            padded = tf.pad(x, [[0, 0], [s, s], [s, s], [0, 0]])
            x = tf.image.random_crop(padded, tf.shape(x))
        return self.head(self.encoder(x, training=False), training=training)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--labels", type=int, nargs="+", default=[10000])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = ap.parse_args()
    import keras_ssl.encoders  # noqa: F401  (custom layers)
    enc = keras.models.load_model(f"{args.run_dir}/encoder.keras", compile=False)
    train, _ = load_labeled("mnist")
    pool, val = split_validation(train, 5000, 0)
    num_classes = class_count(train.labels)
    taps = tap_outputs(enc, ["conv1", "norm1", "conv2", "norm2", "features"])
    flat = lambda arrays: {k: a.reshape(len(a), -1) for k, a in zip(["conv1", "norm1", "conv2", "norm2", "features"], arrays)}
    v = flat(encode(taps, val.images))
    for n in args.labels:
        sub = labeled_subset(pool, n, 0)
        t = flat(encode(taps, sub.images))
        for name in args.variants:
            t0 = time.perf_counter()
            keras.utils.set_random_seed(subset_seed(n, 0))
            steps, lr = (8000 if name == "steps8k" else 4000), (0.03 if name == "lr03" else 0.01)
            if name.startswith("shift"):
                head = mlp_head(v["features"].shape[1], 500, 0.5, num_classes=num_classes)
                model = ShiftedInput(enc, head, int(name[-1]))
                x_tr, x_val = to_float(sub.images), to_float(val.images).numpy()
                model(x_tr[:2])
            else:
                keys = {"conv1_maps": ["conv1", "norm2"], "conv2_maps": ["norm1", "conv2"]}.get(name, ["features"])
                x_tr = np.concatenate([t[k] for k in keys], 1)
                x_val = np.concatenate([v[k] for k in keys], 1)
                if name == "standardize":
                    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-3
                    x_tr, x_val = (x_tr - mu) / sd, (x_val - mu) / sd
                model = mlp_head(x_tr.shape[1], 500, 0.5, num_classes=num_classes)
            train_classifier(model, x_tr, sub.labels, steps, 125, lr, 0.9, 5e-4, 0)
            print(f"{n} labels  {name:12s} validation accuracy {accuracy(model, x_val, val.labels):.4f}"
                  f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
