"""Test set-up shared by every test module.

The CPU is split into two logical devices before anything touches
TensorFlow's devices, so that MirroredStrategy can be tested on a machine
without GPUs (``devices=["/cpu:0", "/cpu:1"]``). Ops still default to
/cpu:0, so other tests are unaffected.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
except RuntimeError:  # devices already initialised by an earlier import
    pass


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


@pytest.fixture
def digits():
    return synthetic_digits
