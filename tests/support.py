"""Helpers shared by the test modules (fixtures built on them live in conftest.py).

Test modules import this as ``support`` (pytest puts tests/, the directory of
the root conftest.py, on sys.path).
"""
import os
from pathlib import Path

import numpy as np

#: The repository root (the project checkout).
ROOT = Path(__file__).resolve().parents[1]
#: Environment for a subprocess running ``python -m keras_ssl...`` from any directory.
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                  "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def synthetic_digits(n: int, size: int = 28, channels: int = 1, seed: int = 0, classes: int = 10):
    """(uint8 images [n, size, size, channels], int64 labels): a bright bar per class,
    placed and oriented by class, with noise; learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    imgs = np.zeros((n, size, size, channels), np.float32)
    for i, c in enumerate(labels):
        r = 4 + (c * 2) % (size - 8)
        if c % 2:
            imgs[i, r:r + 3, 4:size - 4] = 1.0
        else:
            imgs[i, 4:size - 4, r:r + 3] = 1.0
    imgs += rng.uniform(0, 0.2, imgs.shape)
    return (np.clip(imgs, 0, 1) * 255).astype(np.uint8), labels.astype(np.int64)


def tiny_encoder(seed: int = 0, channels: int = 1, size: int = 28, dropout: float = 0.0):
    """Conv -> pool -> flatten [-> dropout] -> dense 8, input ``images``: the smallest
    encoder that export and serving tests need. ``dropout`` > 0 makes ``training=True``
    differ from inference (export must call the encoder with ``training=False``)."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(size, size, channels), name="images")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="drop")(x)
    out = keras.layers.Dense(8, name="fc")(x)
    return keras.Model(inp, out, name="tiny_encoder")


def as_float(images):
    """uint8 images -> float32 tensor in [0, 1] (what a pretext receives)."""
    import tensorflow as tf

    return tf.constant(images, tf.float32) / 255.0


def sample(pretext, x, seed=(1, 2)):
    """One batch of ``pretext`` on float images ``x`` (indices 0..B-1): (views, labels)."""
    import tensorflow as tf

    return pretext(x, tf.range(x.shape[0], dtype=tf.int64), tf.constant(seed, tf.int32))


def images(n: int = 3, channels: int = 1, size: int = 28, seed: int = 1):
    """float32 [n, size, size, channels] uniform in [0, 1): pixels for encoders and exports."""
    return np.random.default_rng(seed).random((n, size, size, channels), dtype=np.float32)


def png(arr01) -> bytes:
    """PNG bytes of one [H, W, C] image in [0, 1] (rounded to 8 bits)."""
    import tensorflow as tf

    return tf.io.encode_png(np.round(arr01 * 255).astype(np.uint8)).numpy()


# -- small experiments -------------------------------------------------------

#: The encoder of small experiments: two conv blocks, 8 features (global average pool).
TINY_CONVNET = {"name": "convnet", "filters": [4, 8], "output": "gap"}
#: The train section of small experiments: a few steps of 16 images.
SMALL_TRAIN = {"steps": 4, "batch_size": 16, "steps_per_execution": 2, "checkpoint_every": 2,
               "log_every": 2, "sample_examples": 2, "learning_rate": 0.1}


def small_cfg(method=None, pretext=None, *, encoder=None, seed=0, name="t", data=None, **train):
    """A small experiment config (28x28x1 images). ``method``, ``pretext``, ``encoder``,
    ``data``: config sections (defaults: ``classify`` on ``rotation``, :data:`TINY_CONVNET`,
    the data defaults); keyword ``train`` overrides :data:`SMALL_TRAIN` key by key."""
    from keras_ssl.config import config_from_dict

    raw = {"name": name, "seed": seed, "encoder": encoder or TINY_CONVNET,
           "pretext": pretext or {"name": "rotation"},
           "method": method or {"name": "classify", "hidden": 16, "dropout": 0.0},
           "train": {**SMALL_TRAIN, **train}}
    if data is not None:
        raw["data"] = data
    return config_from_dict(raw)


def trainer(cfg, run_dir, strategy=None, num_images=None):
    """A Pretrainer of ``cfg`` (its pretext built from the config), no progress bar."""
    from keras_ssl import registry
    from keras_ssl.training.loop import Pretrainer

    shape = (cfg.data.image_size, cfg.data.image_size, cfg.data.channels)
    pretext = registry.build("pretext", cfg.pretext, shape)
    return Pretrainer(cfg, run_dir, pretext, strategy=strategy, progress=False, num_images=num_images)


def weights(trainer):
    """Copies of the trainer's method's trainable weights (encoder and heads)."""
    return [w.numpy().copy() for w in trainer.method.trainable_weights]


# -- shipped configs -----------------------------------------------------------

#: The shipped configs.
CONFIGS = ROOT / "configs"


def is_tune_config(path) -> bool:
    """A tuning config (``python -m keras_ssl.tune``): it has ``stages``; the others are experiments."""
    import json

    return "stages" in json.loads(Path(path).read_text())


def is_selection_file(path) -> bool:
    """A selection file (``python -m keras_ssl.select``): it has ``variants``."""
    import json

    return "variants" in json.loads(Path(path).read_text())


def experiment_configs() -> list:
    """Every experiment config under configs/ (any depth), sorted: the JSON files that are
    neither tuning configs nor selection files."""
    return sorted(p for p in CONFIGS.rglob("*.json") if not (is_tune_config(p) or is_selection_file(p)))


def check_smoke_run(cfg, run_dir, exported: bool = True) -> dict:
    """What every ``--smoke`` job of a shipped config must leave in ``run_dir`` (``cfg``:
    the resolved config, loaded with ``smoke=True``; ``exported``: the job ran with its
    export); returns summary.json."""
    import json

    from keras_ssl.registry import run_label

    run_dir = Path(run_dir)
    assert cfg.description and cfg.cost, "a shipped config says what it is for and what it costs"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert np.isfinite(summary["pretrain"]["final"]["loss"])
    assert (run_dir / "encoder.keras").is_file()
    rows = json.loads((run_dir / "results.json").read_text())["rows"]
    assert {r["protocol"] for r in rows} >= {"frozen_mlp", "knn", "scratch"}
    assert {("frozen_mlp", n) for n in cfg.eval.label_counts} <= {(r["protocol"], r["labels"]) for r in rows}
    # The encoder's rows are named after the run: the method, or the pretext of a shared head.
    assert {r["method"] for r in rows if r["protocol"] == "frozen_mlp"} == {run_label(cfg.pretext.name, cfg.method.name)}
    if cfg.train.monitor_every and cfg.data.validation_images:     # the kNN monitor ran
        assert summary["pretrain"]["monitor"] and all(
            0.0 <= m["knn_val"] <= 1.0 for m in summary["pretrain"]["monitor"])
    if exported and cfg.export.enabled:                            # one SavedModel version
        name = cfg.export.model_name or cfg.name
        assert [p.parent.name for p in (run_dir / "export" / name).glob("*/saved_model.pb")] == ["1"]
    return summary


def write_drive(root, name, n, seed, frame=(36, 48)):
    """A KITTI sequence of ``n`` random grey frames (``frame`` px) and a planar forward drive."""
    from PIL import Image

    from keras_ssl.data.motion import motion_matrix

    rng = np.random.default_rng(seed)
    cam = root / "sequences" / name / "image_0"
    cam.mkdir(parents=True)
    for k in range(n):
        Image.fromarray(rng.integers(0, 256, frame, dtype=np.uint8)).save(cam / f"{k:06d}.png")
    poses, t = [], np.eye(4)
    for _ in range(n):
        poses.append(t.copy())
        t = t @ motion_matrix(rng.normal(0, 0.1), rng.uniform(0.5, 1.5), rng.normal(0, 0.05))
    (root / "poses").mkdir(exist_ok=True)
    (root / "poses" / f"{name}.txt").write_text(
        "".join(" ".join(f"{x:.12e}" for x in p[:3].ravel()) + "\n" for p in poses))
