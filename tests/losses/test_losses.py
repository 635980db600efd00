import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.losses import contrastive_loss, pair_distance, reconstruction_loss


def t(x):
    return tf.constant(x, tf.float32)


def test_contrastive_known_values():
    a, b = t([[0.0, 0.0], [0.0, 0.0]]), t([[3.0, 4.0], [3.0, 4.0]])   # d = 5
    per = contrastive_loss(a, b, t([1, 0]), margin=10.0).numpy()
    assert np.allclose(per, [0.5 * 25, 0.5 * 25])                      # y d^2 / 2, (m - d)^2 / 2
    assert np.isclose(contrastive_loss(a, b, t([1, 0]), 10.0, reduce=True).numpy(), 12.5)
    assert np.allclose(pair_distance(a, b).numpy(), [5.0, 5.0])


def test_contrastive_zero_for_identical_close_pairs_with_zero_gradient():
    a = tf.Variable([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]])
    with tf.GradientTape() as tape:
        loss = contrastive_loss(a, tf.identity(a), t([1, 1]), margin=10.0, reduce=True)
    g = tape.gradient(loss, a)
    assert loss.numpy() == 0.0
    assert np.all(np.isfinite(g.numpy())) and np.allclose(g.numpy(), 0.0)


def test_contrastive_zero_for_far_pairs_beyond_the_margin():
    a, b = t([[0.0, 0.0], [1.0, 1.0]]), t([[10.0, 0.0], [20.0, 1.0]])   # d = 10 (= m), 19
    assert np.allclose(contrastive_loss(a, b, t([0, 0]), margin=10.0).numpy(), 0.0)
    # ...but not when the same pairs are close.
    assert np.all(contrastive_loss(a, b, t([1, 1]), margin=10.0).numpy() > 0)


def _distance_after_step(y, margin=10.0, lr=0.01):
    a = tf.Variable([[0.0, 0.0]])
    b = tf.Variable([[1.0, 2.0]])
    with tf.GradientTape() as tape:
        loss = contrastive_loss(a, b, t([y]), margin, reduce=True)
    ga, gb = tape.gradient(loss, [a, b])
    before = pair_distance(a, b).numpy()[0]
    a.assign_sub(lr * ga)
    b.assign_sub(lr * gb)
    return before, pair_distance(a, b).numpy()[0]


def test_gradient_pushes_far_pairs_apart_and_pulls_close_pairs_together():
    before, after = _distance_after_step(0)
    assert after > before
    before, after = _distance_after_step(1)
    assert after < before


def test_identical_far_pair_has_finite_loss_and_gradient():
    a = tf.Variable([[0.5, 0.5]])
    with tf.GradientTape() as tape:
        loss = contrastive_loss(a, tf.constant([[0.5, 0.5]]), t([0]), margin=2.0, reduce=True)
    g = tape.gradient(loss, a)
    assert np.isclose(loss.numpy(), 0.5 * 4.0)
    assert np.all(np.isfinite(g.numpy()))


def test_reconstruction_loss_prefers_the_target():
    target = t(np.random.default_rng(0).integers(0, 2, (4, 6, 6, 1)))
    good = (target * 2.0 - 1.0) * 20.0        # logits that saturate towards the target
    bad = -good
    for kind in ("bce", "mse"):
        lg = reconstruction_loss(good, target, kind).numpy()
        lb = reconstruction_loss(bad, target, kind).numpy()
        assert lg.shape == (4,) and np.all(lg < 1e-6) and np.all(lb > 0.9 * (1.0 if kind == "mse" else 10.0))
    with pytest.raises(ValueError, match="unknown reconstruction loss"):
        reconstruction_loss(good, target, "l1")
