"""data.skip_unreadable: a folder with corrupt files stops the run naming the file (the
default) or, on, trains on the readable images, its count and paths logged and recorded."""
import json
import re

import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.config import ConfigError, DataConfig, config_from_dict
from keras_ssl.data import DataError, load_pretrain

VALID = ("img0.png", "img1.png", "img2.png")
CORRUPT = ("bad_random.png", "bad_truncated.png")   # sorted before the valid ones


def write_folder(root, corrupt=CORRUPT):
    """Three 28x28 gray PNGs, a file of random bytes and a PNG cut in half; returns the
    pixels written, in path order."""
    root.mkdir()
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (28, 28, 1), dtype=np.uint8) for _ in VALID]
    for name, img in zip(VALID, pixels):
        (root / name).write_bytes(tf.io.encode_png(img).numpy())
    whole = tf.io.encode_png(pixels[0]).numpy()
    for name in corrupt:
        (root / name).write_bytes(whole[: len(whole) // 2] if "truncated" in name else rng.bytes(300))
    return pixels


def folder(root, **data):
    return DataConfig(dataset="folder", path=str(root), image_size=28, channels=1, **data)


def test_by_default_the_first_corrupt_file_stops_the_load_naming_it(tmp_path):
    write_folder(tmp_path / "imgs")
    with pytest.raises(DataError, match=r"cannot decode image .*bad_random\.png: Unknown image file format"):
        load_pretrain(folder(tmp_path / "imgs"))
    (tmp_path / "imgs" / "bad_random.png").unlink()
    with pytest.raises(DataError, match=r"cannot decode image .*bad_truncated\.png: Invalid PNG data"):
        load_pretrain(folder(tmp_path / "imgs"))


def test_skip_unreadable_loads_exactly_the_readable_images(tmp_path):
    pixels = write_folder(tmp_path / "imgs")
    s = load_pretrain(folder(tmp_path / "imgs", skip_unreadable=True))
    assert s.images.shape == (3, 28, 28, 1) and s.labels is None
    for loaded, written in zip(s.images, pixels):       # path order, pixels as written
        np.testing.assert_array_equal(loaded, written)
    assert s.skipped == tuple(str(tmp_path / "imgs" / n) for n in CORRUPT)
    # max_pretrain_images counts readable images: the corrupt files do not use it up
    s = load_pretrain(folder(tmp_path / "imgs", skip_unreadable=True, max_pretrain_images=2))
    assert len(s) == 2 and len(s.skipped) == 2
    np.testing.assert_array_equal(s.images[1], pixels[1])


def test_a_folder_of_only_unreadable_files_is_an_error_naming_it(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=rf"no readable image under {re.escape(str(root))}: all 2 "
                                        rf"PNG/JPEG/BMP/GIF/WebP files .*a\.png"):
        load_pretrain(folder(root, skip_unreadable=True))


def test_a_non_bool_skip_unreadable_is_refused_naming_the_key():
    base = {"name": "t", "encoder": "convnet", "pretext": "rotation", "method": "classify"}
    assert config_from_dict(base).data.skip_unreadable is False
    assert config_from_dict({**base, "data": {"skip_unreadable": True}}).data.skip_unreadable is True
    for bad in ("yes", 1, None):
        with pytest.raises(ConfigError, match=r"'data.skip_unreadable' must be true or false"):
            config_from_dict({**base, "data": {"skip_unreadable": bad}}, "cfg.json")


def job_cfg(root, **data):
    return config_from_dict({
        "name": "photos", "encoder": {"name": "convnet", "filters": [4], "output": "gap"},
        "pretext": "rotation", "method": {"name": "classify", "hidden": 8},
        "data": {"dataset": "folder", "path": str(root), "validation_images": 0, **data},
        "train": {"steps": 1, "batch_size": 4, "steps_per_execution": 1, "checkpoint_every": 1,
                  "sample_examples": 0}})


def test_the_job_logs_the_skipped_files_in_one_line_and_records_them(tmp_path):
    from keras_ssl.training.job import run

    write_folder(tmp_path / "imgs")
    lines = []
    s = run(job_cfg(tmp_path / "imgs", skip_unreadable=True), tmp_path / "run", progress=False,
            evaluate=False, export=False, log=lines.append)
    paths = [str(tmp_path / "imgs" / n) for n in CORRUPT]
    assert s["data"] == {"images": 3, "skipped_unreadable": 2, "skipped_examples": paths}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["data"] == s["data"]
    skipped = [line for line in lines if "unreadable" in line]
    assert skipped == [f"skipped 2 unreadable image file(s) under {tmp_path / 'imgs'} "
                       f"(data.skip_unreadable): {', '.join(paths)}"]
    assert "(3 images," in next(line for line in lines if line.startswith("pretraining"))


def test_the_log_line_names_the_first_ten_paths(tmp_path):
    from keras_ssl.training.job import _pretrain_images

    write_folder(tmp_path / "imgs", corrupt=[f"bad_{i:02d}.png" for i in range(12)])
    lines = []
    images, data = _pretrain_images(job_cfg(tmp_path / "imgs", skip_unreadable=True), lines.append)
    assert len(images) == 3 and data["skipped_unreadable"] == 12
    assert data["skipped_examples"] == [str(tmp_path / "imgs" / f"bad_{i:02d}.png") for i in range(10)]
    assert len(lines) == 1 and lines[0].endswith("bad_09.png and 2 more")


def test_a_run_directory_from_before_the_setting_still_resumes(tmp_path):
    """Whether unreadable files are skipped does not change what a run that trained
    learned (it read every file): neither an old config.json without the key nor a
    changed value refuses the checkpoints."""
    from keras_ssl.training.run_dir import prepare_run_dir

    run_dir = tmp_path / "run"
    prepare_run_dir(run_dir, job_cfg(tmp_path / "imgs"))
    (run_dir / "checkpoints").mkdir()
    old = json.loads((run_dir / "config.json").read_text())
    del old["data"]["skip_unreadable"]
    (run_dir / "config.json").write_text(json.dumps(old))
    prepare_run_dir(run_dir, job_cfg(tmp_path / "imgs"))
    prepare_run_dir(run_dir, job_cfg(tmp_path / "imgs", skip_unreadable=True))
    assert json.loads((run_dir / "config.json").read_text())["data"]["skip_unreadable"] is True
    with pytest.raises(ConfigError, match="differs in: data"):      # what it learns: still refused
        prepare_run_dir(run_dir, job_cfg(tmp_path / "imgs", image_size=32))
