"""The offline colour datasets (keras_ssl/data/skimage_sets.py) and the labeled folder."""
import numpy as np
import pytest

from keras_ssl.config import DataConfig
from keras_ssl.data import DataError, load_labeled, load_pretrain
from keras_ssl.data import skimage_sets as sk
from keras_ssl.data.core import check_labeled, eval_options
from support import png

SIZE = 8    # crops of 8 px: sources resized to a 32 px shorter side, searched exhaustively


def _find(crop, img):
    """Every (top, left) where ``crop`` sits in ``img`` exactly."""
    s = crop.shape[0]
    cand = np.argwhere(np.all(img[: img.shape[0] - s + 1, : img.shape[1] - s + 1] == crop[0, 0], -1))
    return [(int(t), int(l)) for t, l in cand if np.array_equal(img[t:t + s, l:l + s], crop)]


def _labeled(seed=0, train=6, test=4):
    d = DataConfig(image_size=SIZE, channels=3, eval_dataset="skimage_sources", crop_seed=seed,
                   eval_train_crops=train, eval_test_crops=test, validation_images=0)
    return load_labeled(d.eval_dataset, d.image_size, d.channels, None, **eval_options(d))


def test_labeled_crops_come_from_their_source_in_disjoint_regions():
    train, test = _labeled()
    k = len(sk.SOURCES)
    assert train.images.shape == (6 * k, SIZE, SIZE, 3) and test.images.shape == (4 * k, SIZE, SIZE, 3)
    np.testing.assert_array_equal(np.bincount(train.labels), [6] * k)
    np.testing.assert_array_equal(np.bincount(test.labels), [4] * k)
    for split, region in ((train, "train"), (test, "test")):
        for crop, label in zip(split.images, split.labels):
            img = sk.source(sk.SOURCES[label], SIZE, 3)
            c0, c1 = sk.region_columns(img.shape[1], region)
            at = _find(crop, img)
            assert at, f"a {region} crop labeled {sk.SOURCES[label]} is not in that image"
            # in its region (a texture may repeat a patch elsewhere: one match suffices)
            assert any(c0 <= left and left + SIZE <= c1 for _, left in at), (region, label, at, c0, c1)
    # the regions split the columns: train ends where test begins
    w = sk.source("astronaut", SIZE, 3).shape[1]
    assert sk.region_columns(w, "train")[1] == sk.region_columns(w, "test")[0] == round(0.7 * w)


def test_grayscale_textures_are_repeated_to_rgb_and_photos_are_colour():
    train, _ = _labeled()
    tex = train.images[train.labels == sk.SOURCES.index("brick")]
    assert np.array_equal(tex[..., 0], tex[..., 1]) and np.array_equal(tex[..., 0], tex[..., 2])
    photo = train.images[train.labels == sk.SOURCES.index("coffee")]
    assert np.abs(photo[..., 0].astype(int) - photo[..., 2]).max() > 10


def test_the_crop_seed_fixes_the_crops():
    a, b, c = _labeled(0)[0], _labeled(0)[0], _labeled(1)[0]
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    p = DataConfig(dataset="skimage_photos", image_size=SIZE, channels=3, pretrain_crops=40)
    x, y = load_pretrain(p).images, load_pretrain(p).images
    np.testing.assert_array_equal(x, y)
    z = load_pretrain(DataConfig(dataset="skimage_photos", image_size=SIZE, channels=3, pretrain_crops=40,
                                 crop_seed=3)).images
    assert not np.array_equal(x, z)


def test_pretraining_crops_are_the_photos_train_regions_interleaved():
    p = DataConfig(dataset="skimage_photos", image_size=SIZE, channels=3, pretrain_crops=20)
    x = load_pretrain(p)
    assert x.labels is None and x.images.shape == (20, SIZE, SIZE, 3)
    for i, crop in enumerate(x.images):
        img = sk.source(sk.PHOTOS[i % len(sk.PHOTOS)], SIZE, 3)
        cut = sk.region_columns(img.shape[1], "train")[1]
        assert any(left + SIZE <= cut for _, left in _find(crop, img)), i
    capped = load_pretrain(DataConfig(dataset="skimage_photos", image_size=SIZE, channels=3,
                                      pretrain_crops=20, max_pretrain_images=8))
    assert len(capped) == 8


def test_unknown_and_unusable_names_are_refused():
    with pytest.raises(DataError, match="data.eval_dataset.*skimage_sources"):
        check_labeled("skimage_textures", 32, 3)
    with pytest.raises(DataError, match="skimage_photos"):
        load_pretrain(DataConfig(dataset="photos"))
    with pytest.raises(DataError, match="data.channels"):
        check_labeled("skimage_sources", 32, 2)


def _write(root, split, cls, n, colour):
    d = root / split / cls
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (d / f"{i}.png").write_bytes(png(np.full((10, 12, 3), colour, np.float32)))


def test_folder_labeled_reads_class_folders(tmp_path):
    _write(tmp_path, "train", "cat", 3, (1.0, 0.0, 0.0))
    _write(tmp_path, "train", "dog", 2, (0.0, 0.0, 1.0))
    _write(tmp_path, "test", "cat", 1, (1.0, 0.0, 0.0))
    _write(tmp_path, "test", "dog", 2, (0.0, 0.0, 1.0))
    train, test = load_labeled("folder_labeled", 8, 3, eval_path=str(tmp_path))
    assert train.images.shape == (5, 8, 8, 3) and list(train.labels) == [0, 0, 0, 1, 1]
    assert list(test.labels) == [0, 1, 1]
    assert train.images[0, 0, 0, 0] == 255 and train.images[-1, 0, 0, 2] == 255
    with pytest.raises(DataError, match="data.eval_path"):
        check_labeled("folder_labeled", 8, 3)
    _write(tmp_path, "test", "eel", 1, (0.0, 1.0, 0.0))
    with pytest.raises(DataError, match=f"{tmp_path / 'test'}.*differ"):
        load_labeled("folder_labeled", 8, 3, eval_path=str(tmp_path))
    with pytest.raises(DataError, match=f"{tmp_path / 'missing'}: no train/"):
        check_labeled("folder_labeled", 8, 3, eval_path=str(tmp_path / "missing"))
