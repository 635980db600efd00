"""keras_ssl.data.frames: frame pairs of a KITTI tree written here, decoded in tf.data.

The frames' pixels encode where they are (red = row, green = column, blue = frame id), so a
test can read back which frames and which crop an example holds, and check it against the
pair and the poses."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_ssl.data.frames import CROP_ERROR, SIZE_ERROR, frame_pair_batches, frame_pairs
from keras_ssl.data.motion import AXES, motion_matrix, pair_motion, to_bins
from keras_ssl.data.sequences import Sequence, read_kitti_odometry

H, W = 20, 30


def frame(k, h=H, w=W):
    """uint8 [h, w, 3]: red = row, green = column, blue = frame id (as 10 * k)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(h)[:, None]
    img[..., 1] = np.arange(w)[None, :]
    img[..., 2] = 10 * k
    return img


def drive(n, seed):
    """Camera-to-world poses of a planar drive: forward steps with random turns."""
    rng = np.random.default_rng(seed)
    poses, t = [], np.eye(4)
    for _ in range(n):
        poses.append(t.copy())
        t = t @ motion_matrix(rng.normal(0, 0.1), rng.uniform(0.5, 1.5), rng.normal(0, 0.05))
    return np.stack(poses)


def write_sequence(root, name, n, seed, sizes=None):
    cam = root / "sequences" / name / "image_2"
    cam.mkdir(parents=True)
    for k in range(n):
        h, w = sizes[k] if sizes else (H, W)
        Image.fromarray(frame(k, h, w)).save(cam / f"{k:06d}.png")
    (root / "poses").mkdir(exist_ok=True)
    poses = drive(n, seed)
    (root / "poses" / f"{name}.txt").write_text(
        "".join(" ".join(f"{x:.12e}" for x in p[:3].ravel()) + "\n" for p in poses))
    return poses


@pytest.fixture
def kitti(tmp_path):
    write_sequence(tmp_path, "00", 12, 0)
    write_sequence(tmp_path, "01", 9, 1)
    return tmp_path


def first_batch(pairs, **kw):
    args = dict(batch_size=16, seed=3, start_step=0, end_step=1, crop=(8, 10))
    args.update(kw)
    return next(iter(frame_pair_batches(pairs, **args)))


def test_pairs_stay_within_a_sequence_and_the_gap(kitti):
    seqs = read_kitti_odometry(kitti, ["00", "01"])
    fp = frame_pairs(seqs, max_gap=3)
    assert fp.offsets == (0, 12) and fp.names == ("00", "01") and len(fp.paths) == 21
    i, j = fp.pairs[:, 0], fp.pairs[:, 1]
    assert np.all((1 <= np.abs(j - i)) & (np.abs(j - i) <= 3))
    start = np.asarray(fp.offsets)[fp.sequence]
    end = start + np.array([12, 9])[fp.sequence]
    assert np.all((start <= i) & (i < end) & (start <= j) & (j < end))      # never across sequences


def test_each_label_is_the_binned_motion_of_its_poses(kitti):
    seqs = read_kitti_odometry(kitti, ["00", "01"])
    fp = frame_pairs(seqs, max_gap=4, bins=5)
    for k, s in enumerate(seqs):
        mine = fp.sequence == k
        local = fp.pairs[mine] - fp.offsets[k]
        m = pair_motion(s.poses, local)
        for a in AXES:
            np.testing.assert_array_equal(fp.labels[a][mine], to_bins(getattr(m, a), fp.edges[a]))
    # forward drive: a pair (i, j > i) moved forward, its reverse backward
    fwd = fp.pairs[:, 1] > fp.pairs[:, 0]
    assert np.all(fp.motion.tz[fwd] > 0) and np.all(fp.motion.tz[~fwd] < 0)
    # the validation sequences take the training edges, not their own
    val = frame_pairs(seqs[1:], max_gap=2, edges=fp.edges)
    assert val.edges == fp.edges
    assert frame_pairs(seqs[1:], max_gap=2, bins=5).edges != fp.edges


def test_a_batch_holds_the_pairs_frames_cropped_at_one_offset(kitti):
    fp = frame_pairs(read_kitti_odometry(kitti, ["00", "01"]), max_gap=3, bins=4)
    views, labels = first_batch(fp)
    a, b = (np.round(views[v].numpy() * 255).astype(int) for v in ("first", "second"))
    assert a.shape == (16, 8, 10, 3) and views["first"].dtype == tf.float32
    idx = labels["pair"].numpy()
    local = fp.pairs[idx] - np.asarray(fp.offsets)[fp.sequence[idx]][:, None]
    np.testing.assert_array_equal(a[:, 0, 0, 2], 10 * local[:, 0])            # the pair's frames
    np.testing.assert_array_equal(b[:, 0, 0, 2], 10 * local[:, 1])
    np.testing.assert_array_equal(a[..., :2], b[..., :2])                    # one crop for both
    offsets = a[:, 0, 0, :2]
    assert len({tuple(o) for o in offsets}) > 1                              # crops vary
    assert np.all(offsets[:, 0] <= H - 8) and np.all(offsets[:, 1] <= W - 10)
    np.testing.assert_array_equal(a[:, :, :, 0] - offsets[:, None, None, 0], np.arange(8)[None, :, None] +
                                  np.zeros((16, 8, 10), int))                # a contiguous window
    for ax in AXES:
        np.testing.assert_array_equal(labels[ax].numpy(), fp.labels[ax][idx])


def test_batches_are_a_function_of_seed_and_step(kitti):
    fp = frame_pairs(read_kitti_odometry(kitti, ["00", "01"]), max_gap=3, bins=4)
    whole = list(frame_pair_batches(fp, 8, 5, 0, 4, crop=(8, 10), threads=1))
    resumed = list(frame_pair_batches(fp, 8, 5, 2, 4, crop=(8, 10), threads=3))
    for (v1, l1), (v2, l2) in zip(whole[2:], resumed):
        np.testing.assert_array_equal(v1["first"].numpy(), v2["first"].numpy())
        np.testing.assert_array_equal(l1["pair"].numpy(), l2["pair"].numpy())
    other = first_batch(fp, batch_size=8, seed=6)
    assert not np.array_equal(other[1]["pair"].numpy(), whole[0][1]["pair"].numpy())


def test_resize_grey_and_errors_name_the_files(tmp_path):
    write_sequence(tmp_path, "00", 4, 0, sizes=[(H, W), (H + 2, W), (H, W), (H, W)])
    seqs = read_kitti_odometry(tmp_path, ["00"])
    fp = frame_pairs(seqs, max_gap=1, bins=2)
    small = frame_pairs(seqs, max_gap=1, bins=2, frame_size=(10, 15), channels=1)
    views, _ = first_batch(small, crop=(10, 15))
    assert views["first"].shape == (16, 10, 15, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=SIZE_ERROR) as e:
        first_batch(fp)                                       # frame 1 is taller than its neighbours
    assert "000001.png" in str(e.value)
    with pytest.raises(tf.errors.InvalidArgumentError, match=CROP_ERROR.split(";")[0]):
        first_batch(frame_pairs(seqs, max_gap=1, bins=2, frame_size=(H, W)), crop=(H + 5, W))
    with pytest.raises(ValueError, match="'one' has 1 frame"):
        frame_pairs([Sequence(name="one", frames=[tmp_path / "x.png"], poses=np.eye(4)[None])], max_gap=2)


def test_frames_decoded_once_give_the_same_batches_and_a_too_small_cache_is_refused(kitti, monkeypatch):
    import keras_ssl.data.frames as frames_mod

    fp = frame_pairs(read_kitti_odometry(kitti, ["00", "01"]), max_gap=3, bins=4, frame_size=(16, 24))
    as_drawn = list(frame_pair_batches(fp, 8, 5, 0, 3, crop=(8, 10), threads=1))
    monkeypatch.setattr(frames_mod, "_DECODED", {})
    cached = list(frame_pair_batches(fp, 8, 5, 0, 3, crop=(8, 10), threads=3, cache_mb=1))
    for (v1, l1), (v2, l2) in zip(as_drawn, cached, strict=True):
        for v in ("first", "second"):
            np.testing.assert_array_equal(v1[v].numpy(), v2[v].numpy())     # bit for bit
        np.testing.assert_array_equal(l1["pair"].numpy(), l2["pair"].numpy())
    assert list(frames_mod._DECODED) == [(fp.paths, (16, 24), 3)]           # decoded once, kept
    decoded = frames_mod._DECODED[(fp.paths, (16, 24), 3)]
    assert decoded.shape == (21, 16, 24, 3)
    # frame k of sequence 01 is global frame 12 + k; blue encodes 10 * k
    np.testing.assert_allclose(decoded[12 + 4, ..., 2], 40 / 255, atol=1e-6)
    # that does not read the files again: the cache is what the batches are cut from
    calls = []
    monkeypatch.setattr(frames_mod, "_decode", lambda *a: calls.append(a))
    list(frame_pair_batches(fp, 8, 5, 0, 2, crop=(8, 10), cache_mb=1))
    assert calls == []
    # 21 frames of 16x24x3 float32 are 96,768 bytes: 0 MB cannot hold them; frames as stored
    # that differ in size are named
    monkeypatch.setattr(frames_mod, "_DECODED", {})
    big = frame_pairs(read_kitti_odometry(kitti, ["00", "01"]), max_gap=3, bins=4, frame_size=(400, 600))
    with pytest.raises(ValueError, match=r"data.frame_cache_mb is 1: the 21 frames of 400x600x3 need 58 MB"):
        frame_pair_batches(big, 8, 5, 0, 1, crop=(8, 10), cache_mb=1)


def test_a_frame_cache_of_frames_that_differ_in_size_names_the_file(tmp_path):
    write_sequence(tmp_path, "00", 4, 0, sizes=[(H, W), (H + 2, W), (H, W), (H, W)])
    fp = frame_pairs(read_kitti_odometry(tmp_path, ["00"]), max_gap=1, bins=2)
    with pytest.raises(ValueError, match=SIZE_ERROR) as e:
        frame_pair_batches(fp, 8, 5, 0, 1, crop=(8, 10), cache_mb=1)
    assert "000001.png is 22x30" in str(e.value)


# -- Shuffle & Learn's triplets: the order label is the order of the frames -----

def test_shuffle_learn_triplets_are_in_order_or_have_the_middle_outside(kitti):
    from keras_ssl import registry
    from keras_ssl.config import Component
    from keras_ssl.data.sequences import SequenceData
    from keras_ssl.pretext.shuffle_learn import ShuffleLearnParams

    seqs = read_kitti_odometry(kitti, ["00", "01"])
    pretext = registry.build("pretext", Component("shuffle_learn", ShuffleLearnParams(spacing=(1, 2))),
                             (8, 10, 3))
    index = pretext.prepare(SequenceData(tuple(seqs), None, 3))
    assert index.pairs.shape[1] == 3 and pretext.view_names == ("first", "middle", "last")
    views, labels = next(iter(pretext.batches(index, 64, 1, 0, 1)))
    ids = {v: np.round(views[v].numpy()[:, 0, 0, 2] * 255).astype(int) // 10 for v in views}
    f, m, l = ids["first"], ids["middle"], ids["last"]
    order, g = labels["in_order"].numpy(), labels["spacing"].numpy()
    assert 0 < order.mean() < 1                                     # both kinds drawn
    np.testing.assert_array_equal(l - f, 2 * g)                     # b and d, 2 spacings apart
    pos = order == 1
    np.testing.assert_array_equal(m[pos], f[pos] + g[pos])          # c between them
    assert np.all((m[~pos] == f[~pos] - g[~pos]) | (m[~pos] == l[~pos] + g[~pos]))   # a or e
    np.testing.assert_array_equal(views["first"].numpy()[..., :2], views["last"].numpy()[..., :2])


def test_shuffle_learn_keeps_windows_with_enough_motion(kitti):
    from keras_ssl.pretext.shuffle_learn import triplets

    poses = read_kitti_odometry(kitti, ["00"])[0].poses
    all_t, _, g = triplets(poses, (1,), 0.0, np.random.default_rng(0))
    assert len(all_t) == 12 - 4          # every b with a = b - 1 >= 0 and e = b + 3 <= 11
    moved = np.linalg.norm(poses[all_t[:, 0] + 2][:, :3, 3] - poses[all_t[:, 0]][:, :3, 3], axis=1)
    cut = float(np.median(moved))
    kept, _, _ = triplets(poses, (1,), cut, np.random.default_rng(0))
    np.testing.assert_array_equal(kept[:, 0], all_t[moved >= cut, 0])
