"""MoCo's InfoNCE against a queue (keras_ssl.losses.infonce): NumPy values, the
gradient, edge cases."""
import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.losses.infonce import moco_infonce, moco_logits, queue_accuracy
from keras_ssl.losses.nce import nce_loss


def unit(x):
    x = np.asarray(x, np.float64)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def case(b=6, k=50, d=12, seed=0):
    rng = np.random.default_rng(seed)
    key = unit(rng.standard_normal((b, d)))
    query = unit(key + 0.7 * rng.standard_normal((b, d)))
    queue = unit(rng.standard_normal((k, d)))
    return query, key, queue


def numpy_infonce(q, k, queue, t):
    q, k, queue = (np.asarray(x, np.float64) for x in (q, k, queue))
    logits = np.concatenate([np.sum(q * k, -1, keepdims=True), q @ queue.T], axis=1) / t
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.sum(np.exp(logits - m), axis=1))
    return logits, lse - logits[:, 0]


@pytest.mark.parametrize("t", [0.07, 0.2, 1.0])
def test_matches_numpy(t):
    q, k, queue = case()
    logits, expected = numpy_infonce(q, k, queue, t)
    got = moco_logits(q, k, queue, t)
    assert got.dtype == tf.float32 and tuple(got.shape) == (6, 51)
    np.testing.assert_allclose(got.numpy(), logits, rtol=1e-5, atol=1e-5)
    loss = moco_infonce(q, k, queue, t)
    assert loss.dtype == tf.float32 and tuple(loss.shape) == (6,)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5, atol=1e-5)
    # the same number as the memory bank's softmax NCE with one shared set of negatives
    np.testing.assert_allclose(loss.numpy(), nce_loss(q, k, queue, t, "softmax").numpy(), rtol=1e-5, atol=1e-6)


def test_gradient_with_respect_to_the_query():
    """dL/dq_i = (sum_j p_ij x_j - k_i) / tau, x_0 = k_i, x_j = n_j, p = softmax(logits)."""
    q, k, queue = case(b=3, k=7, d=5, seed=2)
    t = 0.2
    qv = tf.Variable(q)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(moco_infonce(qv, k, queue, t))
    grad = tape.gradient(loss, qv).numpy()
    logits, _ = numpy_infonce(q, k, queue, t)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    x = np.concatenate([k[:, None, :], np.broadcast_to(queue, (3, 7, 5))], axis=1)     # [B, 1+K, D]
    expected = (np.einsum("bj,bjd->bd", p, x) - k) / t
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)


def test_keys_under_stop_gradient_get_none():
    q, k, queue = case()
    kv, qu = tf.Variable(k), tf.Variable(queue)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(moco_infonce(q, tf.stop_gradient(kv), tf.stop_gradient(qu)))
    assert tape.gradient(loss, [kv, qu]) == [None, None]


def test_edge_cases():
    q, k, queue = case()
    # the key equal to the query, far from the queue: loss ~ 0, accuracy 1
    far = -np.repeat(q[:1], 4, axis=0)
    aligned = moco_infonce(q[:1], q[:1], far, 0.07).numpy()
    assert aligned[0] < 1e-6
    assert queue_accuracy(q[:1], q[:1], far).numpy().tolist() == [1.0]
    # the key one of the queue's rows: a tie, not a hit; the loss is at least log 2
    tie = np.concatenate([k[:1], queue[:3]])
    assert queue_accuracy(q[:1], k[:1], tie).numpy().tolist() == [0.0]
    assert moco_infonce(q[:1], k[:1], tie, 0.2).numpy()[0] >= np.log(2.0) - 1e-6
    # every key equal: log(1 + K), whatever the query
    same = np.repeat(k[:1], 9, axis=0)
    np.testing.assert_allclose(moco_infonce(q[:1], k[:1], same, 0.2).numpy(), [np.log(10.0)], rtol=1e-6)
    # a queue of one key: two-way classification
    np.testing.assert_allclose(moco_infonce(q, k, queue[:1], 0.5).numpy(),
                               numpy_infonce(q, k, queue[:1], 0.5)[1], rtol=1e-5)
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            moco_infonce(q, k, queue, bad)
