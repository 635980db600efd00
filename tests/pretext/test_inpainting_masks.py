"""The inpainting pretext (Pathak et al. 2016): the view is the image with the mask's
pixels set to the fill value and the others untouched; the centre mask is the central
square; random masks follow the seed and cover about the requested fraction."""
import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.config import ConfigError, config_from_dict
from keras_ssl.pretext.inpainting import InpaintingParams, build_inpainting, center_mask
from support import as_float, sample

SHAPE = (28, 28, 1)
MODES = ["center", "random_blocks", "random_region"]


def _pre(shape=SHAPE, **kw):
    return build_inpainting(InpaintingParams(**kw), shape)


@pytest.mark.parametrize("mode", MODES)
def test_view_is_the_image_with_the_masked_pixels_filled(digits, mode):
    x = as_float(digits(16)[0])
    pre = _pre(mask=mode, fill=0.25)
    views, labels = sample(pre, x)
    assert pre.view_names == ("image",) and pre.targets == {} and pre.view_shape == SHAPE
    v, m, t = views["image"].numpy(), labels["mask"].numpy(), labels["target"].numpy()
    assert m.shape == (16, 28, 28, 1) and m.dtype == np.float32 and set(np.unique(m)) == {0.0, 1.0}
    np.testing.assert_array_equal(t, x.numpy())                      # target: the clean image
    removed = np.broadcast_to(m, v.shape) == 1
    assert np.all(v[removed] == np.float32(0.25))                    # removed: the fill value
    np.testing.assert_array_equal(v[~removed], x.numpy()[~removed])  # context: the image itself
    assert "% of the pixels" in pre.describe(labels, 0)


def test_fill_applies_to_every_channel():
    x = tf.random.stateless_uniform([4, 12, 12, 3], (0, 1))
    views, labels = sample(_pre((12, 12, 3), mask="random_blocks", block_px=3, fill=0.5), x)
    assert labels["mask"].shape == (4, 12, 12, 1)
    v, m = views["image"].numpy(), labels["mask"].numpy()[..., 0] == 1
    assert np.all(v[m] == 0.5) and np.array_equal(v[~m], x.numpy()[~m])


@pytest.mark.parametrize("shape,size,top,left", [((28, 28, 1), 14, 7, 7), ((28, 28, 1), 10, 9, 9),
                                                 ((9, 12, 1), 5, 2, 3)])
def test_center_mask_is_the_central_square(shape, size, top, left):
    x = tf.ones([3, *shape])
    _, labels = sample(_pre(shape, mask="center", size_px=size), x)
    expected = np.zeros(shape[:2], np.float32)
    expected[top:top + size, left:left + size] = 1.0
    for m in labels["mask"].numpy():
        np.testing.assert_array_equal(m[..., 0], expected)
    np.testing.assert_array_equal(center_mask(shape[0], shape[1], size).numpy(), expected)
    # symmetric when the margins can be: the 28x28 image's 14 px square leaves 7 px on each side
    if shape[0] == 28 and size == 14:
        assert expected[:7].sum() == expected[-7:].sum() == 0 and expected[7:21, 7:21].all()


@pytest.mark.parametrize("mode", ["random_blocks", "random_region"])
def test_random_masks_follow_the_seed(mode):
    x = tf.zeros([16, 28, 28, 1])
    pre = _pre(mask=mode)
    a = sample(pre, x, (3, 4))[1]["mask"].numpy()
    b = sample(pre, x, (3, 4))[1]["mask"].numpy()
    c = sample(pre, x, (5, 6))[1]["mask"].numpy()
    np.testing.assert_array_equal(a, b)                              # same seed: same masks
    assert not np.array_equal(a, c)                                  # another seed: other masks
    assert len({m.tobytes() for m in a}) == 16                       # one mask per image
    traced = tf.function(lambda imgs, s: pre(imgs, tf.range(16, dtype=tf.int64), s))
    np.testing.assert_array_equal(traced(x, tf.constant([3, 4]))[1]["mask"].numpy(), a)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_random_blocks_cover_about_the_fraction(fraction):
    x = tf.zeros([64, 28, 28, 1])
    m = sample(_pre(mask="random_blocks", block_px=7, fraction=fraction), x)[1]["mask"].numpy()
    covered = m.mean(axis=(1, 2, 3))
    half_block = 0.5 * 49 / 784
    assert np.all(np.abs(covered - fraction) <= half_block + 1e-6), covered   # per image: within half a block
    assert abs(covered.mean() - fraction) < 0.02
    # made of whole 7x7 blocks: every removed pixel lies in a fully removed 7x7 square
    img = m[0, ..., 0]
    for r, c in zip(*np.nonzero(img)):
        assert any(img[i:i + 7, j:j + 7].all() for i in range(max(0, r - 6), min(r, 21) + 1)
                   for j in range(max(0, c - 6), min(c, 21) + 1))


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_random_region_covers_the_fraction(fraction):
    m = sample(_pre(mask="random_region", fraction=fraction), tf.zeros([16, 28, 28, 1]))[1]["mask"].numpy()
    np.testing.assert_array_equal(m.sum(axis=(1, 2, 3)), round(fraction * 784))


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match=r"pretext.size_px=30 is larger than the 28x28 image"):
        _pre(mask="center", size_px=30)
    with pytest.raises(ConfigError, match=r"pretext.block_px=29 is larger"):
        _pre(mask="random_blocks", block_px=29)
    with pytest.raises(ConfigError, match=r"'mask' must be one of"):
        InpaintingParams(mask="ring")
    raw = {"name": "x", "encoder": "convnet", "method": "inpainting",
           "pretext": {"name": "inpainting", "fraction": 0.9}}
    with pytest.raises(ConfigError, match=r"'pretext.fraction' must be <= 0.75"):
        config_from_dict(raw, "t.json")
