"""Colorization and split-brain beyond the harness: targets, rebalancing, what each
input carries, the evaluated encoder, and a short run that lowers the loss."""
import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage.color import lab2rgb

from keras_ssl.colour import bins as cb
from keras_ssl.encoders import INPUT_LAYER, build_encoder, input_transform_of
from support import TINY_CONVNET, sample, small_cfg, synthetic_digits, trainer

SIZE = 16
DATA = {"image_size": SIZE, "channels": 3}
SPLIT_ENCODER = {"name": "channel_split", "encoder": TINY_CONVNET}


def colour_images(n, seed=0):
    """uint8 RGB [n, 16, 16, 3]: the synthetic bars tinted by class (the colour follows the shape)."""
    gray, labels = synthetic_digits(n, size=SIZE, channels=1, seed=seed, classes=4)
    tints = np.array([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.3, 1.0], [1.0, 0.9, 0.1]])
    x = gray.astype(np.float32) / 255.0 * tints[labels][:, None, None, :] + 0.05
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def colorization(tmp_path, flip_prob=0.5, **method):
    cfg = small_cfg({"name": "colorization", "channels": 8, **method},
                    {"name": "colorization", "flip_prob": flip_prob},
                    data=DATA, sample_examples=0, weight_decay=0.0)
    return trainer(cfg, tmp_path)


def split_brain(tmp_path, **method):
    cfg = small_cfg({"name": "split_brain", "channels": 8, "l_bins": 10, **method}, {"name": "split_brain"},
                    encoder=SPLIT_ENCODER, data=DATA, sample_examples=0, weight_decay=0.0)
    return trainer(cfg, tmp_path)


def _same_lightness_pair(n=2):
    """RGB float [2, 16, 16, 3]: one lightness map, opposite ab (both in gamut)."""
    rng = np.random.default_rng(5)
    lab = np.zeros((2, SIZE, SIZE, 3))
    lab[..., 0] = rng.uniform(40, 70, (SIZE, SIZE))
    ab = rng.uniform(-15, 15, (SIZE, SIZE, 2))
    lab[0, ..., 1:], lab[1, ..., 1:] = ab, -ab
    return tf.constant(lab2rgb(lab), tf.float32)


def test_the_target_of_a_pixel_is_the_bins_nearest_its_ab(tmp_path):
    m = colorization(tmp_path).method
    centres = m.centres
    rng = np.random.default_rng(0)
    cell_ab = rng.uniform(-50, 50, (2, 4, 4, 2)).astype(np.float32)        # one ab per 4x4 cell
    ab = np.repeat(np.repeat(cell_ab, 4, axis=1), 4, axis=2)              # [2, 16, 16, 2]
    bins, w = m.targets(tf.constant(ab))
    assert bins.shape == (2, 4, 4, 5)
    d2 = ((cell_ab[..., None, :] - centres) ** 2).sum(-1)                 # [2, 4, 4, Q]
    np.testing.assert_array_equal(bins.numpy()[..., 0], d2.argmin(-1))
    nearest5 = np.sort(np.argsort(d2, -1)[..., :5], -1)
    np.testing.assert_array_equal(np.sort(bins.numpy(), -1), nearest5)
    np.testing.assert_allclose(w.numpy().sum(-1), 1.0, rtol=1e-5)


def test_rebalancing_is_estimated_from_the_training_images(tmp_path):
    t = colorization(tmp_path)
    m = t.method
    np.testing.assert_array_equal(m.rebalance.numpy(), 1.0)              # before prepare
    images = colour_images(64)
    m.prepare(images, tmp_path)
    saved = json.loads((tmp_path / "colour_bins.json").read_text())
    w, smooth, prior = (np.array(saved[k]) for k in ("weights", "smoothed_prior", "prior"))
    np.testing.assert_allclose(m.rebalance.numpy(), w, rtol=1e-5)
    assert saved["bins"] == len(m.centres) == len(saved["centres"]) and saved["images"] == 64
    assert abs(np.sum(smooth * w) - 1.0) < 1e-4                          # mean 1 under p~
    assert w[np.argmax(smooth)] == pytest.approx(w.min())                # the commonest bin weighs least
    assert w[np.argmax(prior)] < 1.0
    assert w[np.argmin(smooth)] == pytest.approx(w.max())                # the rarest, most
    np.testing.assert_allclose(m.prior(images), prior, atol=1e-7)


def test_colorization_sees_no_colour(tmp_path):
    t = colorization(tmp_path, flip_prob=0.0)    # the pair is compared pixel by pixel
    rgb = _same_lightness_pair()
    views, labels = sample(t.pretext, rgb)
    assert views["L"].shape == (2, SIZE, SIZE, 1)
    np.testing.assert_allclose(views["L"][0], views["L"][1], atol=1e-5)
    out = t.method(views)["ab_logits"].numpy()
    np.testing.assert_allclose(out[0], out[1], atol=1e-4)
    assert np.abs(labels["ab"][0] - labels["ab"][1]).max() > 1.0          # the targets differ
    # the evaluated encoder takes RGB and converts inside: the same features for both
    enc = t.encoder
    assert tuple(enc.input.shape[1:]) == (SIZE, SIZE, 3) and enc.get_layer(INPUT_LAYER).channels == "L"
    f = enc(rgb).numpy()
    np.testing.assert_allclose(f[0], f[1], atol=1e-5)


def test_split_brain_halves_get_their_own_channels(tmp_path):
    t = split_brain(tmp_path)
    x = tf.constant(colour_images(4) / 255.0, tf.float32)
    views, _ = sample(t.pretext, x)
    v = tf.Variable(views["lab"])
    with tf.GradientTape(persistent=True) as tape:
        out = t.method.network({"lab": v})
        ab_from_l, l_from_ab = tf.reduce_sum(out["ab_logits"] ** 2), tf.reduce_sum(out["L_logits"] ** 2)
    g_ab, g_l = tape.gradient(ab_from_l, v).numpy(), tape.gradient(l_from_ab, v).numpy()
    assert np.all(g_ab[..., 1:] == 0) and np.abs(g_ab[..., :1]).max() > 0   # ab predicted from L only
    assert np.all(g_l[..., :1] == 0) and np.abs(g_l[..., 1:]).max() > 0     # L predicted from ab only
    # the evaluated encoder: RGB in, Lab inside, the halves' features side by side
    enc = t.encoder
    assert tuple(enc.input.shape[1:]) == (SIZE, SIZE, 3) and enc.get_layer(INPUT_LAYER).channels == "Lab"
    d_l = enc.get_layer("L_features").output.shape[-1]
    assert enc.output.shape[-1] == d_l + enc.get_layer("ab_features").output.shape[-1]
    f = enc(_same_lightness_pair()).numpy()
    np.testing.assert_allclose(f[0, :d_l], f[1, :d_l], atol=1e-5)           # half L: same lightness
    assert np.abs(f[0, d_l:] - f[1, d_l:]).max() > 1e-4                     # half ab: other colours
    assert set(enc.taps) >= {"L_features", "ab_features"}


def test_split_brain_refuses_a_single_encoder(tmp_path):
    cfg = small_cfg({"name": "split_brain"}, {"name": "split_brain"}, data=DATA)
    with pytest.raises(ValueError, match="channel_split"):
        trainer(cfg, tmp_path)


def test_colour_pretexts_refuse_gray_data(tmp_path):
    from keras_ssl.config import ConfigError
    with pytest.raises(ConfigError, match="data.channels must be 3"):
        trainer(small_cfg({"name": "colorization"}, {"name": "colorization"}), tmp_path)


def test_baselines_and_loaded_encoders_keep_the_input_transform(tmp_path):
    t = colorization(tmp_path)
    path = tmp_path / "encoder.keras"
    t.encoder.save(path)
    loaded = keras.models.load_model(path)
    transform = input_transform_of(loaded)
    assert transform is not None and transform.channels == "L"
    fresh = build_encoder(t.cfg.encoder, (SIZE, SIZE, 3), transform)       # what random_frozen builds
    assert [l.name for l in fresh.layers] == [l.name for l in t.encoder.layers]
    assert tuple(fresh.input.shape[1:]) == (SIZE, SIZE, 3)


@pytest.mark.parametrize("make", [colorization, split_brain], ids=["colorization", "split_brain"])
def test_a_short_run_lowers_the_loss(make, tmp_path):
    images = colour_images(64)
    x = tf.constant(images[:32] / 255.0, tf.float32)
    t = make(tmp_path)
    t.method.prepare(images)
    views, labels = sample(t.pretext, x)

    def loss():
        return float(tf.reduce_mean(t.method.per_example(t.method(views), labels)[0]))
    before = loss()
    t.cfg = dataclasses.replace(t.cfg, train=dataclasses.replace(t.cfg.train, steps=30, steps_per_execution=10,
                                                                 checkpoint_every=30, log_every=10,
                                                                 learning_rate=0.05))
    summary = t.train(images)
    assert summary["start_step"] == 0 and np.isfinite(summary["final"]["loss"])
    after = loss()
    assert after < before - 0.05, (before, after)


def test_the_exported_split_brain_encoder_serves_rgb_images(tmp_path):
    """Export sees one encoder like any other: RGB in, Lab inside, both halves' features
    (and a half's tap) out, equal to the Keras encoder's."""
    from keras_ssl.export import export_encoder
    t = split_brain(tmp_path / "run")
    x = tf.constant(colour_images(3) / 255.0, tf.float32)
    path = export_encoder(t.encoder, tmp_path / "export", "sb", taps=["ab_features"])
    served = tf.saved_model.load(str(path)).signatures["serving_default"](images=x)
    np.testing.assert_allclose(served["features"].numpy(), t.encoder(x).numpy(), rtol=1e-5, atol=1e-6)
    d_l = t.encoder.get_layer("L_features").output.shape[-1]
    np.testing.assert_allclose(served["ab_features"].numpy(), served["features"].numpy()[:, d_l:], atol=1e-6)
