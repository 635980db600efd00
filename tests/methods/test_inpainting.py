"""The context encoder (method ``inpainting``, Pathak et al. 2016): its loss counts the
removed region only and equals a NumPy computation; the adversarial term and pretexts
without a mask are refused; the decoder it shares with the autoencoder is unchanged.
The harness row: tests/methods/test_method_harness.py."""
import numpy as np
import pytest
import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import Component, ConfigError, config_from_dict
from keras_ssl.methods.inpainting import ContextEncoderParams
from keras_ssl.pretext.inpainting import InpaintingParams, build_inpainting
from keras_ssl.pretext.reconstruction import ReconstructionParams, build_reconstruction
from keras_ssl.pretext.sfa import SFAPairsParams, build_sfa_pairs
from support import as_float, sample

SHAPE = (28, 28, 1)


def _encoder():
    return registry.build("encoder", Component("convnet", registry.params_class("encoder", "convnet")(
        filters=(4, 8), output="gap")), SHAPE)


def _method(pretext, **params):
    return registry.build("method", Component("inpainting", ContextEncoderParams(channels=8, **params)),
                          _encoder(), pretext)


def _batch(digits, mode="random_blocks", n=6):
    pre = build_inpainting(InpaintingParams(mask=mode, fill=0.5), SHAPE)
    views, labels = sample(pre, as_float(digits(n)[0]))
    return pre, views, labels


def _numpy_loss(logits, target, mask, context_weight=0.0):
    per = (1 / (1 + np.exp(-logits.astype(np.float64))) - target) ** 2
    w = mask + context_weight * (1 - mask)
    return (w * per).sum(axis=(1, 2, 3)) / mask.sum(axis=(1, 2, 3))


@pytest.mark.parametrize("mode", ["center", "random_blocks"])
@pytest.mark.parametrize("context_weight", [0.0, 0.05])
def test_loss_equals_numpy(digits, mode, context_weight):
    pre, views, labels = _batch(digits, mode)
    m = _method(pre, context_weight=context_weight)
    outputs = m(views, training=False)
    loss, metrics = m.per_example(outputs, labels)
    logits, target, mask = (np.asarray(a) for a in (outputs["reconstruction"], labels["target"], labels["mask"]))
    np.testing.assert_allclose(loss.numpy(), _numpy_loss(logits, target, mask, context_weight), rtol=1e-4)
    sq = (1 / (1 + np.exp(-logits.astype(np.float64))) - target) ** 2
    np.testing.assert_allclose(metrics["masked_mse"].numpy(), (mask * sq).sum((1, 2, 3)) / mask.sum((1, 2, 3)),
                               rtol=1e-4)
    np.testing.assert_allclose(metrics["context_mse"].numpy(),
                               ((1 - mask) * sq).sum((1, 2, 3)) / (1 - mask).sum((1, 2, 3)), rtol=1e-4)
    np.testing.assert_allclose(metrics["mask_frac"].numpy(), mask.mean((1, 2, 3)), rtol=1e-6)
    if context_weight == 0.0:
        np.testing.assert_allclose(loss.numpy(), metrics["masked_mse"].numpy(), rtol=1e-6)


def test_only_the_removed_region_is_in_the_loss(digits):
    pre, views, labels = _batch(digits)
    m = _method(pre)
    logits = m(views, training=False)["reconstruction"]
    mask = labels["mask"]
    base = m.per_example({"reconstruction": logits}, labels)[0].numpy()
    noise = tf.random.stateless_normal(tf.shape(logits), (7, 8), stddev=3.0)
    outside = m.per_example({"reconstruction": logits + noise * (1 - mask)}, labels)[0].numpy()
    inside = m.per_example({"reconstruction": logits + noise * mask}, labels)[0].numpy()
    np.testing.assert_array_equal(outside, base)
    assert np.all(np.abs(inside - base) > 1e-6)
    # with a context weight, the context counts too
    weighted = _method(pre, context_weight=0.1)
    wb = weighted.per_example({"reconstruction": logits}, labels)[0].numpy()
    wo = weighted.per_example({"reconstruction": logits + noise * (1 - mask)}, labels)[0].numpy()
    assert np.all(np.abs(wo - wb) > 1e-6)


def test_the_loss_reaches_the_encoder_through_the_removed_region_only(digits):
    """Zero loss gradient on the logits of the context; nonzero on the removed pixels."""
    pre, views, labels = _batch(digits)
    m = _method(pre)
    with tf.GradientTape() as tape:
        out = m(views, training=True)
        tape.watch(out["reconstruction"])
        loss = tf.reduce_sum(m.per_example(out, labels)[0])
    g_logits, = tape.gradient(loss, [out["reconstruction"]])
    mask = labels["mask"].numpy() == 1
    assert np.all(g_logits.numpy()[~mask] == 0) and np.any(g_logits.numpy()[mask] != 0)


def test_adversarial_term_is_refused():
    with pytest.raises(ValueError, match="adversarial_weight=0.5: the adversarial term is not implemented"):
        _method(build_inpainting(InpaintingParams(), SHAPE), adversarial_weight=0.5)
    raw = {"name": "x", "encoder": "convnet", "pretext": "inpainting",
           "method": {"name": "inpainting", "adversarial_weight": 0.001}}
    with pytest.raises(ConfigError, match="'method'.*adversarial term is not implemented"):
        config_from_dict(raw, "t.json")


def test_pretexts_it_cannot_use_are_refused(digits):
    with pytest.raises(ValueError, match="one view"):
        _method(build_sfa_pairs(SFAPairsParams(), SHAPE))
    pre = build_reconstruction(ReconstructionParams(), SHAPE)     # one view, but no mask
    m = _method(pre)
    views, labels = sample(pre, as_float(digits(4)[0]))
    with pytest.raises(ValueError, match=r"needs label 'mask' \(pretext 'inpainting'\)"):
        m.per_example(m(views, training=False), labels)


def test_the_shared_decoder_keeps_the_autoencoders_layers():
    """The autoencoder after factoring out conv_decoder: the same layers, shapes and outputs."""
    pre = build_reconstruction(ReconstructionParams(), SHAPE)
    ae = registry.build("method", Component("autoencoder", registry.params_class("method", "autoencoder")(
        channels=8, hidden=16)), _encoder(), pre)
    heads = [(layer.name, [tuple(w.shape) for w in layer.weights]) for layer in ae.network.layers
             if layer.name.startswith("dec_")]
    assert heads == [("dec_hidden", [(8, 16), (16,)]), ("dec_map", [(16, 392), (392,)]),
                     ("dec_reshape", []), ("dec_up1", [(4, 4, 4, 8), (4,)]), ("dec_up2", [(4, 4, 1, 4), (1,)])]
    ci = _method(build_inpainting(InpaintingParams(), SHAPE), hidden=16)
    assert [(layer.name, [tuple(w.shape) for w in layer.weights]) for layer in ci.network.layers
            if layer.name.startswith("dec_")] == heads
