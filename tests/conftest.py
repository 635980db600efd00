"""Test set-up shared by every test module.

The CPU is split into two logical devices before anything touches
TensorFlow's devices, so that MirroredStrategy can be tested on a machine
without GPUs (``devices=["/cpu:0", "/cpu:1"]``). Ops still default to
/cpu:0, so other tests are unaffected.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
except RuntimeError:  # devices already initialised by an earlier import
    pass


# support.check_smoke_run asserts: pytest's assertion messages there too.
pytest.register_assert_rewrite("support")
from support import synthetic_digits  # noqa: E402


@pytest.fixture
def digits():
    return synthetic_digits
