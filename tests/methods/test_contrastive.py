"""The SFA contrastive method (method ``contrastive``, keras_ssl.methods.contrastive):
its loss on hand-made embeddings is 0.5 [y d^2 + (1 - y) max(m - d, 0)^2], and training on
one pair pulls a close pair (y = 1) together and pushes a far pair (y = 0) apart until it is
past the margin, where its loss and gradient are 0."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import Component
from keras_ssl.losses.contrastive import pair_distance
from keras_ssl.pretext.sfa import SFAPairsParams, build_sfa_pairs
from support import as_float, synthetic_digits

SHAPE = (28, 28, 1)


def contrastive(margin=10.0, seed=0, **params):
    keras.utils.set_random_seed(seed)
    encoder = registry.build("encoder", Component("convnet", registry.params_class("encoder", "convnet")(
        filters=(4, 8), output="gap")), SHAPE)
    p = registry.params_class("method", "contrastive")(**{"hidden": 16, "embedding": 8, "dropout": 0.0,
                                                          "init": "glorot", "margin": margin, **params})
    return registry.build("method", Component("contrastive", p), encoder, build_sfa_pairs(SFAPairsParams(), SHAPE))


def test_loss_and_metrics_on_hand_made_embeddings():
    """Pairs at distance 3 and 12 (margin 10), labelled close and far: loss per pair
    0.5 * [y d^2 + (1 - y) max(m - d, 0)^2]; pair_acc 1 when a close pair is nearer than m/2 or
    a far pair farther; the label read is ``similar_label``."""
    m = contrastive(margin=10.0, similar_label="near")
    a = tf.zeros([6, 8])
    b = tf.constant([[3.0] + [0.0] * 7, [0.0, 12.0] + [0.0] * 6, [3.0] + [0.0] * 7,
                     [0.0, 12.0] + [0.0] * 6, [0.0] * 8, [0.0] * 8])      # d = 3, 12, 3, 12, 0, 0
    y = tf.constant([1, 1, 0, 0, 1, 0])
    loss, metrics = m.per_example({"first": a, "second": b}, {"near": y, "close": 1 - y})
    np.testing.assert_allclose(loss.numpy(), [0.5 * 9, 0.5 * 144, 0.5 * 49, 0.0, 0.0, 0.5 * 100], rtol=1e-6)
    np.testing.assert_allclose(metrics["distance"].numpy(), [3, 12, 3, 12, 0, 0], atol=1e-5)
    np.testing.assert_array_equal(metrics["pair_acc"].numpy(), [1, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(metrics["close_frac"].numpy(), y.numpy())
    # The views are compared in either order (a symmetric loss), and the margin is the method's.
    swapped, _ = m.per_example({"first": b, "second": a}, {"near": y})
    np.testing.assert_allclose(swapped.numpy(), loss.numpy(), rtol=1e-6)
    wide, _ = contrastive(margin=20.0).per_example({"first": a, "second": b}, {"close": y})
    np.testing.assert_allclose(wide.numpy()[[2, 3, 5]], [0.5 * 17 ** 2, 0.5 * 8 ** 2, 0.5 * 400], rtol=1e-6)


def one_pair(y):
    """Two different synthetic digits as (first, second), labelled ``close`` = y."""
    images, labels = synthetic_digits(10, seed=4)
    x = as_float(images)
    i, j = int(np.flatnonzero(labels == 2)[0]), int(np.flatnonzero(labels == 7)[0])
    return {"first": x[i:i + 1], "second": x[j:j + 1]}, {"close": tf.constant([y], tf.int32)}


def distance(m, views):
    out = m(views, training=False)
    return float(pair_distance(out["first"], out["second"]).numpy()[0])


def sgd_steps(m, views, labels, n, lr):
    opt = keras.optimizers.SGD(lr)
    d, losses = [], []
    for _ in range(n):
        losses.append(float(m.replica_step(views, labels, opt, 1, 0.0)["loss"]))
        d.append(distance(m, views))
    return d, losses


def test_a_far_pair_is_pushed_past_the_margin_then_left_alone():
    """A pair labelled far, well inside the margin (d0 ~ 0.03, m = 1): every SGD step on it
    alone moves it farther apart, past the margin within 3 steps; there its loss is 0
    (pair_acc 1), and further steps change no weight and leave the distance where it is."""
    m = contrastive(margin=1.0)
    views, labels = one_pair(0)
    d0 = distance(m, views)
    assert d0 < 0.1
    d, losses = sgd_steps(m, views, labels, 6, lr=1.0)
    np.testing.assert_allclose(losses[0], 0.5 * (1.0 - d0) ** 2, rtol=1e-4)   # (m - d)^2 / 2
    crossed = next(i for i, x in enumerate(d) if x >= 1.0)
    assert crossed <= 2
    assert all(b > a for a, b in zip([d0] + d[:crossed], d[:crossed + 1])), (d0, d)   # farther each step
    assert losses[crossed + 1:] == [0.0] * (len(d) - crossed - 1)
    assert d[crossed:] == [d[crossed]] * (len(d) - crossed)           # left alone past the margin
    loss, metrics = m.per_example(m(views, training=False), labels)
    assert float(loss[0]) == 0.0 and float(metrics["pair_acc"][0]) == 1.0
    w = [v.numpy().copy() for v in m.trainable_weights]
    with tf.GradientTape() as tape:
        loss, _ = m.per_example(m(views, training=True), labels)
    grads = tape.gradient(tf.reduce_sum(loss), m.trainable_weights)
    assert all(g is None or not np.any(g.numpy()) for g in grads)     # zero gradient
    sgd_steps(m, views, labels, 1, lr=1.0)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(w, m.trainable_weights))


@pytest.mark.parametrize("apart", [False, True], ids=["fresh", "pushed_apart"])
def test_a_close_pair_is_pulled_together(apart):
    """A pair labelled close gets nearer with every SGD step on it alone, from a fresh
    initialisation (d0 ~ 0.03) and from 1.5 apart (the same pair first trained as far, past
    the margin): the same pair and weights, only the label differs."""
    m = contrastive(margin=1.0)
    views, close = one_pair(1)
    if apart:
        sgd_steps(m, views, one_pair(0)[1], 3, lr=1.0)
    d0 = distance(m, views)
    assert (d0 > 1.0) if apart else (d0 < 0.1)
    d, losses = sgd_steps(m, views, close, 5, lr=0.1 if apart else 2.0)
    assert all(b < a for a, b in zip([d0] + d, d)), (d0, d)           # nearer after every step
    assert d[-1] < (0.3 if apart else 0.6) * d0
    np.testing.assert_allclose(losses[0], 0.5 * d0 ** 2, rtol=1e-4)   # the first step's loss: y d^2 / 2
    assert all(b < a for a, b in zip(losses, losses[1:]))
