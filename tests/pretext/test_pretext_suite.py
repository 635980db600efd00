"""The pretext suite: samplers' label meaning and determinism (rotation, jigsaw,
relative position, SFA pairs, reconstruction). The methods on these pretexts:
tests/methods; every config's --smoke run: tests/test_configs_smoke.py."""
import json

import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.config import ConfigError
from keras_ssl.pretext.egomotion import apply_transform
from keras_ssl.pretext.jigsaw import JigsawParams, build_jigsaw
from keras_ssl.pretext.reconstruction import ReconstructionParams, build_reconstruction
from keras_ssl.pretext.relative_position import (NEIGHBOR_CELLS, RelativePositionParams,
                                                 build_relative_position)
from keras_ssl.pretext.rotation import RotationParams, build_rotation
from keras_ssl.pretext.sfa import SFAPairsParams, build_sfa_pairs
from support import as_float, sample

SHAPE = (28, 28, 1)


def cell_image(n, region=24, grid=3, size=28):
    """Images whose grid cells hold constant, distinct values (cell k -> (k+1)/10)."""
    img = np.zeros((n, size, size, 1), np.float32)
    cell, off = region // grid, (size - region) // 2
    for k in range(grid * grid):
        r, c = off + (k // grid) * cell, off + (k % grid) * cell
        img[:, r:r + cell, c:c + cell] = (k + 1) / 10
    return tf.constant(img)


def cell_of(view):
    """Cell index whose constant a (constant) view holds, per example."""
    v = view.numpy().reshape(view.shape[0], -1)
    assert np.allclose(v.min(1), v.max(1), atol=1e-5), "a tile crossed a cell border"
    return np.rint(v.mean(1) * 10).astype(int) - 1


def assert_deterministic(pretext, x):
    v1, l1 = sample(pretext, x, (3, 4))
    v2, l2 = sample(pretext, x, (3, 4))
    v3, l3 = sample(pretext, x, (5, 6))
    for k in v1:
        assert np.array_equal(v1[k].numpy(), v2[k].numpy())
    for k in l1:
        assert np.array_equal(l1[k].numpy(), l2[k].numpy())
    assert any(not np.array_equal(v1[k].numpy(), v3[k].numpy()) for k in v1)


# -- rotation ---------------------------------------------------------------

def test_rotation_label_is_the_quarter_turns_applied(digits):
    images, _ = digits(32)
    x = as_float(images)
    pre = build_rotation(RotationParams(), SHAPE)
    views, labels = sample(pre, x)
    k = labels["rotation"].numpy()
    assert set(k) == {0, 1, 2, 3} and pre.targets == {"rotation": 4}
    for i in range(32):
        assert np.array_equal(views["image"][i].numpy(), np.rot90(x[i].numpy(), k[i]))
    assert_deterministic(pre, x)


# -- jigsaw -----------------------------------------------------------------

def test_jigsaw_permutation_reassembles_the_image():
    x = cell_image(16)
    pre = build_jigsaw(JigsawParams(permutations=20, normalize="none"), SHAPE)
    views, labels = sample(pre, x)
    assert pre.view_names == tuple(f"tile{j}" for j in range(9)) and pre.targets == {"permutation": 20}
    perms = pre.perms[labels["permutation"].numpy()]                       # [B, 9]
    shown = np.stack([cell_of(views[f"tile{j}"]) for j in range(9)], axis=1)
    assert np.array_equal(shown, perms)                                    # view j comes from cell P[j]
    for b in range(16):                                                    # put view j back at cell P[j]
        board = np.empty(9, int)
        board[perms[b]] = shown[b]
        assert np.array_equal(board, np.arange(9))
    assert all(views[v].shape == (16, 28, 28, 1) for v in pre.view_names)


def test_jigsaw_tiles_are_jittered_normalised_and_deterministic(digits, tmp_path):
    images, _ = digits(8)
    x = as_float(images)
    pre = build_jigsaw(JigsawParams(permutations=10), SHAPE)
    views, _ = sample(pre, x)
    t = np.stack([views[v].numpy() for v in pre.view_names])
    assert t.min() >= 0.0 and np.isclose(t.max(), 1.0)                     # minmax per tile
    std = build_jigsaw(JigsawParams(permutations=10, normalize="standardize"), SHAPE)
    s = sample(std, x)[0]["tile4"].numpy().reshape(8, -1)
    assert np.allclose(s.mean(1), 0.0, atol=1e-4)
    assert_deterministic(pre, x)
    # The run saves the set; a saved set can be read back instead of generated.
    pre.save(tmp_path)
    doc = json.loads((tmp_path / "permutations.json").read_text())
    assert np.array_equal(doc["permutations"], pre.perms)
    assert json.loads((tmp_path / "pretext.json").read_text())["permutations"] == 10
    again = build_jigsaw(JigsawParams(permutation_file=str(tmp_path / "permutations.json")), SHAPE)
    assert np.array_equal(again.perms, pre.perms)


def test_jigsaw_geometry_errors_name_the_setting():
    with pytest.raises(ConfigError, match="tile_px=9"):
        build_jigsaw(JigsawParams(permutations=10, tile_px=9), SHAPE)
    with pytest.raises(ConfigError, match="region_px=30"):
        build_jigsaw(JigsawParams(permutations=10, region_px=30), SHAPE)


# -- relative position ------------------------------------------------------

def test_relative_position_label_points_at_the_right_neighbour():
    x = cell_image(64)
    pre = build_relative_position(RelativePositionParams(normalize="none"), SHAPE)
    views, labels = sample(pre, x)
    pos = labels["position"].numpy()
    assert set(pos) == set(range(8)) and pre.targets == {"position": 8}
    assert np.all(cell_of(views["center"]) == 4)
    neighbour = cell_of(views["neighbor"])
    assert np.array_equal(neighbour, np.array(NEIGHBOR_CELLS)[pos])
    direction = {0: (-1, -1), 1: (-1, 0), 2: (-1, 1), 3: (0, -1), 4: (0, 1), 5: (1, -1), 6: (1, 0), 7: (1, 1)}
    for p, n in zip(pos, neighbour):
        assert (n // 3 - 1, n % 3 - 1) == direction[p]                      # (row, col) offset from centre
    assert_deterministic(pre, x)


@pytest.mark.parametrize("build,params,view", [
    (build_relative_position, RelativePositionParams, "neighbor"),
    (build_jigsaw, lambda **kw: JigsawParams(permutations=10, **kw), "tile0"),
])
def test_center_placement_pastes_the_tile_at_its_own_size(build, params, view):
    x = tf.random.stateless_uniform([16, 28, 28, 1], (7, 8))
    resized = sample(build(params(normalize="none"), SHAPE), x)[0][view].numpy()
    shown = sample(build(params(normalize="none", placement="center"), SHAPE), x)[0][view].numpy()
    lo = (28 - 6) // 2
    inside = np.zeros((28, 28), bool)
    inside[lo:lo + 6, lo:lo + 6] = True
    assert np.all(shown[:, ~inside] == 0) and np.all(shown[:, inside] > 0)
    for b in range(16):                      # the very pixels of a 6x6 crop of the image, unscaled...
        tile = shown[b, lo:lo + 6, lo:lo + 6, 0]
        crops = [(r, c) for r in range(23) for c in range(23)
                 if np.allclose(x[b, r:r + 6, c:c + 6, 0], tile, atol=1e-6)]
        assert len(crops) == 1
        r, c = crops[0]                      # ...the same crop that "resize" scales up (same seed)
        assert np.allclose(resized[b, 0, 0, 0], x[b, r, c, 0], atol=1e-6)
        assert np.allclose(resized[b, -1, -1, 0], x[b, r + 5, c + 5, 0], atol=1e-6)
    with pytest.raises(ValueError, match="placement"):
        params(placement="corner")


# -- SFA pairs --------------------------------------------------------------

def test_sfa_close_far_matches_the_thresholds(digits):
    images, _ = digits(256)
    x = as_float(images)
    pre = build_sfa_pairs(SFAPairsParams(close_ratio=0.5), SHAPE)
    views, labels = sample(pre, x)
    tx, ty, deg = (labels[k].numpy() for k in ("tx_px", "ty_px", "rz_deg"))
    close = labels["close"].numpy()
    expected = (np.abs(tx) <= 1) & (np.abs(ty) <= 1) & (np.abs(deg) <= 3)
    assert np.array_equal(close, expected.astype(int))
    assert 0.35 < close.mean() < 0.65
    assert np.all(np.abs(tx) <= 3) and np.all(np.abs(deg) <= 30) and np.all(deg != 0)
    assert np.array_equal(views["first"].numpy(), x.numpy())
    assert np.allclose(views["second"].numpy(), apply_transform(x, tx, ty, deg).numpy(), atol=1e-6)
    assert pre.targets == {}
    assert_deterministic(pre, x)


def test_sfa_close_ratio_settings(digits):
    x = as_float(digits(512)[0])
    for ratio, lo, hi in ((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (None, 0.0, 0.06)):
        pre = build_sfa_pairs(SFAPairsParams(close_ratio=ratio), SHAPE)
        frac = sample(pre, x)[1]["close"].numpy().mean()
        assert lo <= frac <= hi, (ratio, frac)
    assert np.isclose(build_sfa_pairs(SFAPairsParams(close_ratio=None), SHAPE).uniform_close_fraction, 54 / 2940)


# -- reconstruction ---------------------------------------------------------

def test_reconstruction_targets_are_the_clean_images(digits):
    x = as_float(digits(8)[0])
    views, labels = sample(build_reconstruction(ReconstructionParams(), SHAPE), x)
    assert np.array_equal(views["image"].numpy(), x.numpy()) and np.array_equal(labels["target"].numpy(), x.numpy())
    noisy = build_reconstruction(ReconstructionParams(noise_std=0.2), SHAPE)
    v, l = sample(noisy, x)
    assert not np.array_equal(v["image"].numpy(), x.numpy()) and np.array_equal(l["target"].numpy(), x.numpy())
    assert 0.0 <= v["image"].numpy().min() and v["image"].numpy().max() <= 1.0
    assert_deterministic(noisy, x)
