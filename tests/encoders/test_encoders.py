import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.config import Component
from keras_ssl.encoders import build_encoder, tap_outputs
from keras_ssl.encoders.bcnn import BCNNParams
from keras_ssl.encoders.convnet import ConvNetParams
from keras_ssl.encoders.layers import GroupedConv2D, LocalResponseNorm, ceil_pool_padding


def test_bcnn_matches_the_thesis_shapes():
    enc = build_encoder(Component("bcnn", BCNNParams()), (28, 28, 1))
    shapes = {l.name: tuple(l.output.shape[1:]) for l in enc.layers}
    assert shapes["conv1"] == (5, 5, 96) and shapes["pool1"] == (2, 2, 96)
    assert shapes["conv2"] == (2, 2, 256) and shapes["pool2"] == (1, 1, 256)
    assert enc.output.shape[-1] == 256 and enc.input.name == "images"
    assert enc.get_layer("conv2").kernel.shape == (5, 5, 48, 256)   # 2 groups
    assert set(enc.taps) <= {l.name for l in enc.layers}


def test_ceil_pool_padding_like_caffe():
    assert ceil_pool_padding(5, 3, 2) == 0      # 5 -> 2
    assert ceil_pool_padding(2, 3, 2) == 1      # 2 -> 1 (floor mode would give 0)
    assert ceil_pool_padding(7, 2, 2) == 1      # 7 -> 4


def test_grouped_conv_equals_keras_grouped_conv():
    x = tf.random.stateless_uniform((2, 4, 4, 8), (0, 1))
    ref = keras.layers.Conv2D(6, 3, padding="same", groups=2)
    ours = GroupedConv2D(6, 3, padding="same", groups=2)
    ref(x), ours(x)
    ours.set_weights(ref.get_weights())
    np.testing.assert_allclose(ours(x), ref(x), atol=1e-5)


@pytest.mark.parametrize("hw,kernel,groups", [((2, 2), 5, 2), ((1, 1), 5, 2), ((3, 3), 3, 1),
                                               ((2, 3), 4, 2), ((4, 4), 5, 4), ((1, 3), 3, 1)])
def test_small_map_matmul_equals_the_convolution(hw, kernel, groups):
    """On a map no larger than the kernel the layer computes a matmul; the values and both
    gradients are those of TensorFlow's convolution ("same" padding, odd and even kernels)."""
    x = tf.random.stateless_normal((3, *hw, 8), (0, 2))
    ref = keras.layers.Conv2D(12, kernel, padding="same", groups=groups)
    ours = GroupedConv2D(12, kernel, padding="same", groups=groups)
    ref(x), ours(x)
    ours.set_weights([w + 0.1 for w in ref.get_weights()])      # any weights, the same in both
    ref.set_weights(ours.get_weights())
    assert ours._small_map(x)
    grads = []
    for layer in (ref, ours):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.sin(y))      # a gradient that differs per output position
        grads.append((y, *tape.gradient(loss, [x, layer.kernel])))
    for a, b in zip(*grads):
        np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4)


def test_small_map_taps_and_when_the_matmul_is_used():
    from keras_ssl.encoders.layers import small_map_taps
    taps = small_map_taps(2, 2, 5, 5)
    # input (0, 0) to output (1, 1): offset (-1, -1) from the kernel's centre (2, 2), tap (1, 1)
    assert taps[0, 3] == 1 * 5 + 1 and taps[3, 0] == 3 * 5 + 3 and np.all(np.diag(taps) == 12)
    assert small_map_taps(1, 3, 1, 3)[0, 2] == 1 * 3     # beyond a 1x3 kernel's reach: "outside"
    enc = build_encoder(Component("bcnn", BCNNParams()), (28, 28, 1))
    conv2 = enc.get_layer("conv2")
    assert conv2._small_map(tf.zeros((1, 2, 2, 96)))                 # the BCNN's conv2 on MNIST
    assert not conv2._small_map(tf.zeros((1, 6, 6, 96)))             # 36 positions > 25 taps
    strided = GroupedConv2D(4, 3, strides=2, padding="same", groups=2)
    assert not strided._small_map(tf.zeros((1, 2, 2, 4)))
    GroupedConv2D.small_map_matmul = False
    try:
        assert not conv2._small_map(tf.zeros((1, 2, 2, 96)))
    finally:
        GroupedConv2D.small_map_matmul = True


def test_lrn_is_caffe_formula():
    x = tf.random.stateless_uniform((1, 1, 1, 7), (2, 3)) * 10
    y = LocalResponseNorm(size=5, alpha=1e-1, beta=0.75)(x).numpy().ravel()
    v = x.numpy().ravel()
    for c in range(7):
        window = v[max(0, c - 2):c + 3]
        expect = v[c] / (1.0 + 1e-1 / 5 * np.sum(window ** 2)) ** 0.75
        assert abs(y[c] - expect) < 1e-4


@pytest.mark.parametrize("comp", [Component("bcnn", BCNNParams()),
                                  Component("convnet", ConvNetParams(filters=(8, 16), batch_norm=True))])
def test_encoder_save_load_round_trip(tmp_path, comp):
    enc = build_encoder(comp, (28, 28, 1))
    x = tf.random.stateless_uniform((3, 28, 28, 1), (4, 5))
    enc.save(tmp_path / "e.keras")
    again = keras.models.load_model(tmp_path / "e.keras")
    np.testing.assert_allclose(again(x), enc(x), atol=1e-6)


def test_tap_outputs_and_unknown_tap():
    enc = build_encoder(Component("convnet", ConvNetParams(filters=(4, 8))), (28, 28, 1))
    outs = tap_outputs(enc, ["pool1", "features"])(tf.zeros((2, 28, 28, 1)))
    assert outs[0].shape == (2, 14 * 14 * 4) and outs[1].shape == (2, 7 * 7 * 8)
    with pytest.raises(ValueError, match="unknown layer 'conv9'.*layers: images"):
        tap_outputs(enc, ["conv9"])


def test_lrn_equals_tensorflow_op():
    x = tf.random.stateless_uniform((3, 2, 2, 96), (6, 7)) * 5
    for beta in (0.75, 0.5, 0.6):
        ours = LocalResponseNorm(size=5, alpha=1e-2, beta=beta)(x)
        ref = tf.nn.local_response_normalization(x, depth_radius=2, bias=1.0, alpha=1e-2 / 5, beta=beta)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_bcnn_multiscale_features_hold_both_blocks():
    enc = build_encoder(Component("bcnn", BCNNParams(features="multiscale")), (28, 28, 1))
    assert enc.output.shape[-1] == 2 * 2 * 96 + 256
    x = tf.random.stateless_uniform((2, 28, 28, 1), (8, 9))
    f = enc(x).numpy()
    n1 = tap_outputs(enc, ["norm1", "norm2"])(x)
    np.testing.assert_allclose(f, np.concatenate([n1[0], n1[1]], 1), atol=1e-6)


def test_alexnet_is_the_thesis_kitti_base_network():
    """C96-P-C256-P-C384-C384-C256-P on a 227 px crop: AlexNet's shapes and its 2,334,080
    convolution parameters (grouped conv2, conv4, conv5), 9,216 features."""
    from keras_ssl.encoders.alexnet import AlexNetParams

    enc = build_encoder(Component("alexnet", AlexNetParams()), (227, 227, 3))
    shapes = {l.name: tuple(l.output.shape[1:]) for l in enc.layers}
    assert shapes["conv1"] == (55, 55, 96) and shapes["pool1"] == (27, 27, 96)
    assert shapes["conv2"] == (27, 27, 256) and shapes["pool2"] == (13, 13, 256)
    assert shapes["conv3"] == (13, 13, 384) and shapes["conv4"] == (13, 13, 384)
    assert shapes["conv5"] == (13, 13, 256) and shapes["pool5"] == (6, 6, 256)
    assert enc.output.shape[-1] == 9216
    by_hand = (11 * 11 * 3 * 96 + 96) + (5 * 5 * 48 * 256 + 256) + (3 * 3 * 256 * 384 + 384) \
        + (3 * 3 * 192 * 384 + 384) + (3 * 3 * 192 * 256 + 256)
    assert enc.count_params() == by_hand == 2_334_080
    assert set(enc.taps) <= {l.name for l in enc.layers}


def test_alexnet_width_and_small_inputs():
    from keras_ssl.encoders.alexnet import AlexNetParams, filters

    assert filters(AlexNetParams(width=0.25)) == [24, 64, 96, 96, 64]
    small = build_encoder(Component("alexnet", AlexNetParams(width=0.25, features="gap", init="he")),
                          (64, 64, 1))
    assert small.output.shape[-1] == 64 and small.get_layer("conv4").kernel.shape == (3, 3, 48, 96)
    x = tf.random.stateless_uniform((2, 64, 64, 1), (0, 1))
    assert np.all(np.isfinite(small(x).numpy())) and float(np.std(small(x).numpy())) > 0
    with pytest.raises(ValueError, match="at least 11x11"):
        build_encoder(Component("alexnet", AlexNetParams()), (8, 8, 1))
    # conv1 at stride 2 on 64 px: 27x27 instead of 14x14, pool5 3x3 instead of 1x1
    fine = build_encoder(Component("alexnet", AlexNetParams(width=0.25, conv1_stride=2)), (64, 64, 3))
    shapes = {l.name: tuple(l.output.shape[1:]) for l in fine.layers}
    assert shapes["conv1"] == (27, 27, 24) and shapes["pool5"] == (3, 3, 64)
    assert fine.output.shape[-1] == 3 * 3 * 64
