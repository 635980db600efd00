"""keras_ssl.training.job: a job whose parts cannot work together is refused before it pretrains."""
import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.config import config_from_dict
from keras_ssl.data import DataError
from keras_ssl.training.job import run


def colour_folder(root, n=4, size=64):
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        (root / f"{i}.png").write_bytes(tf.io.encode_png(img).numpy())
    return root


def folder_cfg(root, **eval_):
    return config_from_dict({
        "name": "photos", "encoder": {"name": "convnet", "filters": [4], "output": "gap"},
        "pretext": "rotation", "method": {"name": "classify", "hidden": 8},
        "data": {"dataset": "folder", "path": str(root), "image_size": 64, "channels": 3},
        "train": {"steps": 2, "batch_size": 4, "steps_per_execution": 1, "checkpoint_every": 1,
                  "sample_examples": 0},
        "eval": eval_})


def test_mnist_evaluation_of_a_colour_encoder_is_refused_before_pretraining(tmp_path):
    cfg = folder_cfg(colour_folder(tmp_path / "photos"))
    with pytest.raises(DataError, match=r"data.eval_dataset 'mnist' is 28x28x1.*image_size=64.*--skip-eval"):
        run(cfg, tmp_path / "run", progress=False, log=lambda *_: None)
    assert not (tmp_path / "run").exists()           # nothing pretrained, nothing written
    # without the evaluation the same job trains
    s = run(cfg, tmp_path / "run", progress=False, evaluate=False, export=False, log=lambda *_: None)
    assert s["pretrain"]["steps"] == 2 and (tmp_path / "run" / "encoder.keras").is_file()
