"""PIRL with a set of transforms (pretext ``pirl``'s ``transforms``, method ``pirl``'s
one g per transform): each image's transform is drawn from the set, stateless; a
rotation-transformed view is a rotation of the image; each image is scored with the g
of its own transform; the default (one ``transform``) is what it was."""
import json

import numpy as np
import pytest
import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import ConfigError, load_config
from keras_ssl.methods.base import DatasetFacts
from keras_ssl.methods.memory_bank import MemoryBankMethod
from keras_ssl.pretext.augment import bank_labels, random_affine
from support import CONFIGS, as_float, sample, small_cfg, synthetic_digits

SHAPE = (28, 28, 1)
JIGSAW = {"name": "jigsaw", "grid": 2, "region_px": 20, "tile_px": 8, "permutations": 6}
SET = {"name": "pirl", "transforms": [JIGSAW, "rotation"]}
METHOD = {"name": "pirl", "negatives": 12, "embedding": 16}


def build(pretext=SET, n=32):
    cfg = small_cfg(METHOD, pretext)
    pre = registry.build("pretext", cfg.pretext, SHAPE)
    enc = registry.build("encoder", cfg.encoder, SHAPE)
    return cfg, pre, registry.build("method", cfg.method, enc, pre, facts=DatasetFacts(num_images=n))


def test_each_images_transform_is_drawn_from_the_set():
    """Over 64 images both transforms are drawn, about half each; an image that drew
    rotation has as ``t_image`` the image turned by its ``t_rotation`` (turned back, the
    image); an image that drew jigsaw has the tiles of the jigsaw pretext alone."""
    _, pre, _ = build()
    assert pre.view_names == ("image", "t_tile0", "t_tile1", "t_tile2", "t_tile3", "t_image")
    x = as_float(synthetic_digits(64)[0])
    views, labels = sample(pre, x)
    choice = labels["t_choice"].numpy()
    assert set(choice) == {0, 1} and 20 < choice.sum() < 44, choice.sum()   # binomial(64, 1/2): 3 sigma
    k = labels["t_rotation"].numpy()
    for i in np.flatnonzero(choice == 1):
        back = np.rot90(views["t_image"][i].numpy(), -k[i], axes=(0, 1))
        np.testing.assert_array_equal(back, x[i].numpy())
    assert len(set(k[choice == 1])) > 1, "several rotations drawn"
    # the transforms' seeds: the batch seed's second split, split once per transform (+ the choice)
    s_t = tf.unstack(tf.random.experimental.stateless_split(tf.constant([1, 2], tf.int32), 3))[1]
    seeds = tf.unstack(tf.random.experimental.stateless_split(s_t, 3))
    tiles, jl = pre.transforms["jigsaw"](x, tf.range(64, dtype=tf.int64), seeds[0])
    np.testing.assert_array_equal(labels["t_permutation"], jl["permutation"])
    for name, v in tiles.items():
        np.testing.assert_array_equal(views[f"t_{name}"], v)
    again, labels2 = sample(pre, x)                               # stateless
    np.testing.assert_array_equal(labels2["t_choice"], choice)
    assert all(np.array_equal(again[v], views[v]) for v in views)
    _, other = sample(pre, x, seed=(4, 4))
    assert not np.array_equal(other["t_choice"], choice)
    text = pre.describe({k: v.numpy() for k, v in labels.items()}, int(np.argmax(choice == 1)))
    assert "rotation: rotated" in text


def test_each_image_is_scored_with_the_g_of_its_transform():
    """The loss is PIRL's loss with ``transformed`` = g_jigsaw for the images that drew
    jigsaw and g_rotation for the others; g_rotation gets no gradient from a jigsaw image."""
    _, pre, method = build()
    x = as_float(synthetic_digits(16)[0])
    views, labels = sample(pre, x)
    out = method(views, training=False)
    assert set(out) == {"image", "transformed_jigsaw", "transformed_rotation"}
    choice = labels["t_choice"].numpy()
    chosen = np.where(choice[:, None] == 0, out["transformed_jigsaw"], out["transformed_rotation"])
    loss, metrics = method.per_example(out, labels)
    ref, ref_metrics = MemoryBankMethod.per_example(method, {"image": out["image"], "transformed": chosen}, labels)
    np.testing.assert_allclose(loss, ref, rtol=1e-6)
    np.testing.assert_allclose(metrics["transformed_pos_sim"], ref_metrics["transformed_pos_sim"], rtol=1e-6)
    g_rot = method.network.get_layer("transformed_rotation_embedding_proj").trainable_variables
    g_jig = method.network.get_layer("transformed_jigsaw_embedding_proj").trainable_variables

    def grad_norms(rows):
        with tf.GradientTape() as tape:
            loss, _ = method.per_example(method(views, training=True), labels)
            total = tf.reduce_sum(tf.gather(loss, rows))
        grads = tape.gradient(total, g_rot + g_jig)
        return [0.0 if g is None else float(tf.reduce_sum(tf.abs(g))) for g in grads]

    jig_rows, rot_rows = np.flatnonzero(choice == 0), np.flatnonzero(choice == 1)
    assert len(jig_rows) and len(rot_rows)
    from_jigsaw = grad_norms(jig_rows)
    assert sum(from_jigsaw[:len(g_rot)]) == 0.0 and sum(from_jigsaw[len(g_rot):]) > 0
    from_rotation = grad_norms(rot_rows)
    assert sum(from_rotation[:len(g_rot)]) > 0 and sum(from_rotation[len(g_rot):]) == 0.0


def test_the_default_is_one_transform_drawn_as_before():
    """No ``transforms``: the views and labels of the sampler before the setting
    (augmented image, the jigsaw tiles from the seed's second split, no t_choice) and
    the two-output network of old runs; configs/mnist_pirl.json is such a config."""
    cfg, pre, method = build({"name": "pirl", "transform": JIGSAW})
    assert cfg.pretext.params.transforms == ()
    x = as_float(synthetic_digits(8)[0])
    index = tf.range(8, dtype=tf.int64)
    seed = tf.constant([1, 2], tf.int32)
    views, labels = pre(x, index, seed)
    s_aug, s_t, s_bank = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    tiles, t_labels = pre.transform(x, index, s_t)
    np.testing.assert_array_equal(views["image"], random_affine(x, s_aug, cfg.pretext.params))
    for k, v in tiles.items():
        np.testing.assert_array_equal(views[f"t_{k}"], v)
    expected = {**bank_labels(index, s_bank), **{f"t_{k}": v for k, v in t_labels.items()}}
    assert set(labels) == set(expected)
    assert all(np.array_equal(labels[k], expected[k]) for k in expected)
    assert type(method) is MemoryBankMethod and set(method(views)) == {"image", "transformed"}
    shipped = load_config(CONFIGS / "mnist_pirl.json")
    assert shipped.pretext.params.transforms == () and shipped.pretext.params.transform.name == "jigsaw"
    both = load_config(CONFIGS / "mnist_pirl_rotation_jigsaw.json")
    assert [t.name for t in both.pretext.params.transforms] == ["jigsaw", "rotation"]
    assert both.pretext.params.transforms[0].params == shipped.pretext.params.transform.params


def test_a_run_directory_from_before_transforms_resumes(tmp_path):
    """A PIRL run's config.json written before ``transforms`` existed (no such key)
    resumes under the current config; under a transform set it is refused."""
    from keras_ssl.training.run_dir import check_run_dir, prepare_run_dir

    old_cfg = small_cfg(METHOD, {"name": "pirl", "transform": "rotation"})
    run_dir = tmp_path / "pirl"
    prepare_run_dir(run_dir, old_cfg)
    (run_dir / "checkpoints").mkdir()
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["pretext"].pop("transforms") == []
    (run_dir / "config.json").write_text(json.dumps(saved))
    check_run_dir(run_dir, old_cfg)
    with pytest.raises(ConfigError, match="differs in: pretext"):
        check_run_dir(run_dir, small_cfg(METHOD, {"name": "pirl", "transforms": ["rotation", "jigsaw"]}))


def test_transform_set_settings_are_checked():
    with pytest.raises(ConfigError, match=r"'pretext\.transforms\[0\]\.grid' must be"):
        small_cfg(METHOD, {"name": "pirl", "transforms": [{"name": "jigsaw", "grid": 99}, "rotation"]})
    with pytest.raises(ConfigError, match=r"unknown key 'pretext\.transforms\[1\]\.turns'"):
        small_cfg(METHOD, {"name": "pirl", "transforms": ["jigsaw", {"name": "rotation", "turns": 4}]})
    with pytest.raises(ConfigError, match=r"transforms\[1\] must be one of \['jigsaw', 'rotation'\]"):
        small_cfg(METHOD, {"name": "pirl", "transforms": ["jigsaw", "egomotion"]})
    with pytest.raises(ConfigError, match=r"transforms\[1\]: 'jigsaw' is already transforms\[0\]"):
        small_cfg(METHOD, {"name": "pirl", "transforms": ["jigsaw", "jigsaw"]})
    with pytest.raises(ConfigError, match="not both"):
        small_cfg(METHOD, {"name": "pirl", "transform": "rotation", "transforms": ["jigsaw", "rotation"]})
