"""The methods on the pretexts they need (keras_ssl.methods): per-example loss and
metrics, and a clear refusal of a pretext of the wrong shape. Every registered
method also passes tests/methods/test_method_harness.py."""
import numpy as np
import pytest
import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import Component
from keras_ssl.pretext.rotation import RotationParams, build_rotation
from keras_ssl.pretext.sfa import SFAPairsParams, build_sfa_pairs
from support import as_float, sample

SHAPE = (28, 28, 1)


def _encoder():
    return registry.build("encoder", Component("convnet", registry.params_class("encoder", "convnet")(
        filters=(4, 8), output="gap")), SHAPE)


@pytest.mark.parametrize("pretext,method,params,metric", [
    ("sfa_pairs", "contrastive", {"margin": 10.0, "hidden": 16, "embedding": 8}, "pair_acc"),
    ("reconstruction", "autoencoder", {"channels": 8}, "mse"),
    ("relative_position", "classify", {"hidden": 16}, "position_acc"),
])
def test_method_per_example_loss_and_metrics(digits, pretext, method, params, metric):
    x = as_float(digits(6)[0])
    pre = registry.build("pretext", Component(pretext, registry.params_class("pretext", pretext)()), SHAPE)
    m = registry.build("method", Component(method, registry.params_class("method", method)(**params)),
                       _encoder(), pre)
    views, labels = sample(pre, x)
    loss, metrics = m.per_example(m(views, training=False), labels)
    assert loss.shape == (6,) and np.all(np.isfinite(loss.numpy())) and metrics[metric].shape == (6,)


def test_methods_refuse_pretexts_of_the_wrong_shape():
    rot = build_rotation(RotationParams(), SHAPE)
    with pytest.raises(ValueError, match="2 views"):
        registry.build("method", Component("contrastive", registry.params_class("method", "contrastive")()),
                       _encoder(), rot)
    with pytest.raises(ValueError, match="classification targets"):
        registry.build("method", Component("classify", registry.params_class("method", "classify")()),
                       _encoder(), build_sfa_pairs(SFAPairsParams(), SHAPE))


def test_classify_conv_top_sees_both_views_maps_side_by_side():
    """top_convs: 3x3 convolutions on the two towers' pool5 maps concatenated along the
    channels (the thesis's KITTI TCNN C256-C128-F500), one shared encoder."""
    from keras_ssl import registry
    from keras_ssl.config import Component
    from keras_ssl.encoders import build_encoder
    from keras_ssl.encoders.alexnet import AlexNetParams
    from keras_ssl.methods.classify import ClassifyParams
    from keras_ssl.pretext.egomotion import EgomotionParams

    enc = build_encoder(Component("alexnet", AlexNetParams(width=0.25, init="he")), (96, 96, 1))
    assert enc.get_layer("pool5").output.shape[1:] == (2, 2, 64)
    pretext = registry.build("pretext", Component("egomotion", EgomotionParams()), (96, 96, 1))
    m = registry.build("method", Component("classify", ClassifyParams(hidden=32, top_convs=(16, 8),
                                                                      init="glorot")), enc, pretext)
    net = m.network
    assert net.get_layer("top_conv1").kernel.shape == (3, 3, 2 * 64, 16)      # both views' channels
    assert net.get_layer("top_conv2").kernel.shape == (3, 3, 16, 8)
    assert net.get_layer("top").kernel.shape == (2 * 2 * 8, 32)              # the map flattened
    x = tf.random.stateless_uniform((2, 96, 96, 1), (0, 1))
    y = tf.random.stateless_uniform((2, 96, 96, 1), (2, 3))
    a = net({"first": x, "second": x})["tx"].numpy()
    b = net({"first": x, "second": y})["tx"].numpy()
    assert not np.allclose(a, b)                                             # the second view counts
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(net({"first": x, "second": y})["rz"])
    g = tape.gradient(loss, enc.get_layer("conv1").kernel)
    assert g is not None and float(tf.reduce_max(tf.abs(g))) > 0             # the towers train
    gap = build_encoder(Component("alexnet", AlexNetParams(width=0.25, features="gap")), (96, 96, 1))
    with pytest.raises(ValueError, match="top_convs needs an encoder"):
        registry.build("method", Component("classify", ClassifyParams(top_convs=(8,))), gap, pretext)
