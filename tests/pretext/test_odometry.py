"""Pretext odometry: egomotion classes from the poses of frame sequences, trained by the job
on a KITTI tree written here (grey frames under image_0)."""
import json

import numpy as np
import pytest

from keras_ssl import registry
from keras_ssl.config import ConfigError, config_from_dict
from keras_ssl.data.frames import frame_pairs
from keras_ssl.data.motion import AXES, pair_motion, to_bins
from keras_ssl.data.sequences import SequenceData, read_kitti_odometry
from keras_ssl.training.job import run
from support import write_drive

@pytest.fixture
def kitti(tmp_path):
    write_drive(tmp_path / "kitti", "00", 14, 0)
    write_drive(tmp_path / "kitti", "01", 10, 1)
    return tmp_path / "kitti"


def cfg_for(root, steps=4, pretext=None, dataset="kitti_odometry", **data):
    return config_from_dict(_raw(root, steps, pretext, dataset, **data))


def _raw(root, steps=4, pretext=None, dataset="kitti_odometry", **data):
    return {
        "name": "drive", "encoder": {"name": "convnet", "filters": [4, 8], "output": "gap"},
        "pretext": pretext or {"name": "odometry", "max_frame_gap": 3, "bins": 4},
        "method": {"name": "classify", "hidden": 8, "dropout": 0.0},
        "data": {"dataset": dataset, "path": str(root), "sequences": ["00", "01"], "camera": "image_0",
                 "image_size": 28, "channels": 1, **data},
        "train": {"steps": steps, "batch_size": 8, "steps_per_execution": 2, "checkpoint_every": 2,
                  "log_every": 2, "sample_examples": 2, "learning_rate": 0.05}}


def quiet(*_):
    pass


def test_batches_carry_the_binned_motion_of_their_pairs(kitti):
    cfg = cfg_for(kitti)
    pretext = registry.build("pretext", cfg.pretext, (28, 28, 1))
    assert pretext.targets == {"tx": 4, "tz": 4, "yaw": 4}
    seqs = read_kitti_odometry(kitti, ["00", "01"], camera="image_0")
    pairs = pretext.prepare(SequenceData(tuple(seqs), None, 1))
    views, labels = next(iter(pretext.batches(pairs, 8, 0, 0, 1)))
    assert views["first"].shape == (8, 28, 28, 1) and views["second"].shape == (8, 28, 28, 1)
    idx = labels["pair"].numpy()
    for k, s in enumerate(seqs):                      # from the poses, by hand
        mine = pairs.sequence[idx] == k
        m = pair_motion(s.poses, pairs.pairs[idx[mine]] - pairs.offsets[k])
        for a in AXES:
            np.testing.assert_array_equal(labels[a].numpy()[mine], to_bins(getattr(m, a), pairs.edges[a]))


def test_the_job_trains_on_sequences_and_stores_the_bins(kitti, tmp_path):
    s = run(cfg_for(kitti), tmp_path / "run", progress=False, evaluate=False, export=False, log=quiet)
    assert s["data"] == {"sequences": ["00", "01"], "frames": [14, 10]}
    assert s["pretrain"]["steps"] == 4 and np.isfinite(s["pretrain"]["final"]["loss"])
    doc = json.loads((tmp_path / "run" / "motion_bins.json").read_text())
    expect = frame_pairs(read_kitti_odometry(kitti, ["00", "01"], camera="image_0"), 3, bins=4)
    assert doc["edges"] == expect.edges and doc["pairs"] == len(expect)
    for a in AXES:                                    # balanced classes, within one
        assert sum(doc["class_counts"][a]) == len(expect) and np.ptp(doc["class_counts"][a]) <= 1


def test_a_resumed_sequence_run_equals_the_uninterrupted_one(kitti, tmp_path):
    import keras

    run(cfg_for(kitti, steps=4), tmp_path / "whole", progress=False, evaluate=False, export=False, log=quiet)
    run(cfg_for(kitti, steps=2), tmp_path / "cut", progress=False, evaluate=False, export=False, log=quiet)
    # the same run directory continued to 4 steps: only train.steps differs
    (tmp_path / "cut" / "config.json").unlink()
    run(cfg_for(kitti, steps=4), tmp_path / "cut", progress=False, evaluate=False, export=False, log=quiet)
    # and the frames decoded once, held in memory (data.frame_cache_mb): the same batches
    run(cfg_for(kitti, steps=4, frame_cache_mb=16), tmp_path / "cached", progress=False, evaluate=False,
        export=False, log=quiet)
    a = keras.models.load_model(tmp_path / "whole" / "encoder.keras").get_weights()
    for other in ("cut", "cached"):
        b = keras.models.load_model(tmp_path / other / "encoder.keras").get_weights()
        assert max(float(np.max(np.abs(x - y))) for x, y in zip(a, b)) == 0.0, other


def test_pretext_and_data_that_cannot_work_together_are_refused(kitti, tmp_path):
    with pytest.raises(ConfigError, match="pretext 'odometry' needs frame sequences"):
        run(cfg_for(kitti, dataset="mnist"), tmp_path / "a", progress=False, evaluate=False,
            export=False, log=quiet)
    with pytest.raises(ConfigError, match="trains on images.*SequenceData"):
        run(cfg_for(kitti, pretext={"name": "rotation"}), tmp_path / "b", progress=False,
            evaluate=False, export=False, log=quiet)
    with pytest.raises(ConfigError, match="data.channels is 3"):
        pretext = registry.build("pretext", cfg_for(kitti).pretext, (28, 28, 1))
        pretext.prepare(SequenceData((), None, 3))


# -- sfa_time: close / far by time ---------------------------------------------

def test_sfa_time_labels_close_by_gap_and_draws_the_asked_share(kitti):
    seqs = read_kitti_odometry(kitti, ["00", "01"], camera="image_0")
    pretext = registry.build("pretext", cfg_for(kitti, pretext={"name": "sfa_time", "close_frames": 2,
                                                                "far_frames": 8}).pretext, (28, 28, 1))
    pairs = pretext.prepare(SequenceData(tuple(seqs), None, 1))
    gaps = np.abs(pairs.gaps)
    assert gaps.min() == 1 and gaps.max() == 8
    np.testing.assert_array_equal(pairs.labels["close"], (gaps <= 2).astype(int))
    uniform_share = float(np.mean(gaps <= 2))
    assert uniform_share < 0.4                         # close pairs are the minority of all pairs
    drawn = [labels for _, labels in pretext.batches(pairs, 64, 0, 0, 10)]
    close = np.concatenate([l["close"].numpy() for l in drawn])
    gap = np.concatenate([l["gap"].numpy() for l in drawn])
    np.testing.assert_array_equal(close, (np.abs(gap) <= 2).astype(int))   # the label is the gap's
    assert 0.42 < close.mean() < 0.58                   # close_ratio 0.5 of 640 draws
    np.testing.assert_array_equal(gap, pairs.gaps[np.concatenate([l["pair"].numpy() for l in drawn])])


def test_sfa_time_trains_with_the_contrastive_method(kitti, tmp_path):
    cfg = config_from_dict({**_raw(kitti), "pretext": {"name": "sfa_time", "close_frames": 2, "far_frames": 6},
                            "method": {"name": "contrastive", "margin": 10.0}})
    s = run(cfg, tmp_path / "run", progress=False, evaluate=False, export=False, log=quiet)
    assert np.isfinite(s["pretrain"]["final"]["loss"])
    doc = json.loads((tmp_path / "run" / "sfa_pairs.json").read_text())
    assert doc["close_pairs"] + doc["far_pairs"] == doc["pairs"] and abs(doc["close_probability"] - 0.5) < 1e-9
    with pytest.raises(ConfigError, match="far_frames .* must exceed close_frames"):
        config_from_dict({**_raw(kitti), "pretext": {"name": "sfa_time", "close_frames": 7, "far_frames": 7}})


def test_shuffle_learn_trains_three_towers_with_classify(kitti, tmp_path):
    cfg = config_from_dict({**_raw(kitti), "pretext": {"name": "shuffle_learn", "spacing": [1, 2]}})
    s = run(cfg, tmp_path / "run", progress=False, evaluate=False, export=False, log=quiet)
    assert np.isfinite(s["pretrain"]["final"]["loss"]) and "in_order_acc" in s["pretrain"]["final"]
    doc = json.loads((tmp_path / "run" / "shuffle_learn.json").read_text())
    assert doc["in_order"] + doc["out_of_order"] == doc["triplets"] > 0


@pytest.mark.parametrize("name", ["drives_egomotion", "drives_sfa_time", "drives_shuffle_learn",
                                  "kitti_egomotion", "kitti_sfa", "kitti_shuffle_learn"])
def test_drives_config_renders_trains_and_transfers_to_scenes(tmp_path, name):
    """Each drives config (configs/drives_egomotion.json, configs/drives_sfa_time.json,
    configs/drives_shuffle_learn.json) end to end on data rendered here (a few frames and scenes): its
    pretext on the KITTI tree (00-02; 03 held out and monitored), then the few-label
    transfer to the class-per-folder scene set with a softmax on each layer, and the export.
    The kitti configs (configs/kitti_egomotion.json, configs/kitti_sfa.json,
    configs/kitti_shuffle_learn.json: the thesis's sizes, real KITTI and SUN397 paths) the
    same way, with their --smoke sizes and the rendered tree's sequences; they also finetune."""
    from keras_ssl.config import load_config
    from keras_ssl.render.cli import main as render
    from support import CONFIGS, check_smoke_run

    kitti, scenes = tmp_path / "kitti", tmp_path / "scenes"
    assert render(["drives", "--out", str(kitti), "--sequences", "4", "--frames", "40", "--size", "64x192",
                   "--no-progress"]) == 0
    assert render(["scenes", "--out", str(scenes), "--classes", "4", "--per-class", "10",
                   "--test-per-class", "4", "--no-progress"]) == 0
    # the --smoke overrides of the config, then the rendered data's paths
    cfg = load_config(CONFIGS / f"{name}.json", smoke=True, overrides={
        "data.path": str(kitti), "data.eval_path": str(scenes), "data.frame_size": None,
        "data.validation_images": 8, "data.validation_pairs": 16, "eval.label_counts": [8, 16],
        "train.batch_size": 8, "data.sequences": ["00", "01", "02"], "data.validation_sequences": ["03"],
        **({"eval.per_class": [2, 4]} if name.startswith("kitti") else {})})   # 4 classes: 8, 16 labels
    assert cfg.data.validation_sequences == ("03",) and cfg.train.monitor_every
    s = run(cfg, tmp_path / "run", progress=False, log=quiet)
    check_smoke_run(cfg, tmp_path / "run")
    assert s["data"] == {"sequences": ["00", "01", "02"], "frames": [40, 40, 40]}
    # the last step is monitored: the pretext on held-out 03, kNN on the scenes' validation split
    last = s["pretrain"]["monitor"][-1]
    assert last["step"] == cfg.train.steps and {"val_loss", "knn_val"} <= set(last)
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    protocols = {r["protocol"] for r in rows}
    assert {"frozen_mlp", "scratch", "knn"} <= protocols
    assert {f"linear:{t}" for t in ("norm1", "norm2", "conv3", "conv4", "pool5")} <= protocols
    assert all(r["labels"] in (8, 16) for r in rows)
    assert ("finetune" in protocols) == name.startswith("kitti")
    record = {"egomotion": "motion_bins.json", "sfa_time": "sfa_pairs.json", "sfa": "sfa_pairs.json",
              "shuffle_learn": "shuffle_learn.json"}[name.split("_", 1)[1]]
    assert (tmp_path / "run" / record).is_file() and s["export"]


# -- held-out sequences: the pretext monitor -------------------------------------

@pytest.fixture
def kitti3(kitti):
    write_drive(kitti, "02", 12, 7)
    return kitti


def test_validation_sequences_are_labeled_with_the_training_bins(kitti3):
    """The held-out index takes the edges fitted on the training pairs (not its own), so a
    class means the same motion in both: each label is to_bins of the pair's motion from
    the poses under the training edges."""
    cfg = cfg_for(kitti3)
    pretext = registry.build("pretext", cfg.pretext, (28, 28, 1))
    train = pretext.prepare(SequenceData(tuple(read_kitti_odometry(kitti3, ["00", "01"], camera="image_0")), None, 1))
    (held,) = read_kitti_odometry(kitti3, ["02"], camera="image_0")
    val = pretext.validation_index(SequenceData((held,), None, 1))
    assert val.edges == train.edges and val.names == ("02",)
    own = frame_pairs([held], 3, bins=4).edges
    assert own != train.edges                  # fitted on the held-out pairs, they would differ
    m = pair_motion(held.poses, val.pairs - val.offsets[0])
    for a in AXES:
        np.testing.assert_array_equal(val.labels[a], to_bins(getattr(m, a), train.edges[a]))


def test_the_pretext_monitor_is_the_method_on_a_fixed_draw_of_held_out_pairs(kitti3, tmp_path):
    """PretextValidation's val_<target>_acc is the argmax accuracy of the method's heads on
    its batches (by hand) and val_loss their summed cross-entropy per pair; the same draw at
    every call (two calls agree), and it follows the weights (after training it differs)."""
    import tensorflow as tf

    from keras_ssl.data.sequences import load_sequences
    from keras_ssl.training.loop import Pretrainer
    from keras_ssl.training.monitors import PretextValidation

    cfg = cfg_for(kitti3, validation_sequences=["02"])
    pretext = registry.build("pretext", cfg.pretext, (28, 28, 1))
    pairs = pretext.prepare(load_sequences(cfg.data))
    index = pretext.validation_index(load_sequences(cfg.data, validation=True))
    t = Pretrainer(cfg, tmp_path, pretext, progress=False)
    mon = PretextValidation(t.method, pretext, index, batch_size=8, examples=20, seed=3)
    assert len(mon.batches) == 3 and mon.examples == 24
    first = mon()
    right = {a: 0 for a in AXES}
    loss = 0.0
    for views, labels in mon.batches:
        out = t.method(views, training=False)
        for a in AXES:
            y = labels[a].numpy()
            right[a] += int(np.sum(np.argmax(out[a].numpy(), -1) == y))
            loss += float(tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, out[a])))
        assert set(labels["pair"].numpy()) <= set(range(len(index)))
    assert set(first) == {"val_loss", "val_tx_acc", "val_tz_acc", "val_yaw_acc"}
    for a in AXES:
        assert first[f"val_{a}_acc"] == pytest.approx(right[a] / 24)
    assert first["val_loss"] == pytest.approx(loss / 24, rel=1e-5)
    assert mon() == first
    t.train(pairs)
    assert mon() != first


def test_the_job_monitors_held_out_sequences_and_refuses_bad_ones(kitti3, tmp_path):
    raw = _raw(kitti3, validation_sequences=["02"], validation_images=0, validation_pairs=16)
    raw["train"]["monitor_every"] = 2
    s = run(config_from_dict(raw), tmp_path / "run", progress=False, evaluate=False, export=False,
            log=quiet)
    mon = s["pretrain"]["monitor"]
    assert [m["step"] for m in mon] == [2, 4]
    assert {"val_loss", "val_tx_acc", "val_tz_acc", "val_yaw_acc"} <= set(mon[-1])
    assert s["data"]["sequences"] == ["00", "01"]          # 02 is not pretrained on
    with pytest.raises(ConfigError, match=r"validation_sequences \['01'\] are also in data.sequences"):
        cfg_for(kitti3, validation_sequences=["01"])
    with pytest.raises(ConfigError, match="validation_sequences need a sequence dataset"):
        cfg_for(kitti3, dataset="mnist", validation_sequences=["02"])


def test_zscore_binning_gives_bins_plus_two_classes_from_the_training_pairs(kitti, tmp_path):
    """pretext.binning "zscore": 4 bins + 2 overflow = 6 classes per axis, the heads sized
    to them, the edges those of fit_zscore_bins on the training pairs' motion with
    max_frame_gap / 7 standard deviations per bin, recorded in motion_bins.json."""
    from keras_ssl.data.motion import fit_zscore_bins

    cfg = cfg_for(kitti, pretext={"name": "odometry", "max_frame_gap": 3, "bins": 4, "binning": "zscore"})
    pretext = registry.build("pretext", cfg.pretext, (28, 28, 1))
    assert pretext.targets == {"tx": 6, "tz": 6, "yaw": 6}
    s = run(cfg, tmp_path / "run", progress=False, evaluate=False, export=False, log=quiet)
    assert np.isfinite(s["pretrain"]["final"]["loss"])
    doc = json.loads((tmp_path / "run" / "motion_bins.json").read_text())
    pairs = frame_pairs(read_kitti_odometry(kitti, ["00", "01"], camera="image_0"), 3, bins=4)
    assert doc["binning"] == "zscore" and doc["classes"] == 6
    for a in AXES:
        np.testing.assert_allclose(doc["edges"][a], fit_zscore_bins(getattr(pairs.motion, a), 4, 3 / 7))
        assert len(doc["class_counts"][a]) == 6 and sum(doc["class_counts"][a]) == len(pairs)
