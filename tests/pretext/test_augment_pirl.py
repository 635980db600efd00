"""The samplers of the memory-bank methods (keras_ssl.pretext.augment and .pirl):
dataset index and batch seed as labels, stateless augmentation, PIRL's transform settings."""
import json

import numpy as np
import pytest
import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import ConfigError
from support import small_cfg

NPID = {"name": "npid", "negatives": 32}
AUGMENT = {"name": "augment"}
PIRL_ROTATION = {"name": "pirl", "transform": "rotation"}


def test_samplers_emit_index_and_batch_seed():
    images = tf.random.stateless_uniform([4, 28, 28, 1], [0, 1])
    index = tf.constant([5, 9, 5, 0], tf.int64)
    for pretext_cfg, views in [(AUGMENT, ("image",)),
                               (PIRL_ROTATION, ("image", "t_image")),
                               ({"name": "pirl"}, ("image",) + tuple(f"t_tile{j}" for j in range(9)))]:
        cfg = small_cfg(NPID, pretext_cfg)
        pre = registry.build("pretext", cfg.pretext, (28, 28, 1))
        v, lab = pre(images, index, tf.constant([3, 4], tf.int32))
        assert pre.view_names == views and tuple(v) == views
        assert all(v[k].shape == (4, 28, 28, 1) for k in views)
        assert lab["index"].numpy().tolist() == [5, 9, 5, 0]
        assert lab["seed"].shape == (4, 2) and len({tuple(r) for r in lab["seed"].numpy()}) == 1
        v2, _ = pre(images, index, tf.constant([3, 4], tf.int32))
        np.testing.assert_array_equal(v["image"], v2["image"])            # stateless
        assert not np.allclose(v["image"], images)                         # augmented


def test_pirl_transform_takes_the_jigsaw_settings(tmp_path):
    cfg = small_cfg({"name": "pirl"}, {"name": "pirl", "transform": {
        "name": "jigsaw", "grid": 2, "region_px": 20, "tile_px": 8, "permutations": 6,
        "permutation_seed": 3}})
    pre = registry.build("pretext", cfg.pretext, (28, 28, 1))
    assert pre.transformed_views == ("t_tile0", "t_tile1", "t_tile2", "t_tile3")
    assert pre.transform.perms.shape == (6, 4)
    pre.save(tmp_path)
    assert len(json.loads((tmp_path / "permutations.json").read_text())["permutations"]) == 6
    # The short form is the transform with its defaults; its settings are checked as usual.
    short = small_cfg({"name": "pirl"}, {"name": "pirl", "transform": "jigsaw"})
    assert short.pretext.params.transform.params.permutations == 100
    with pytest.raises(ConfigError, match=r"'pretext.transform.tiles'"):
        small_cfg({"name": "pirl"}, {"name": "pirl", "transform": {"name": "jigsaw", "tiles": 4}})
    with pytest.raises(ConfigError, match="transform must be one of"):
        small_cfg({"name": "pirl"}, {"name": "pirl", "transform": "egomotion"})


def test_augment_with_two_views_draws_them_independently():
    """``views: 2`` (MoCo's query and key crops): two independent affine draws of the same
    image, stateless; ``views: 1`` keeps the single view NPID's runs were made with."""
    from keras_ssl.pretext.augment import AugmentPretextParams, build_augment, random_affine

    images = tf.random.stateless_uniform([5, 28, 28, 1], [0, 2])
    index = tf.range(5, dtype=tf.int64)
    seed = tf.constant([7, 8], tf.int32)
    two = build_augment(AugmentPretextParams(views=2), (28, 28, 1))
    assert two.view_names == ("image", "image2")
    v, lab = two(images, index, seed)
    assert tuple(v) == ("image", "image2") and all(v[k].shape == (5, 28, 28, 1) for k in v)
    assert lab["index"].numpy().tolist() == [0, 1, 2, 3, 4]
    assert not np.allclose(v["image"], v["image2"])                          # two draws
    again, _ = two(images, index, seed)
    np.testing.assert_array_equal(v["image2"], again["image2"])               # stateless
    # each view is the same affine sampler as the single view, under its own seed
    s_aug, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(s_aug, 2))
    np.testing.assert_allclose(v["image2"], random_affine(images, s2, two.params), atol=1e-6)
    one = build_augment(AugmentPretextParams(), (28, 28, 1))
    assert one.view_names == ("image",)
    np.testing.assert_allclose(one(images, index, seed)[0]["image"], random_affine(images, s_aug, one.params),
                               atol=1e-6)
    with pytest.raises(ConfigError, match="'views' must be"):
        AugmentPretextParams(views=3)


def test_a_run_directory_from_before_views_resumes_with_one_view(tmp_path):
    """An NPID run directory written before ``augment`` had ``views`` (its config.json
    lacks the key) resumes under the current config (views 1, what it drew), not under
    ``views: 2``; other pretexts get no such key."""
    from keras_ssl.training.run_dir import check_run_dir, prepare_run_dir

    def run_dir_without_views(name, cfg):
        run_dir = tmp_path / name
        prepare_run_dir(run_dir, cfg)
        (run_dir / "checkpoints").mkdir()
        old = json.loads((run_dir / "config.json").read_text())
        assert old["pretext"].pop("views", None) == (1 if cfg.pretext.name == "augment" else None)
        (run_dir / "config.json").write_text(json.dumps(old))
        return run_dir

    npid = run_dir_without_views("npid", small_cfg(NPID, AUGMENT))
    check_run_dir(npid, small_cfg(NPID, AUGMENT))
    with pytest.raises(ConfigError, match="differs in: pretext"):
        check_run_dir(npid, small_cfg(NPID, {"name": "augment", "views": 2}))
    pirl = run_dir_without_views("pirl", small_cfg({"name": "pirl"}, PIRL_ROTATION))
    check_run_dir(pirl, small_cfg({"name": "pirl"}, PIRL_ROTATION))
