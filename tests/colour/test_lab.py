"""keras_ssl.colour: RGB <-> Lab in TF ops against scikit-image (the reference, in tests
only), the in-gamut ab bins, soft encoding and class rebalancing."""
import numpy as np
import pytest
import tensorflow as tf
from skimage.color import lab2rgb, rgb2lab

from keras_ssl.colour import bins as cb
from keras_ssl.colour.lab import lab_to_rgb, rgb_to_lab
from keras_ssl.colour.layers import LabInput


def _random_rgb(seed, n=4, size=16):
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, 3))
    x[0, :4] = 0.0                    # black, white and the companding knee are in the test
    x[0, 4:8] = 1.0
    x[0, 8:12] = rng.uniform(0.0, 0.05, (4, size, 3))
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rgb_to_lab_matches_skimage(seed):
    x = _random_rgb(seed)
    got = rgb_to_lab(tf.constant(x, tf.float32)).numpy()
    np.testing.assert_allclose(got, rgb2lab(x), atol=1e-3, rtol=0)


def test_lab_to_rgb_matches_skimage_and_inverts():
    x = _random_rgb(3)
    lab = rgb2lab(x)
    got = lab_to_rgb(tf.constant(lab, tf.float32)).numpy()
    np.testing.assert_allclose(got, lab2rgb(lab), atol=1e-3, rtol=0)
    np.testing.assert_allclose(got, x, atol=1e-3, rtol=0)


def _same_lightness_pair():
    """Two RGB images of one lightness and different colours (opposite ab, in gamut)."""
    rng = np.random.default_rng(5)
    lab = np.zeros((2, 8, 8, 3))
    lab[..., 0] = rng.uniform(40, 70, (8, 8))
    ab = rng.uniform(-15, 15, (8, 8, 2))
    lab[0, ..., 1:], lab[1, ..., 1:] = ab, -ab
    rgb = lab2rgb(lab)
    np.testing.assert_allclose(rgb2lab(rgb), lab, atol=1e-3)           # both in gamut
    assert np.abs(rgb[0] - rgb[1]).max() > 0.05                          # different colours
    return rgb


def test_l_input_carries_no_colour():
    rgb = tf.constant(_same_lightness_pair(), tf.float32)
    l = LabInput("L")(rgb).numpy()
    assert l.shape == (2, 8, 8, 1)
    np.testing.assert_allclose(l[0], l[1], atol=1e-5)
    ab = LabInput("ab")(rgb).numpy()
    assert ab.shape == (2, 8, 8, 2) and np.abs(ab[0] - ab[1]).max() > 0.1


def test_gamut_bins_are_the_grid_cells_of_srgb_colours():
    centres = cb.gamut_bins(10)
    assert centres.shape[1] == 2 and 200 < len(centres) <= 313     # the paper keeps 313
    np.testing.assert_array_equal(centres % 10, 0)
    assert len(np.unique(centres, axis=0)) == len(centres)
    ab = rgb2lab(np.random.default_rng(0).random((1, 4000, 3)))[0, :, 1:]
    cells = {tuple(c) for c in (np.round(ab / 10) * 10).astype(int)}
    assert cells <= {tuple(c) for c in centres.astype(int)}             # every colour's cell is a bin
    assert len(cb.gamut_bins(20)) < len(centres) < len(cb.gamut_bins(5))
    with pytest.raises(ValueError, match="grid"):
        cb.gamut_bins(0)


def test_soft_encoding_picks_the_nearest_bins_with_gaussian_weights():
    centres = cb.gamut_bins(10)
    rng = np.random.default_rng(1)
    ab = rng.uniform(-60, 60, (50, 2)).astype(np.float32)
    bins, w = cb.soft_encode(tf.constant(ab), centres, k=5, sigma=5.0)
    bins, w = bins.numpy(), w.numpy()
    d2 = ((ab[:, None, :] - centres[None]) ** 2).sum(-1)
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :5]
    np.testing.assert_allclose(np.take_along_axis(d2, bins, 1), np.take_along_axis(d2, nearest, 1), rtol=1e-4)
    expect = np.exp(-np.take_along_axis(d2, bins, 1) / 50.0)
    np.testing.assert_allclose(w, expect / expect.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
    assert np.all(np.diff(w, axis=1) <= 1e-7)                           # nearest first, heaviest
    # a pixel exactly on a centre: that bin first, with the largest weight
    on = centres[[7, 100]]
    b, ww = cb.soft_encode(tf.constant(on), centres, k=5, sigma=5.0)
    assert list(b.numpy()[:, 0]) == [7, 100] and np.all(ww.numpy()[:, 0] > 0.5)
    assert list(cb.nearest_bin(tf.constant(on), centres).numpy()) == [7, 100]


def test_rebalancing_weights_favour_rare_bins_and_average_to_one():
    centres = cb.gamut_bins(10)
    q = len(centres)
    rng = np.random.default_rng(2)
    # pixels mostly near gray, a few saturated
    ab = np.concatenate([rng.normal(0, 4, (5000, 2)), rng.uniform(-60, 60, (300, 2))]).astype(np.float32)
    p = cb.empirical_prior([ab], centres)
    assert p.shape == (q,) and abs(p.sum() - 1) < 1e-9
    smooth = cb.smooth_prior(p, centres, 5.0)
    w = cb.rebalancing_weights(smooth, 0.5)
    assert abs(np.sum(smooth * w) - 1.0) < 1e-9                        # E_p~[w] = 1
    gray = int(cb.nearest_bin(tf.constant([[0.0, 0.0]]), centres).numpy()[0])
    assert w[gray] == w.min() and w[gray] < 1.0 < w.max()
    order = np.argsort(smooth)
    assert np.all(np.diff(w[order]) <= 1e-12)                           # rarer bin, larger weight
    np.testing.assert_allclose(cb.rebalancing_weights(smooth, 1.0), np.ones(q))   # lambda 1: none
