"""NCE loss against a memory bank: behaviour, not shapes."""
import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.losses.nce import instance_accuracy, nce_loss, similarity_logits


def unit(x):
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def bank_case(b=8, k=64, d=16, seed=0):
    rng = np.random.default_rng(seed)
    memory = unit(rng.standard_normal((b, d)))
    negatives = unit(rng.standard_normal((k, d)))
    return memory, negatives


@pytest.mark.parametrize("kind", ["nce", "softmax"])
def test_matching_positive_beats_mismatched(kind):
    memory, negatives = bank_case()
    matched = nce_loss(memory, memory, negatives, 0.07, kind)           # query == its memory
    mismatched = nce_loss(memory, np.roll(memory, 1, axis=0), negatives, 0.07, kind)
    assert matched.shape == (8,)
    assert np.all(matched.numpy() < mismatched.numpy())
    assert float(tf.reduce_mean(mismatched)) > float(tf.reduce_mean(matched)) + 2.0
    # softmax: the right positive costs ~0; nce: the K noise terms sum to about
    # sum_k h(n_k) ~ 1 however far the negatives are (Z is estimated from them).
    assert float(tf.reduce_max(matched)) < (0.1 if kind == "softmax" else 1.1)


def test_softmax_is_cross_entropy_over_positive_and_negatives():
    memory, negatives = bank_case()
    rng = np.random.default_rng(1)
    q = unit(memory + 0.5 * rng.standard_normal(memory.shape))
    t = 0.2
    logits = np.concatenate([np.sum(q * memory, -1, keepdims=True), q @ negatives.T], axis=1) / t
    expected = -logits[:, 0] + np.log(np.sum(np.exp(logits), axis=1))
    np.testing.assert_allclose(nce_loss(q, memory, negatives, t, "softmax"), expected, rtol=1e-5)


def test_nce_matches_papers_formula_with_monte_carlo_z():
    """h = P/(P + K/N), P = exp(s)/Z, Z = N mean_k exp(s_k) (NPID eq. 6)."""
    memory, negatives = bank_case(b=4, k=32)
    rng = np.random.default_rng(2)
    q = unit(memory + 0.7 * rng.standard_normal(memory.shape))
    t, n_bank, k = 0.1, 1000, 32
    s_pos = np.sum(q * memory, -1) / t
    s_neg = q @ negatives.T / t
    z = n_bank * np.mean(np.exp(s_neg), axis=1)
    h = lambda s: (np.exp(s) / z[:, None]) / (np.exp(s) / z[:, None] + k / n_bank)  # noqa: E731
    expected = -np.log(h(s_pos[:, None])[:, 0]) - np.sum(np.log(1 - h(s_neg)), axis=1)
    np.testing.assert_allclose(nce_loss(q, memory, negatives, t, "nce"), expected, rtol=1e-4)


@pytest.mark.parametrize("kind", ["nce", "softmax"])
def test_temperature_scales_similarities(kind):
    memory, negatives = bank_case()
    rng = np.random.default_rng(3)
    q = unit(memory + 0.3 * rng.standard_normal(memory.shape))
    # Dividing the temperature by c is the same as scaling the scores by c.
    np.testing.assert_allclose(nce_loss(q, memory, negatives, 0.07, kind),
                               nce_loss(2.0 * q, memory, negatives, 0.14, kind), rtol=1e-5)
    # A lower temperature sharpens: a right positive costs less, a wrong one more.
    assert np.all(nce_loss(memory, memory, negatives, 0.07, kind).numpy()
                  < nce_loss(memory, memory, negatives, 0.5, kind).numpy())
    wrong = -memory
    assert np.all(nce_loss(wrong, memory, negatives, 0.07, kind).numpy()
                  > nce_loss(wrong, memory, negatives, 0.5, kind).numpy())


@pytest.mark.parametrize("kind", ["nce", "softmax"])
def test_gradient_pulls_query_to_its_memory(kind):
    memory, negatives = bank_case()
    rng = np.random.default_rng(4)
    q = tf.Variable(unit(memory + 1.0 * rng.standard_normal(memory.shape)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(nce_loss(q, memory, negatives, 0.1, kind))
    g = tape.gradient(loss, q).numpy()
    # A small step against the gradient raises the query's similarity to its memory.
    step = q.numpy() - 1e-3 * g
    assert np.all(np.sum(unit(step) * memory, -1) > np.sum(q.numpy() * memory, -1))


def test_excluded_negatives_do_not_count():
    memory, negatives = bank_case(b=2, k=4)
    neg = np.concatenate([negatives, memory[:1]])            # query 0's own entry drawn as a negative
    exclude = np.zeros((2, 5), bool)
    exclude[0, 4] = True
    for kind in ("nce", "softmax"):
        masked = nce_loss(memory, memory, neg, 0.07, kind, exclude).numpy()
        clean = nce_loss(memory, memory, negatives, 0.07, kind).numpy()
        np.testing.assert_allclose(masked[0], clean[0], rtol=1e-5)
        assert nce_loss(memory, memory, neg, 0.07, kind).numpy()[0] > masked[0] + 0.5   # ~log 2: the own entry ties the positive
    acc = instance_accuracy(memory, memory, neg, exclude).numpy()
    assert acc[0] == 1.0 and instance_accuracy(memory, memory, neg).numpy()[0] == 0.0


def test_per_query_negatives_equal_shared_ones():
    memory, negatives = bank_case(b=3, k=5)
    shared = similarity_logits(memory, memory, negatives, 0.5)[1]
    per_query = similarity_logits(memory, memory, np.broadcast_to(negatives, (3, 5, 16)), 0.5)[1]
    np.testing.assert_allclose(shared, per_query, rtol=1e-6)


def test_bad_arguments_fail_clearly():
    memory, negatives = bank_case(b=2, k=3)
    with pytest.raises(ValueError, match="unknown NCE loss kind"):
        nce_loss(memory, memory, negatives, kind="infonce")
    with pytest.raises(ValueError, match="temperature"):
        nce_loss(memory, memory, negatives, temperature=0.0)
