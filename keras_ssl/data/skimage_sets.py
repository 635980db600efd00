"""Colour images that need no download: crops of the photographs and textures that
scikit-image ships inside its wheel (``skimage.data``; ``scikit-image`` is pinned in
requirements.txt).

Every source image is first resized (antialiased) so that its shorter side is
:data:`SCALE` crop sides (``4 * data.image_size``: a crop covers a quarter of that side),
then converted to ``data.channels`` (grayscale sources repeated to RGB; RGB to gray by
``tf.image.rgb_to_grayscale``). Its columns are split once: the left
:data:`TRAIN_FRACTION` (70 %) is the **train region**, the rest the **test region**
(left and right parts of one image share no pixel). Crops are ``image_size`` squares at
uniformly random positions inside a region, drawn once at load with numpy's generator
seeded by ``(data.crop_seed, purpose)``: the same seed gives the same crops.

- ``data.dataset: "skimage_photos"``: unlabeled pretraining images: ``data.pretrain_crops``
  crops of the train regions of the colour photographs :data:`PHOTOS`, the same number
  from each (crop i from photo i mod 8). Pretraining never sees a test region.
- ``data.eval_dataset: "skimage_sources"``: labeled: K = 11 classes, the source images
  :data:`SOURCES` (the 8 photographs and 3 grayscale textures), the label of a crop the
  index of its source in that tuple; ``data.eval_train_crops`` crops per class from the
  train regions, ``data.eval_test_crops`` per class from the test regions, each split in
  a seeded random order of classes. A crop's
  class is which image, so which scene or texture, it shows. The validation split is
  carved from the train crops (:func:`keras_ssl.data.split_validation`): same regions,
  so it is easier than the test set; it serves model selection only.
"""
from __future__ import annotations

import functools

import numpy as np

#: The colour photographs of skimage.data (name -> its loader), each 300 to 1,411 px.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
          "immunohistochemistry", "retina", "motorcycle")
#: The grayscale textures added as classes of the labeled set.
TEXTURES = ("brick", "grass", "gravel")
#: The classes of ``skimage_sources``, label = index.
SOURCES = PHOTOS + TEXTURES
#: Fraction of each source's columns (from the left) in its train region.
TRAIN_FRACTION = 0.7
#: A source's shorter side, resized, in crop sides.
SCALE = 4
#: Seed purposes: (crop_seed, purpose) seeds each draw.
PRETRAIN, EVAL_TRAIN, EVAL_TEST = 0, 1, 2


def _raw(name: str) -> np.ndarray:
    """uint8 [H, W] or [H, W, 3] of source ``name``; DataError if scikit-image is missing."""
    from keras_ssl.data.core import DataError
    try:
        import skimage.data as sk
    except ModuleNotFoundError:
        raise DataError("the skimage datasets need scikit-image: pip install -r requirements.txt "
                        "(scikit-image is pinned there)") from None
    if name == "motorcycle":
        img = sk.stereo_motorcycle()[0]           # the left view of the stereo pair
    else:
        img = getattr(sk, name)()
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise DataError(f"skimage.data.{name} is {img.dtype} {img.shape}, expected a uint8 image")
    return img[..., :3] if img.ndim == 3 else img


@functools.lru_cache(maxsize=32)
def source(name: str, image_size: int, channels: int) -> np.ndarray:
    """uint8 [h, w, channels]: source ``name`` resized so its shorter side is
    ``SCALE * image_size`` and converted to ``channels`` (read-only; cached)."""
    import tensorflow as tf

    img = tf.convert_to_tensor(_raw(name))
    if img.shape.rank == 2:
        img = img[..., None]
    if channels == 1 and img.shape[-1] == 3:
        img = tf.image.rgb_to_grayscale(img)
    elif channels != img.shape[-1]:
        img = tf.repeat(img[..., :1], channels, axis=-1)
    h, w = int(img.shape[0]), int(img.shape[1])
    short = SCALE * image_size
    size = (short, max(short, round(w * short / h))) if h <= w else (max(short, round(h * short / w)), short)
    out = tf.image.resize(tf.cast(img, tf.float32), size, antialias=True)
    out = tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8).numpy()
    out.setflags(write=False)
    return out


def region_columns(width: int, region: str) -> tuple[int, int]:
    """[start, stop) columns of the ``"train"`` or ``"test"`` region of a source ``width`` wide."""
    cut = int(round(TRAIN_FRACTION * width))
    return (0, cut) if region == "train" else (cut, width)


def crop_positions(shape, size: int, region: str, n: int, rng) -> np.ndarray:
    """int64 [n, 2]: (top, left) of ``n`` random ``size`` crops inside ``region`` of an image of ``shape``."""
    from keras_ssl.data.core import DataError
    h, w = int(shape[0]), int(shape[1])
    c0, c1 = region_columns(w, region)
    if c1 - c0 < size or h < size:
        raise DataError(f"a {region} region of {h}x{c1 - c0} px cannot hold {size}x{size} crops")
    return np.stack([rng.integers(0, h - size + 1, n), rng.integers(c0, c1 - size + 1, n)], 1)


def crops(names, per_source, image_size: int, channels: int, region: str, seed) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N, size, size, channels] crops, int64 [N] index of each crop's source in
    ``names``): ``per_source[i]`` crops of ``names[i]``'s ``region``, rng seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i, (name, n) in enumerate(zip(names, per_source)):
        img = source(name, image_size, channels)
        for top, left in crop_positions(img.shape, image_size, region, int(n), rng):
            images.append(img[top:top + image_size, left:left + image_size])
        labels += [i] * int(n)
    return np.stack(images), np.asarray(labels, np.int64)


def skimage_photos(image_size: int, channels: int, n: int, crop_seed: int) -> np.ndarray:
    """uint8 [n, size, size, channels]: pretraining crops of the photographs' train regions,
    in order of crop index (crop i from photo i mod 8)."""
    k = len(PHOTOS)
    per = [n // k + (1 if i < n % k else 0) for i in range(k)]
    imgs, labels = crops(PHOTOS, per, image_size, channels, "train", (crop_seed, PRETRAIN))
    # interleave the photos (crop i from photo i mod k): the first N of them are balanced
    order = np.argsort(np.concatenate([np.arange(m) * k + i for i, m in enumerate(per)]), kind="stable")
    return imgs[order]


def skimage_sources(image_size: int, channels: int, train_per_class: int, test_per_class: int,
                    crop_seed: int):
    """(train, test) ImageSets of the labeled source-identification set (module docstring)."""
    from keras_ssl.data.core import ImageSet
    k = len(SOURCES)
    out = []
    for n, region, purpose in ((train_per_class, "train", EVAL_TRAIN), (test_per_class, "test", EVAL_TEST)):
        images, labels = crops(SOURCES, [n] * k, image_size, channels, region, (crop_seed, purpose))
        # classes mixed (seeded): the first N test images (eval.max_test_images) cover them all
        order = np.random.default_rng((crop_seed, purpose, 1)).permutation(len(labels))
        out.append(ImageSet(images[order], labels[order]))
    return tuple(out)
