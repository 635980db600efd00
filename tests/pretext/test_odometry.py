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
    a = keras.models.load_model(tmp_path / "whole" / "encoder.keras").get_weights()
    b = keras.models.load_model(tmp_path / "cut" / "encoder.keras").get_weights()
    assert max(float(np.max(np.abs(x - y))) for x, y in zip(a, b)) == 0.0


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


def test_drives_config_renders_trains_and_transfers_to_scenes(tmp_path):
    """configs/drives_egomotion.json end to end on data rendered here (a few frames and
    scenes): odometry pretraining on the KITTI tree, then the few-label transfer to the
    class-per-folder scene set with a softmax on each layer, and the export."""
    from keras_ssl.config import load_config
    from keras_ssl.render.cli import main as render
    from support import CONFIGS, check_smoke_run

    kitti, scenes = tmp_path / "kitti", tmp_path / "scenes"
    assert render(["drives", "--out", str(kitti), "--sequences", "3", "--frames", "16", "--size", "64x192",
                   "--no-progress"]) == 0
    assert render(["scenes", "--out", str(scenes), "--classes", "4", "--per-class", "10",
                   "--test-per-class", "4", "--no-progress"]) == 0
    # the --smoke overrides of configs/drives_egomotion.json, then the rendered data's paths
    cfg = load_config(CONFIGS / "drives_egomotion.json", smoke=True, overrides={
        "data.path": str(kitti), "data.eval_path": str(scenes), "data.frame_size": None,
        "data.validation_images": 8, "eval.label_counts": [8, 16], "train.batch_size": 8})
    run(cfg, tmp_path / "run", progress=False, log=quiet)
    s = check_smoke_run(cfg, tmp_path / "run")
    assert s["data"] == {"sequences": ["00", "01", "02"], "frames": [16, 16, 16]}
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    protocols = {r["protocol"] for r in rows}
    assert {"frozen_mlp", "scratch", "knn"} <= protocols
    assert {f"linear:{t}" for t in ("norm1", "norm2", "conv3", "conv4", "pool5")} <= protocols
    assert all(r["labels"] in (8, 16) for r in rows)
    assert (tmp_path / "run" / "motion_bins.json").is_file() and s["export"]
