"""keras_ssl.data.pipeline: the batches of a pretext are a function of (seed, step) only."""
import numpy as np

from keras_ssl.data.pipeline import pretext_batches
from keras_ssl.pretext.egomotion import EgomotionParams, build_egomotion


def test_pipeline_same_batches_on_resume(digits):
    images, _ = digits(40)
    pre = build_egomotion(EgomotionParams(), (28, 28, 1))
    full = list(pretext_batches(images, pre, 8, 0, 0, 4))
    resumed = list(pretext_batches(images, pre, 8, 0, 2, 4))
    for (va, la), (vb, lb) in zip(full[2:], resumed):
        assert np.array_equal(va["second"], vb["second"]) and np.array_equal(la["rz"], lb["rz"])
    # tf.data's threading settings change how batches are made, never which.
    tuned = list(pretext_batches(images, pre, 8, 0, 0, 4, threads=0, intra_op_threads=1))
    for (va, la), (vb, lb) in zip(full, tuned):
        assert np.array_equal(va["second"], vb["second"]) and np.array_equal(la["rz"], lb["rz"])
