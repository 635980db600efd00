"""The report's pictures, embeddings and settings in TensorBoard, inside the run directory.

``tensorboard --logdir runs/`` then shows, per run:

- ``RUN/tb/report`` (Images tab): conv1's filter grid and each pretext head's
  confusion matrix, ``tf.summary.image`` at the run's last step;
- ``RUN/tb/projector`` (Projector tab): the final features of the t-SNE images,
  a checkpoint of one variable holding them (tensor
  :data:`EMBEDDING_TENSOR`), ``metadata.tsv`` (one label per line, no header:
  TensorBoard's single-column form) and ``sprite.png`` (the images as one
  MNIST-style grid of thumbnails, row by row, at most 8192 px a side);
- ``RUN/tb/hparams`` (HParams tab): one session per run, the flattened config's
  scalar settings (``train.learning_rate``, ``pretext.name``...) as hparams and
  the ``frozen_mlp`` mean per label count as metrics (``frozen_mlp/<n>_labels``
  on the test split, ``validation/frozen_mlp/<n>_labels`` on the validation split).

``tb/report`` and ``tb/hparams`` hold only the report's summaries: a new report
removes the event files of the previous one there first (TensorBoard would
otherwise show both). No experiment-wide ``hparams_config`` is written: each run dir is its own, and
TensorBoard infers the columns from the sessions of every run it finds.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from keras_ssl.report.outputs import Outputs, new_files, snapshot

EMBEDDING_TENSOR = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
SPRITE_MAX = 8192
#: Config keys that are documentation or overrides for other runs, not settings of this one.
NOT_SETTINGS = ("description", "cost", "smoke", "expected")


def _fresh(logdir: Path) -> set:
    """Remove the event files of a previous report from ``logdir`` (only the report writes
    there); returns the files left."""
    if logdir.is_dir():
        for p in logdir.glob("events.out.tfevents.*"):
            p.unlink()
    return snapshot(logdir)


def _events(logdir: Path, before: set, outputs: Outputs, what: str) -> list[Path]:
    return [outputs.record(p, what) for p in new_files(logdir, before)]


def write_images(logdir, images: dict, step: int, outputs: Outputs) -> list[Path]:
    """``images``: tag -> (uint8 [H, W] or [H, W, C], description); one summary each."""
    import tensorflow as tf

    logdir = Path(logdir)
    before = _fresh(logdir)
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default(step=step):
        for tag, (array, description) in images.items():
            arr = np.asarray(array, np.uint8)
            arr = arr[..., None] if arr.ndim == 2 else arr
            tf.summary.image(tag, arr[None], max_outputs=1, description=description)
    writer.close()
    return _events(logdir, before, outputs, f"TensorBoard images: {', '.join(images)}")


def read_png(path) -> np.ndarray:
    """uint8 [H, W, 3] of a PNG file."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def sprite(images: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """(sprite uint8 [S, S] or [S, S, 3], (thumbnail height, width)) of uint8 images [N, H, W, C]."""
    n, h, w, c = images.shape
    cols = math.ceil(math.sqrt(n))
    step = max(1, math.ceil(cols * max(h, w) / SPRITE_MAX))
    thumbs = images[:, ::step, ::step, :]
    th, tw = thumbs.shape[1:3]
    out = np.zeros((cols * th, cols * tw, c), np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        out[r * th:(r + 1) * th, k * tw:(k + 1) * tw] = thumbs[i]
    if c == 1:
        return out[..., 0], (th, tw)
    return (out[..., :3] if c >= 3 else np.repeat(out[..., :1], 3, -1)), (th, tw)


def write_projector(logdir, features: np.ndarray, labels: np.ndarray, images: np.ndarray,
                    outputs: Outputs, source: str) -> dict:
    """The projector's files for ``features`` [N, D] of uint8 ``images`` with ``labels``."""
    import tensorflow as tf
    from tensorboard.plugins import projector

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    n = len(features)
    outputs.write_text(logdir / "metadata.tsv", "".join(f"{int(y)}\n" for y in labels),
                       f"projector metadata: the class of each of the {n} embedded {source}, one a line")
    sheet, (th, tw) = sprite(images)
    outputs.save_image(sheet, logdir / "sprite.png",
                       f"projector sprite: the {n} embedded {source} as {th}x{tw} thumbnails")
    before = snapshot(logdir)
    ckpt = tf.train.Checkpoint(embedding=tf.Variable(np.asarray(features, np.float32), name="embedding"))
    manager = tf.train.CheckpointManager(ckpt, str(logdir), max_to_keep=1, checkpoint_name="embedding")
    path = manager.save(checkpoint_number=1)
    for p in sorted(set(logdir.glob("embedding-1.*")) | {logdir / "checkpoint"}):
        outputs.record(p, f"projector checkpoint: the {n} x {features.shape[1]} final features")
    config = projector.ProjectorConfig()
    emb = config.embeddings.add()
    emb.tensor_name = EMBEDDING_TENSOR
    emb.metadata_path = "metadata.tsv"
    emb.sprite.image_path = "sprite.png"
    emb.sprite.single_image_dim.extend([tw, th])
    projector.visualize_embeddings(str(logdir), config)
    outputs.record(logdir / "projector_config.pbtxt", "projector config: tensor, metadata and sprite")
    _events(logdir, before | set(outputs.files), outputs, "projector files")
    return {"checkpoint": path, "count": n, "thumbnail": (th, tw)}


def flatten(config: dict, prefix: str = "") -> dict:
    """Nested dict -> {"a.b": value}, lists and dicts kept as values only at their leaves."""
    out = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def hparams_of(config: dict) -> dict:
    """The config's scalar settings (bool, int, float, str; no None, lists or documentation)."""
    flat = flatten({k: v for k, v in config.items() if k not in NOT_SETTINGS})
    return {k: v for k, v in flat.items() if isinstance(v, (bool, int, float, str))}


def metrics_of(results: dict, protocol: str = "frozen_mlp") -> dict:
    """split -> results document  =>  metric tag -> mean accuracy of ``protocol`` per label count."""
    out = {}
    for split, doc in results.items():
        prefix = "" if split == "test" else f"{split}/"
        for r in doc.get("rows", []):
            if r.get("protocol") == protocol:
                out[f"{prefix}{protocol}/{int(r['labels'])}_labels"] = float(r["mean"])
    return out


def write_hparams(logdir, config: dict, results: dict, trial_id: str, step: int,
                  outputs: Outputs) -> dict:
    """One HParams session: ``hparams_of(config)`` and ``metrics_of(results)``; returns both."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    logdir = Path(logdir)
    before = _fresh(logdir)
    hparams, metrics = hparams_of(config), metrics_of(results)
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default(step=step):
        hp.hparams(hparams, trial_id=trial_id)
        for tag, value in metrics.items():
            tf.summary.scalar(tag, value)
    writer.close()
    _events(logdir, before, outputs, f"TensorBoard HParams session: {len(hparams)} settings, "
                                     f"{len(metrics)} metrics ({', '.join(metrics)})")
    return {"hparams": hparams, "metrics": metrics}
