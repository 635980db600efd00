"""Helpers shared by the test modules (fixtures built on them live in conftest.py).

Test modules import this as ``support`` (pytest puts tests/, the directory of
the root conftest.py, on sys.path).
"""
import os
from pathlib import Path

import numpy as np

#: The repository root (the project checkout).
ROOT = Path(__file__).resolve().parents[1]
#: Environment for a subprocess running ``python -m keras_ssl...`` from any directory.
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                  "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def synthetic_digits(n: int, size: int = 28, channels: int = 1, seed: int = 0, classes: int = 10):
    """(uint8 images [n, size, size, channels], int64 labels): a bright bar per class,
    placed and oriented by class, with noise; learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    imgs = np.zeros((n, size, size, channels), np.float32)
    for i, c in enumerate(labels):
        r = 4 + (c * 2) % (size - 8)
        if c % 2:
            imgs[i, r:r + 3, 4:size - 4] = 1.0
        else:
            imgs[i, 4:size - 4, r:r + 3] = 1.0
    imgs += rng.uniform(0, 0.2, imgs.shape)
    return (np.clip(imgs, 0, 1) * 255).astype(np.uint8), labels.astype(np.int64)


def tiny_encoder(seed: int = 0, channels: int = 1, size: int = 28, dropout: float = 0.0):
    """Conv -> pool -> flatten [-> dropout] -> dense 8, input ``images``: the smallest
    encoder that export and serving tests need. ``dropout`` > 0 makes ``training=True``
    differ from inference (export must call the encoder with ``training=False``)."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(size, size, channels), name="images")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="drop")(x)
    out = keras.layers.Dense(8, name="fc")(x)
    return keras.Model(inp, out, name="tiny_encoder")
