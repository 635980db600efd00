"""The multi-task sampler (keras_ssl.pretext.multitask): every task's views and labels,
namespaced, each label the transform applied to that task's own view; the sub-sections
checked by their pretexts' own rules, errors naming the key path; one view shape."""
import json

import numpy as np
import pytest
import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import ConfigError
from keras_ssl.pretext.egomotion import apply_transform
from keras_ssl.pretext.multitask import BATCH_DRAW, DRAW
from support import as_float, sample, small_cfg, synthetic_digits

SHAPE = (28, 28, 1)
JIGSAW = {"name": "jigsaw", "grid": 2, "region_px": 20, "tile_px": 8, "permutations": 6}
TASKS = ["egomotion", "rotation", JIGSAW]
HEADS = {"name": "multitask", "tasks": [{"task": t, "method": {"name": "classify", "hidden": 8}}
                                         for t in ("egomotion", "rotation", "jigsaw")]}


def multitask(tasks=TASKS):
    cfg = small_cfg(HEADS if tasks is TASKS else None, {"name": "multitask", "tasks": tasks})
    return cfg, registry.build("pretext", cfg.pretext, SHAPE)


def images(n=16):
    return as_float(synthetic_digits(n)[0])


def test_views_and_labels_are_namespaced_per_task():
    _, pre = multitask()
    assert pre.view_names == ("egomotion.first", "egomotion.second", "rotation.image",
                              "jigsaw.tile0", "jigsaw.tile1", "jigsaw.tile2", "jigsaw.tile3")
    assert pre.targets == {"egomotion.tx": 7, "egomotion.ty": 7, "egomotion.rz": 20,
                           "rotation.rotation": 4, "jigsaw.permutation": 6}
    assert pre.view_shape == SHAPE
    views, labels = sample(pre, images(8))
    assert set(views) == set(pre.view_names)
    assert set(labels) >= set(pre.targets) | {DRAW, BATCH_DRAW}
    assert all(tuple(v.shape) == (8, *SHAPE) for v in views.values())
    again, labels2 = sample(pre, images(8))                      # stateless: same seed, same batch
    assert all(np.array_equal(views[k], again[k]) for k in views)
    other, _ = sample(pre, images(8), seed=(5, 6))
    assert not np.array_equal(views["rotation.image"], other["rotation.image"])


def test_each_label_is_the_transform_applied_to_its_tasks_view():
    """rotation: turning the view back by its label gives the image; egomotion: the
    second view is the first moved by its raw labels; jigsaw: the task's views and
    labels are those of the jigsaw pretext alone on the task's own seed."""
    x = images(16)
    cfg, pre = multitask()
    views, labels = sample(pre, x)
    k = labels["rotation.rotation"].numpy()
    assert len(set(k)) > 1, "the batch must hold several rotations for the test to tell"
    for i in range(16):
        back = np.rot90(views["rotation.image"][i].numpy(), -k[i], axes=(0, 1))
        np.testing.assert_array_equal(back, x[i].numpy())
        wrong = np.rot90(views["rotation.image"][i].numpy(), -(k[i] + 1), axes=(0, 1))
        assert not np.array_equal(wrong, x[i].numpy())
    np.testing.assert_array_equal(views["egomotion.first"], x)
    moved = apply_transform(x, labels["egomotion.tx_px"], labels["egomotion.ty_px"], labels["egomotion.rz_deg"])
    np.testing.assert_allclose(views["egomotion.second"], moved, atol=1e-6)
    assert np.any(labels["egomotion.tx_px"].numpy() != 0)
    # jigsaw is tasks[2]: its seed is the batch seed's third split
    seeds = tf.unstack(tf.random.experimental.stateless_split(tf.constant([1, 2], tf.int32), 4))
    alone = pre.tasks["jigsaw"]
    j_views, j_labels = alone(x, tf.range(16, dtype=tf.int64), seeds[2])
    np.testing.assert_array_equal(labels["jigsaw.permutation"], j_labels["permutation"])
    for name, v in j_views.items():
        np.testing.assert_array_equal(views[f"jigsaw.{name}"], v)


def test_draws_split_the_batch_in_stratified_slots():
    """``multitask.draw`` puts one example in each 1/B slot of [0, 1) (a task with share w
    gets w*B examples, to one); ``multitask.batch_draw`` is one value for the batch."""
    _, pre = multitask()
    for seed in [(1, 2), (3, 4), (7, 0)]:
        _, labels = sample(pre, images(10), seed=seed)
        d = labels[DRAW].numpy()
        assert np.all((d >= 0) & (d < 1))
        np.testing.assert_array_equal(np.sort(np.floor(d * 10)), np.arange(10))
        b = labels[BATCH_DRAW].numpy()
        assert np.all(b == b[0]) and np.isclose((d[0] - b[0]) % 1.0, 0.0, atol=1e-6)


def test_subsection_keys_are_checked_with_their_path():
    with pytest.raises(ConfigError, match=r"'pretext\.tasks\[1\]\.grid' must be"):
        multitask(["rotation", {"name": "jigsaw", "grid": 99}])
    with pytest.raises(ConfigError, match=r"unknown key 'pretext\.tasks\[1\]\.tiles'"):
        multitask(["rotation", {"name": "jigsaw", "tiles": 4}])
    with pytest.raises(ConfigError, match=r"'pretext\.tasks\[0\]\.name': unknown pretext 'nope'"):
        multitask(["nope"])
    with pytest.raises(ConfigError, match=r"'pretext\.tasks\[0\]\.max_shift_px' must be an integer"):
        multitask([{"name": "egomotion", "max_shift_px": "three"}])
    with pytest.raises(ConfigError, match=r"'pretext\.tasks' must be a list"):
        multitask("rotation")
    with pytest.raises(ConfigError, match=r"tasks\[1\]: pretext 'rotation' is already tasks\[0\]"):
        multitask(["rotation", "rotation"])
    with pytest.raises(ConfigError, match="cannot hold another"):
        multitask(["rotation", "multitask"])
    with pytest.raises(ConfigError, match="at least one"):
        multitask([])
    # A rule its builder checks (the jigsaw geometry against the image) names the task too.
    cfg = small_cfg(None, {"name": "multitask", "tasks": ["rotation", {"name": "jigsaw", "grid": 2,
                                                                       "region_px": 26, "tile_px": 13,
                                                                       "permutations": 2}]})
    with pytest.raises(ConfigError, match=r"pretext\.tasks\[1\] \(jigsaw\)"):
        registry.build("pretext", cfg.pretext, (24, 24, 1))


def test_tasks_whose_views_differ_in_shape_are_refused(monkeypatch):
    """The views of every task feed one encoder: a task whose views have another shape
    fails with the tasks and their shapes named."""
    build = registry.build

    def smaller_rotation(kind, comp, image_shape, *a, **k):
        if kind == "pretext" and comp.name == "rotation":
            return build(kind, comp, (14, 14, 1), *a, **k)
        return build(kind, comp, image_shape, *a, **k)

    cfg, _ = multitask()
    monkeypatch.setattr(registry, "build", smaller_rotation)
    from keras_ssl.pretext.multitask import build_multitask_pretext
    with pytest.raises(ConfigError, match=r"pretext\.tasks: .*one shape.*egomotion 28x28x1, rotation 14x14x1, "
                                          r"jigsaw 28x28x1"):
        build_multitask_pretext(cfg.pretext.params, SHAPE)


def test_describe_and_save_cover_every_task(tmp_path):
    _, pre = multitask()
    _, labels = sample(pre, images(4))
    text = pre.describe({k: v.numpy() for k, v in labels.items()}, 1)
    assert text.startswith("egomotion: tx=") and "; rotation: rotated" in text and "; jigsaw: permutation" in text
    pre.save(tmp_path)
    saved = json.loads((tmp_path / "tasks" / "jigsaw" / "pretext.json").read_text())
    assert saved["permutations"] == 6 and (tmp_path / "tasks" / "jigsaw" / "permutations.json").is_file()


def test_resolved_config_round_trips():
    from keras_ssl.config import config_from_dict, to_dict

    cfg, _ = multitask()
    again = config_from_dict(json.loads(json.dumps(to_dict(cfg))))
    assert again == cfg and [t.name for t in again.pretext.params.tasks] == ["egomotion", "rotation", "jigsaw"]
    assert again.method.params.tasks[2].method.params.hidden == 8
