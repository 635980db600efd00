"""PIRL (keras_ssl.methods.pirl) against its documented formulas: the memory bank is
written from the image branch f(v_I), never from the transformed branch g(v_It), and
``transform_weight`` is lambda of L = lambda L_NCE(m_I, g(v_It)) + (1 - lambda) L_NCE(m_I, f(v_I))."""
import numpy as np
import pytest
import tensorflow as tf

import support
from keras_ssl import registry
from keras_ssl.data.pipeline import pretext_batches
from keras_ssl.losses.nce import nce_loss
from keras_ssl.methods.base import DatasetFacts
from support import as_float, sample, synthetic_digits

N_IMAGES = 16
SHAPE = (28, 28, 1)
#: An asymmetric momentum: m and 1 - m swapped would write a different entry.
MOMENTUM = 0.25


def pirl_cfg(transform="rotation", **method):
    return support.small_cfg({"name": "pirl", "negatives": 12, "embedding": 16, "momentum": MOMENTUM,
                              **method},
                             {"name": "pirl", "transform": transform}, seed=3, steps=1,
                             steps_per_execution=1, batch_size=8, sample_examples=0,
                             weight_decay=0.0, momentum=0.0, learning_rate=0.5)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("transform", ["rotation",
                                       {"name": "jigsaw", "grid": 2, "region_px": 20, "tile_px": 8,
                                        "permutations": 6}], ids=["rotation", "jigsaw"])
def test_bank_is_written_from_the_image_branch(tmp_path, transform):
    """One training step: the entry of every image of the batch becomes
    normalize(m * old + (1 - m) * f(v_I)), f(v_I) the image branch's embedding of the
    step's batch (the forward pass the step differentiates, i.e. before the update; the
    mean of f(v_I) over the copies of an image drawn twice), and not the same with g(v_It);
    every other entry is left as it was."""
    images, _ = synthetic_digits(N_IMAGES)
    cfg = pirl_cfg(transform)
    t = support.trainer(cfg, tmp_path, num_images=N_IMAGES)
    old = t.method.bank.entries.numpy().copy()
    # The step's batch, drawn as the trainer draws it (same images, pretext, batch size, seed).
    views, labels = next(iter(pretext_batches(images, t.pretext, cfg.train.batch_size, cfg.seed, 0, 1)))
    index = labels["index"].numpy()
    out = {k: v.numpy() for k, v in t.method(views, training=True).items()}
    f, g = out["image"], out["transformed"]
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-5)
    assert np.min(np.linalg.norm(f - g, axis=1)) > 0.1, "the two branches must differ for the test to tell"
    rows = np.unique(index)
    assert len(rows) < len(index), "this seed draws an image twice (images are drawn with replacement)"

    def written(emb, m=MOMENTUM):
        mean = np.stack([emb[index == i].mean(0) for i in rows])
        return unit(m * old[rows] + (1 - m) * mean)

    t.train(images)
    assert int(t.step.numpy()) == 1
    new = t.method.bank.entries.numpy()
    np.testing.assert_allclose(new[rows], written(f), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(new, axis=1), 1.0, rtol=1e-5)
    # Not from the transformed branch, not with m and 1 - m swapped, not replaced outright.
    for wrong in (written(g), written(f, 1 - MOMENTUM), written(f, 0.0)):
        assert np.min(np.linalg.norm(new[rows] - wrong, axis=1)) > 1e-2
    # Not from the embedding after the step either (the step did move the weights).
    after = t.method(views, training=True)["image"].numpy()
    assert np.min(np.linalg.norm(new[rows] - written(after), axis=1)) > 1e-3
    others = np.setdiff1d(np.arange(N_IMAGES), rows)
    np.testing.assert_array_equal(new[others], old[others])


def build_pirl(transform_weight, pretext, loss="nce"):
    """A PIRL method on a fresh tiny convnet (bank_seed 0: the same initial bank every time)."""
    cfg = pirl_cfg(transform_weight=transform_weight, loss=loss)
    encoder = registry.build("encoder", cfg.encoder, SHAPE)
    return registry.build("method", cfg.method, encoder, pretext, facts=DatasetFacts(N_IMAGES))


@pytest.mark.parametrize("loss", ["nce", "softmax"])
def test_transform_weight_is_lambda_of_paper_eq_5(loss):
    """per_example's loss == w * L_NCE(m_I, g(v_It)) + (1 - w) * L_NCE(m_I, f(v_I)) for
    w = 0.3 and 0.8 (and the pure terms at 0 and 1), every term scored against the
    image's own bank entry and the batch's negatives (drawn from the batch seed, the own
    entry masked out); the instance metrics score each branch alone."""
    pretext = registry.build("pretext", pirl_cfg().pretext, SHAPE)
    x = as_float(synthetic_digits(N_IMAGES)[0][:8])
    methods = {w: build_pirl(w, pretext, loss) for w in (0.0, 0.3, 0.8, 1.0)}
    views, labels = sample(pretext, x, seed=(4, 5))
    labels["index"] = tf.constant([3, 9, 0, 15, 7, 1, 12, 5], tf.int64)   # any indices: their entries
    outputs = methods[0.3](views, training=False)                       # one set of embeddings for all
    m = methods[0.3]
    p = m.params
    bank = m.bank
    neg_index, negatives = bank.sample(p.negatives, labels["seed"][0])
    positive = bank.read(labels["index"])
    exclude = labels["index"][:, None] == neg_index[None, :]
    l_g = nce_loss(outputs["transformed"], positive, negatives, p.temperature, loss, exclude).numpy()
    l_f = nce_loss(outputs["image"], positive, negatives, p.temperature, loss, exclude).numpy()
    assert np.min(np.abs(l_g - l_f)) > 1e-3, "the two terms must differ for the test to tell"
    totals = {}
    for w, method in methods.items():
        np.testing.assert_array_equal(method.bank.entries.numpy(), bank.entries.numpy())
        total, metrics = method.per_example(outputs, labels)
        totals[w] = total.numpy()
        np.testing.assert_allclose(totals[w], w * l_g + (1 - w) * l_f, rtol=1e-5, atol=1e-6)
        for branch in ("image", "transformed"):
            np.testing.assert_allclose(metrics[f"{branch}_pos_sim"],
                                       np.sum(outputs[branch].numpy() * positive.numpy(), -1),
                                       rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(totals[0.0], l_f, rtol=1e-6)
    np.testing.assert_allclose(totals[1.0], l_g, rtol=1e-6)
    # Linear in w: the change from 0.3 to 0.8 is 0.5 * (L_g - L_f).
    np.testing.assert_allclose(totals[0.8] - totals[0.3], 0.5 * (l_g - l_f), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("weight,frozen", [(1.0, "image_embedding_proj"),
                                           (0.0, "transformed_embedding_proj")])
def test_a_branch_weighted_zero_gets_no_gradient(tmp_path, weight, frozen):
    """Through training: with transform_weight 1 the image branch's projection does not
    move (only L(g(v_It)) is trained); with 0 the transformed branch's does not; the other
    projection and the shared encoder move (SGD, no weight decay)."""
    images, _ = synthetic_digits(N_IMAGES)
    t = support.trainer(pirl_cfg(transform_weight=weight), tmp_path, num_images=N_IMAGES)
    variables = t.method.trainable_weights
    before = [w.numpy().copy() for w in variables]
    t.train(images)
    still = {v.path for v, w0 in zip(variables, before) if np.array_equal(v.numpy(), w0)}
    assert still == {f"{frozen}/kernel", f"{frozen}/bias"}
    assert {w.path for w in t.encoder.trainable_weights}.isdisjoint(still)     # the encoder trained
