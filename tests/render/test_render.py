"""The offline renderer (keras_ssl.render): layouts read by the sequence readers, frames
consistent with the poses (ground pixels warped by the known motion), motion signs, the
scene set, determinism, argument errors."""
import numpy as np
import pytest
from PIL import Image

from keras_ssl.data.motion import relative_motion, relative_transform
from keras_ssl.data.sequences import read_kitti_odometry, read_tum_rgbd
from keras_ssl.render.cli import main
from keras_ssl.render.drives import (CAMERA_HEIGHT, KITTI_RATE, TUM_GT_PER_FRAME, TUM_RATE, kitti_intrinsics,
                                     make_drive, read_calib, render_frame, rot_y)
from keras_ssl.render.raycast import GROUND
from keras_ssl.render.scenes import CLASSES

SIZE = (48, 144)


def _png(path):
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    out = tmp_path_factory.mktemp("kitti")
    assert main(["drives", "--out", str(out), "--sequences", "2", "--frames", "8", "--size", "x".join(map(str, SIZE)),
                 "--seed", "3", "--no-progress"]) == 0
    return out


def test_kitti_layout_reads(kitti):
    seqs = read_kitti_odometry(kitti, ["00", "01"])
    assert [len(s) for s in seqs] == [8, 8]
    for s in seqs:
        np.testing.assert_allclose(s.poses[0], np.eye(4), atol=1e-12)     # world = frame 0's camera
        r = s.poses[:, :3, :3]
        np.testing.assert_allclose(r.transpose(0, 2, 1) @ r, np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
        np.testing.assert_allclose(np.diff(s.times), 1.0 / KITTI_RATE, rtol=1e-6)
        np.testing.assert_allclose(read_calib(s.calib), kitti_intrinsics(*SIZE), rtol=1e-10)
        assert _png(s.frames[0]).shape == SIZE + (3,)
    assert not np.allclose(seqs[0].poses, seqs[1].poses)                  # two different drives


def test_tum_layout_reads(tmp_path):
    assert main(["drives", "--out", str(tmp_path), "--sequences", "1", "--frames", "7", "--size", "24x72",
                 "--layout", "tum", "--seed", "5", "--no-progress"]) == 0
    s = read_tum_rgbd(tmp_path / "00")
    assert len(s) == 7 and not s.dropped
    gt = [l for l in (tmp_path / "00" / "groundtruth.txt").read_text().splitlines() if not l.startswith("#")]
    assert len(gt) == (7 - 1) * TUM_GT_PER_FRAME + 1                     # higher rate than the frames
    np.testing.assert_allclose(np.diff(s.times), 1.0 / TUM_RATE, atol=2e-6)
    r = s.poses[:, :3, :3]
    np.testing.assert_allclose(r.transpose(0, 2, 1) @ r, np.broadcast_to(np.eye(3), r.shape), atol=1e-7)
    # each frame's pose is exactly the one it was rendered with
    drive = make_drive((5, 0), 7, (24, 72), TUM_RATE, TUM_GT_PER_FRAME)
    np.testing.assert_allclose(s.poses, drive.poses, atol=1e-7)
    assert np.array_equal(_png(s.frames[3]), render_frame(drive, 3).rgb)


def _ground_warp_error(rgb_i, depth_i, ground_i, rgb_j, T_i, T_j, K, max_depth=15.0):
    """Mean abs colour difference between ground pixels of frame i and frame j sampled
    (bilinear) where the poses say those ground points appear, and how many were compared."""
    H, W = depth_i.shape
    r, c = np.nonzero(ground_i & (depth_i < max_depth))
    X = np.linalg.inv(K) @ np.stack([c, r, np.ones_like(c)]).astype(np.float64) * depth_i[r, c]
    T = relative_transform(T_j, T_i)                                      # inv(T_j) T_i: camera i -> camera j
    Xj = T[:3, :3] @ X + T[:3, 3:4]
    p = K @ Xj
    u, v = p[0] / p[2], p[1] / p[2]
    ok = (Xj[2] > 0.1) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
    u, v, src = u[ok], v[ok], rgb_i[r[ok], c[ok]].astype(np.float64)
    u0, v0 = np.minimum(np.floor(u).astype(int), W - 2), np.minimum(np.floor(v).astype(int), H - 2)
    fu, fv = (u - u0)[:, None], (v - v0)[:, None]
    img = rgb_j.astype(np.float64)
    got = ((img[v0, u0] * (1 - fu) + img[v0, u0 + 1] * fu) * (1 - fv)
           + (img[v0 + 1, u0] * (1 - fu) + img[v0 + 1, u0 + 1] * fu) * fv)
    return float(np.abs(got - src).mean()), int(ok.sum())


@pytest.mark.parametrize("i, j", [(2, 3), (1, 5), (6, 2)])
def test_frames_consistent_with_poses(kitti, i, j):
    """Ground pixels of frame i, back-projected with the known depth and warped by
    inv(T_j) T_i, land on the same colours in frame j; a pose off by 2 degrees does not."""
    seq = read_kitti_odometry(kitti, ["00"])[0]
    K = read_calib(seq.calib)
    drive = make_drive((3, 0), 8, SIZE)
    view_i = render_frame(drive, i)
    rgb_i, rgb_j = _png(seq.frames[i]), _png(seq.frames[j])
    assert np.array_equal(view_i.rgb, rgb_i)                              # the written frame is this view
    ground = view_i.surface == GROUND
    assert ground.mean() > 0.2
    # the renderer's depth on the ground is the ray-plane hit computed here from the file's pose
    r, c = np.nonzero(ground)
    d = seq.poses[i][:3, :3] @ (np.linalg.inv(K) @ np.stack([c, r, np.ones_like(c)]))
    t = (CAMERA_HEIGHT - seq.poses[i][1, 3]) / d[1]
    np.testing.assert_allclose(view_i.depth[r, c], t, rtol=1e-4)

    err, n = _ground_warp_error(rgb_i, view_i.depth, ground, rgb_j, seq.poses[i], seq.poses[j], K)
    assert n > 0.1 * ground.sum()
    for bad in (rot_y(np.radians(2.0)), rot_y(np.radians(-2.0))):
        T_bad = seq.poses[j].copy()
        T_bad[:3, :3] = T_bad[:3, :3] @ bad
        err_bad, _ = _ground_warp_error(rgb_i, view_i.depth, ground, rgb_j, seq.poses[i], T_bad, K)
        assert err < 0.5 * err_bad, (err, err_bad)
    shifted = seq.poses[j].copy()
    shifted[:3, 3] += seq.poses[j][:3, :3] @ np.array([0.3, 0.0, 0.0])   # 30 cm sideways
    assert err < 0.6 * _ground_warp_error(rgb_i, view_i.depth, ground, rgb_j, seq.poses[i], shifted, K)[0]


def test_pitch_roll_frames_consistent_with_poses():
    """--pitch-roll: the poses are not planar any more, and frames still match them."""
    drive = make_drive(11, 12, SIZE, pitch_roll_deg=2.0)
    m = relative_motion(drive.poses[:-1], drive.poses[1:])
    assert np.all(m.tz > 0)
    tilt = np.degrees(np.arccos(np.clip(drive.poses[:, 1, 1], -1, 1)))    # camera y axis off the world's
    assert tilt.max() > 0.3
    i, j = 3, 6
    vi, vj = render_frame(drive, i), render_frame(drive, j)
    ground = vi.surface == GROUND
    err, n = _ground_warp_error(vi.rgb, vi.depth, ground, vj.rgb, drive.poses[i], drive.poses[j], drive.K)
    assert n > 0.1 * ground.sum()
    T_bad = drive.poses[j].copy()
    T_bad[:3, :3] = T_bad[:3, :3] @ rot_y(np.radians(2.0))
    assert err < 0.5 * _ground_warp_error(vi.rgb, vi.depth, ground, vj.rgb, drive.poses[i], T_bad, drive.K)[0]


@pytest.mark.parametrize("rate", [0.3, -0.3])
def test_turn_direction_gives_yaw_sign(rate):
    """A path turning right (heading towards +x, the camera's right) gives yaw > 0, left < 0;
    always forward (tz > 0)."""
    drive = make_drive(1, 20, (16, 48), yaw_rate=rate, speed=8.0)
    m = relative_motion(drive.poses[:-1], drive.poses[1:])
    assert np.all(m.tz > 0)
    assert np.all(np.sign(m.yaw) == np.sign(rate))
    np.testing.assert_allclose(m.yaw, rate / KITTI_RATE, rtol=1e-6)
    assert np.sign(drive.poses[-1][0, 3]) == np.sign(rate)               # ended up right (+x) / left


def test_random_drive_yaw_sign_matches_path(kitti):
    """On written poses: forward motion, and the yaw of each step has the sign of the path's
    turn seen from above (cross product of successive displacements in the x-z plane)."""
    seq = read_kitti_odometry(kitti, ["01"])[0]
    drive = make_drive((3, 1), 60, (16, 48))
    for poses in (seq.poses, drive.poses):
        m = relative_motion(poses[:-1], poses[1:])
        assert np.all(m.tz > 0)
    xz = drive.poses[:, [0, 2], 3]
    d = np.diff(xz, axis=0)
    turn = d[:-1, 1] * d[1:, 0] - d[:-1, 0] * d[1:, 1]                   # > 0: swung towards +x
    yaw = relative_motion(drive.poses[:-2], drive.poses[2:]).yaw
    big = np.abs(yaw) > 1e-3
    assert big.sum() > 10
    assert np.all(np.sign(turn[big]) == np.sign(yaw[big]))


def _tree(root, split):
    return {c.name: sorted(c.iterdir()) for c in sorted((root / split).iterdir())}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    assert main(["scenes", "--out", str(out), "--classes", "6", "--per-class", "10", "--test-per-class", "6",
                 "--size", "24", "--seed", "1", "--no-progress"]) == 0
    return out


def test_scene_tree_counts_and_classes_differ(scenes):
    train, test = _tree(scenes, "train"), _tree(scenes, "test")
    assert sorted(train) == sorted(CLASSES[:6]) == sorted(test)
    assert all(len(v) == 10 for v in train.values()) and all(len(v) == 6 for v in test.values())

    def load(tree):
        x = [np.asarray(Image.open(p).convert("RGB").resize((6, 6), Image.BILINEAR), np.float64).ravel()
             for c in sorted(tree) for p in tree[c]]
        y = [k for k, c in enumerate(sorted(tree)) for _ in tree[c]]
        return np.array(x), np.array(y)

    xtr, ytr = load(train)
    xte, yte = load(test)
    assert xtr.shape[1] == 6 * 6 * 3
    means = np.stack([xtr[ytr == k].mean(0) for k in range(6)])
    pred = np.argmin(((xte[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == yte).mean() >= 1.0 / 6 + 0.25                         # chance is 1/6 (measured 0.5..0.64)


def test_same_seed_same_bytes(scenes, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    args = ["--classes", "6", "--per-class", "10", "--test-per-class", "6", "--size", "24", "--no-progress"]
    assert main(["scenes", "--out", str(again), "--seed", "1", *args]) == 0
    assert main(["scenes", "--out", str(other), "--seed", "2", *args]) == 0
    files = [p.relative_to(scenes) for p in sorted(scenes.rglob("*.png"))]
    assert files == [p.relative_to(again) for p in sorted(again.rglob("*.png"))]
    assert all((scenes / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert sum((scenes / f).read_bytes() != (other / f).read_bytes() for f in files) > 0.9 * len(files)


def test_drives_same_seed_same_bytes(tmp_path):
    args = ["--sequences", "1", "--frames", "3", "--size", "16x48", "--no-progress"]
    for name, seed in (("a", "4"), ("b", "4"), ("c", "5")):
        assert main(["drives", "--out", str(tmp_path / name), "--seed", seed, *args]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 3 + 3
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert (tmp_path / "a" / "poses/00.txt").read_bytes() != (tmp_path / "c" / "poses/00.txt").read_bytes()


def test_shared_palette(scenes, tmp_path):
    """--palette shared: the same layouts (same camera draws) in colours from one pool."""
    assert main(["scenes", "--out", str(tmp_path), "--classes", "6", "--per-class", "10", "--test-per-class", "6",
                 "--size", "24", "--seed", "1", "--palette", "shared", "--no-progress"]) == 0
    own, shared = _tree(scenes, "train"), _tree(tmp_path, "train")
    assert {c: len(v) for c, v in own.items()} == {c: len(v) for c, v in shared.items()}
    mean = lambda tree: np.stack([np.mean([_png(p).reshape(-1, 3).mean(0) for p in tree[c]], 0)  # noqa: E731
                                  for c in sorted(tree)])
    # class mean colours spread less across classes when every class draws from one pool
    assert mean(shared).std(0).mean() < mean(own).std(0).mean()


@pytest.mark.parametrize("argv, named", [
    (["drives", "--size", "128"], "--size"),
    (["drives", "--size", "12xabc"], "--size"),
    (["drives", "--frames", "0"], "--frames"),
    (["drives", "--sequences", "0"], "--sequences"),
    (["drives", "--layout", "euroc"], "--layout"),
    (["scenes", "--size", "32x32"], "--size"),
    (["scenes", "--per-class", "0"], "--per-class"),
    (["scenes", "--classes", str(len(CLASSES) + 1)], "--classes"),
    (["scenes", "--palette", "pastel"], "--palette"),
])
def test_bad_arguments_name_the_argument(tmp_path, capsys, argv, named):
    with pytest.raises(SystemExit) as e:
        code = main([argv[0], "--out", str(tmp_path / "o"), "--no-progress", *argv[1:]])
        raise SystemExit(code)
    assert e.value.code == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_out_not_empty_needs_overwrite(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    base = ["drives", "--out", str(tmp_path), "--sequences", "1", "--size", "16x48", "--no-progress"]
    assert main([*base, "--frames", "4"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main([*base, "--frames", "4", "--overwrite"]) == 0
    assert main([*base, "--frames", "2", "--overwrite"]) == 0            # fewer frames: old ones removed
    assert len(read_kitti_odometry(tmp_path, ["00"])[0]) == 2
    assert (tmp_path / "keep.txt").read_text() == "x"
    (tmp_path / "f").write_text("x")
    assert main(["scenes", "--out", str(tmp_path / "f"), "--no-progress"]) == 2
    assert "--out" in capsys.readouterr().err


def test_module_entry_point(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    run = lambda *a: subprocess.run([sys.executable, "-m", "keras_ssl.render", *a], cwd=root,  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    bad = run("drives", "--out", str(tmp_path / "o"), "--size", "64-192")
    assert bad.returncode == 2 and "--size" in bad.stderr
    ok = run("scenes", "--out", str(tmp_path / "s"), "--classes", "2", "--per-class", "1", "--test-per-class", "0",
             "--size", "16", "--no-progress")
    assert ok.returncode == 0, ok.stderr
    assert "images/s" in ok.stdout
    assert len(list((tmp_path / "s" / "train").rglob("*.png"))) == 2
