"""keras_ssl.bench times the step a fresh run trains: the pretext's and the method's own
preparation (a sequence pretext's frame pairs, DeepCluster's first clustering) happen
before the timing, as the trainer does them, so every method is timed on its real batches."""
import numpy as np

import support
from keras_ssl.training import bench


def test_deepcluster_is_timed_after_its_first_clustering():
    cfg = support.small_cfg({"name": "deepcluster", "clusters": 4, "pca_dim": 4, "recluster_every": 3},
                            {"name": "augment"}, data={"max_pretrain_images": 64}, batch_size=16)
    with bench.timed_setup(cfg) as (trainer, pretext, data, hook_seconds):
        assignment = trainer.method.state.assignment.numpy()
        assert len(data) == 64 and hook_seconds > 0
        # every image has a cluster (-1 before the hook), and more than one cluster is used
        assert assignment.min() >= 0 and len(np.unique(assignment)) > 1


def test_a_sequence_config_is_timed_on_its_frame_pairs(tmp_path):
    from keras_ssl.config import config_from_dict

    support.write_drive(tmp_path, "00", 12, 0)
    cfg = config_from_dict({
        "name": "drive", "encoder": {"name": "convnet", "filters": [4, 8], "output": "gap"},
        "pretext": {"name": "odometry", "max_frame_gap": 3, "bins": 4},
        "method": {"name": "classify", "hidden": 8, "dropout": 0.0},
        "data": {"dataset": "kitti_odometry", "path": str(tmp_path), "sequences": ["00"],
                 "camera": "image_0", "image_size": 28, "channels": 1},
        "train": {"steps": 4, "batch_size": 8, "steps_per_execution": 1}})
    out = bench.run(cfg, steps=2, warmup=1, repeats=1)
    assert out["pretext"] == "odometry" and out["views"] == 2
    assert out["examples_per_s"] > 0 and out["pipeline_alone_per_s"] > 0 and out["hook_seconds"] == 0
