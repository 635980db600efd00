import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.config import DataConfig
from keras_ssl.data import DataError, ImageSet, few_label_subset, load_labeled, load_pretrain, split_validation


def test_few_label_subset_is_stratified_and_seeded():
    labels = np.repeat(np.arange(10), 50)
    a = few_label_subset(labels, 100, seed=3)
    assert len(a) == 100 and len(set(a)) == 100
    assert np.all(np.bincount(labels[a]) == 10)
    assert np.array_equal(a, few_label_subset(labels, 100, seed=3))
    assert not np.array_equal(a, few_label_subset(labels, 100, seed=4))
    b = few_label_subset(labels, 103, seed=0)
    counts = np.bincount(labels[b])
    assert counts.sum() == 103 and counts.min() == 10 and counts.max() == 11


def test_few_label_subset_errors():
    labels = np.repeat(np.arange(10), 5)
    with pytest.raises(DataError, match="cannot cover"):
        few_label_subset(labels, 5, 0)
    with pytest.raises(DataError, match="only 50 available"):
        few_label_subset(labels, 100, 0)
    with pytest.raises(DataError, match="class"):
        few_label_subset(np.array([0] * 40 + [1] * 2), 20, 0)


def test_split_validation_disjoint():
    s = ImageSet(np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1), np.arange(100) % 10)
    rest, val = split_validation(s, 20, seed=1)
    assert len(rest) == 80 and len(val) == 20
    assert not set(rest.images.ravel()) & set(val.images.ravel())
    with pytest.raises(DataError):
        split_validation(s, 100, 0)


def test_mnist_offline():
    train, test = load_labeled("mnist")
    assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
    assert train.images.dtype == np.uint8 and set(np.unique(test.labels)) == set(range(10))


def test_folder_of_images(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    for i in range(3):
        img = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
        (tmp_path / ("sub" if i else ".") / f"im{i}.png").write_bytes(tf.io.encode_png(img).numpy())
    (tmp_path / "notes.txt").write_text("ignored")
    cfg = DataConfig(dataset="folder", path=str(tmp_path), image_size=16, channels=1)
    s = load_pretrain(cfg)
    assert s.images.shape == (3, 16, 16, 1) and s.labels is None


def test_folder_reads_every_format_it_lists_pixel_for_pixel(tmp_path):
    """One image per suffix the folder dataset lists (Pillow writes them, losslessly):
    each is read, in path order, with exactly its pixels (WebP decodes to uint8 too)."""
    import io

    from PIL import Image

    from keras_ssl.data.core import IMAGE_SUFFIXES

    rng = np.random.default_rng(1)
    kinds = {".png": "PNG", ".jpg": None, ".jpeg": None, ".bmp": "BMP", ".gif": "GIF", ".webp": "WEBP"}
    assert set(kinds) == set(IMAGE_SUFFIXES)
    written = {}
    for i, (suffix, fmt) in enumerate(sorted(kinds.items())):
        img = rng.integers(0, 256, (16, 16), dtype=np.uint8)
        if fmt is None:      # JPEG is lossy: a flat grey survives it exactly
            img = np.full((16, 16), 128, np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format=fmt or "JPEG", **({"lossless": True} if fmt == "WEBP" else {}))
        (tmp_path / f"{i}{suffix}").write_bytes(buf.getvalue())
        written[f"{i}{suffix}"] = img
    s = load_pretrain(DataConfig(dataset="folder", path=str(tmp_path), image_size=16, channels=1))
    assert s.images.shape == (len(kinds), 16, 16, 1)
    for got, name in zip(s.images, sorted(written, key=lambda n: int(n.split(".")[0]))):
        np.testing.assert_array_equal(got[..., 0], written[name], err_msg=name)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        load_pretrain(DataConfig(dataset="folder", path=str(tmp_path / "missing")))
    with pytest.raises(DataError, match="no PNG/JPEG/BMP/GIF/WebP images"):
        load_pretrain(DataConfig(dataset="folder", path=str(tmp_path)))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="bad.png"):
        load_pretrain(DataConfig(dataset="folder", path=str(tmp_path)))
    with pytest.raises(DataError, match="unknown data.dataset"):
        load_pretrain(DataConfig(dataset="imagenet"))
