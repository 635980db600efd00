"""keras_ssl.losses.colour: soft-target cross-entropy, against NumPy."""
import numpy as np
import tensorflow as tf

from keras_ssl.losses.colour import soft_bin_cross_entropy


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_matches_numpy_with_pixel_weights():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 3, 7)).astype(np.float32)
    bins = rng.integers(0, 7, (2, 3, 3, 2))
    w = rng.random((2, 3, 3, 2)).astype(np.float32)
    w /= w.sum(-1, keepdims=True)
    pw = rng.random((2, 3, 3)).astype(np.float32)
    lp = _log_softmax(logits.astype(np.float64))
    ce = -(w * np.take_along_axis(lp, bins, -1)).sum(-1)
    got = soft_bin_cross_entropy(tf.constant(logits), tf.constant(bins), tf.constant(w), tf.constant(pw))
    np.testing.assert_allclose(got.numpy(), (ce * pw).mean((1, 2)), rtol=1e-5)
    unweighted = soft_bin_cross_entropy(tf.constant(logits), tf.constant(bins), tf.constant(w))
    np.testing.assert_allclose(unweighted.numpy(), ce.mean((1, 2)), rtol=1e-5)


def test_hard_label_is_sparse_cross_entropy_and_minimum_at_the_target():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 2, 2, 5)).astype(np.float32)
    label = rng.integers(0, 5, (1, 2, 2, 1))
    got = soft_bin_cross_entropy(logits, label, np.ones((1, 2, 2, 1), np.float32)).numpy()
    ref = tf.keras.losses.sparse_categorical_crossentropy(label[..., 0], logits, from_logits=True).numpy()
    np.testing.assert_allclose(got, ref.mean((1, 2)), rtol=1e-5)
    confident = 20.0 * tf.one_hot(label[..., 0], 5)
    assert soft_bin_cross_entropy(confident, label, np.ones((1, 2, 2, 1), np.float32)).numpy()[0] < 1e-6
