"""The masked reconstruction loss of the context encoder (Pathak et al. 2016, eq. 1):
keras_ssl.losses.reconstruction_loss with ``mask``, against NumPy; the unmasked call
(the autoencoder's) is unchanged."""
import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.losses import reconstruction_loss


def _data(seed=0, n=4, h=6, w=5, c=2):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, h, w, c)).astype(np.float32)
    target = rng.random((n, h, w, c)).astype(np.float32)
    mask = (rng.random((n, h, w, 1)) < 0.3).astype(np.float32)
    mask[0] = 0.0                           # an example with nothing removed
    mask[1, 0, 0] = 1.0                     # at least one removed pixel
    return logits, target, mask


def _numpy_loss(logits, target, mask, kind, context_weight=0.0):
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    if kind == "mse":
        per = (p - target) ** 2
    else:
        per = -(target * np.log(p) + (1 - target) * np.log(1 - p))
    m = np.broadcast_to(mask, per.shape)
    w = m + context_weight * (1 - m)
    return (w * per).sum(axis=(1, 2, 3)) / np.maximum(m.sum(axis=(1, 2, 3)), 1)


@pytest.mark.parametrize("kind", ["mse", "bce"])
@pytest.mark.parametrize("context_weight", [0.0, 0.1])
def test_masked_loss_equals_numpy(kind, context_weight):
    logits, target, mask = _data()
    got = reconstruction_loss(logits, target, kind, mask=mask, context_weight=context_weight).numpy()
    assert got.shape == (4,) and got.dtype == np.float32
    np.testing.assert_allclose(got, _numpy_loss(logits, target, mask, kind, context_weight), rtol=1e-4, atol=1e-6)
    if context_weight == 0.0:
        assert got[0] == 0.0                                      # nothing removed: no loss


def test_a_mask_of_every_channel_equals_the_one_channel_mask():
    logits, target, mask = _data()
    one = reconstruction_loss(logits, target, "mse", mask=mask).numpy()
    full = reconstruction_loss(logits, target, "mse", mask=np.repeat(mask, 2, axis=-1)).numpy()
    np.testing.assert_allclose(one, full, rtol=1e-6)


def test_only_the_masked_pixels_count():
    logits, target, mask = _data()
    base = reconstruction_loss(logits, target, "mse", mask=mask).numpy()
    outside = logits + 5.0 * (1 - mask)                           # changed on the context only
    np.testing.assert_array_equal(reconstruction_loss(outside, target, "mse", mask=mask).numpy(), base)
    inside = logits + 5.0 * mask                                  # changed on the removed pixels
    changed = reconstruction_loss(inside, target, "mse", mask=mask).numpy()
    assert np.all(changed[1:] != base[1:]) and changed[0] == base[0] == 0.0
    # ...and the gradient is zero on the context
    x = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(reconstruction_loss(x, target, "mse", mask=mask))
    g = tape.gradient(loss, x).numpy()
    assert np.all(g[np.broadcast_to(mask, g.shape) == 0] == 0)
    assert np.any(g[np.broadcast_to(mask, g.shape) == 1] != 0)


def test_a_full_mask_is_the_autoencoder_loss_and_no_mask_is_unchanged():
    logits, target, _ = _data()
    ones = np.ones(logits.shape[:3] + (1,), np.float32)
    for kind in ("mse", "bce"):
        plain = reconstruction_loss(logits, target, kind).numpy()
        np.testing.assert_allclose(reconstruction_loss(logits, target, kind, mask=ones).numpy(), plain, rtol=1e-5)
        p = 1 / (1 + np.exp(-logits.astype(np.float64)))
        per = (p - target) ** 2 if kind == "mse" else -(target * np.log(p) + (1 - target) * np.log(1 - p))
        np.testing.assert_allclose(plain, per.mean(axis=(1, 2, 3)), rtol=1e-4)


def test_bad_arguments_are_refused():
    logits, target, mask = _data()
    with pytest.raises(ValueError, match="context_weight must be >= 0"):
        reconstruction_loss(logits, target, "mse", mask=mask, context_weight=-1.0)
    with pytest.raises(ValueError, match="unknown reconstruction loss"):
        reconstruction_loss(logits, target, "l1", mask=mask)
