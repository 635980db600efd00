"""keras_ssl.data.sequences: KITTI odometry and TUM RGB-D trees written here, read back as
paths and poses; every bad input a DataError naming the file (and line)."""
import logging
import re

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from keras_ssl.data import DataError
from keras_ssl.data.sequences import Sequence, nearest_index, read_kitti_odometry, read_tum_rgbd


def rigid(n, seed=0):
    """n random camera-to-world rigid transforms [n, 4, 4]."""
    rng = np.random.default_rng(seed)
    t = np.tile(np.eye(4), (n, 1, 1))
    t[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    t[:, :3, 3] = rng.normal(0, 10, (n, 3))
    return t


def pose_line(t):
    return " ".join(f"{x:.12e}" for x in t[:3].ravel())


def write_kitti(root, name="00", n=5, seed=0, camera="image_2", times=True, calib=True, poses=None):
    """A KITTI odometry tree with one sequence of ``n`` tiny frame files (written in reverse
    order, so that listing order is not frame order); returns the poses written."""
    poses = rigid(n, seed) if poses is None else poses
    cam = root / "sequences" / name / camera
    cam.mkdir(parents=True)
    for i in reversed(range(n)):
        (cam / f"{i:06d}.png").write_bytes(b"frame %d" % i)
    (cam / "notes.txt").write_text("not a frame")
    (root / "poses").mkdir(exist_ok=True)
    (root / "poses" / f"{name}.txt").write_text("".join(pose_line(p) + "\n" for p in poses))
    if times:
        (root / "sequences" / name / "times.txt").write_text(
            "".join(f"{0.1036 * i:.6e}\n" for i in range(n)))
    if calib:
        (root / "sequences" / name / "calib.txt").write_text("P0: " + " ".join(["0"] * 12) + "\n")
    return poses


def pose_file(root, name="00"):
    return root / "poses" / f"{name}.txt"


def set_line(path, k, text):
    lines = path.read_text().splitlines()
    lines[k - 1] = text
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------
# KITTI
# --------------------------------------------------------------------------

def test_kitti_returns_the_poses_written_and_frames_in_order(tmp_path):
    p0 = write_kitti(tmp_path, "00", n=5, seed=0)
    p3 = write_kitti(tmp_path, "03", n=7, seed=1, times=False, calib=False)
    seqs = read_kitti_odometry(tmp_path, ["03", 0])          # the order asked; ints too
    assert [s.name for s in seqs] == ["03", "00"]
    s3, s0 = seqs
    assert isinstance(s0, Sequence) and len(s0) == 5 and len(s3) == 7
    cam = tmp_path / "sequences" / "00" / "image_2"
    assert s0.frames == [cam / f"{i:06d}.png" for i in range(5)]
    assert s0.poses.dtype == np.float64 and s0.poses.shape == (5, 4, 4)
    np.testing.assert_allclose(s0.poses, p0, atol=1e-11)
    np.testing.assert_allclose(s3.poses, p3, atol=1e-11)
    np.testing.assert_allclose(s0.times, 0.1036 * np.arange(5))
    assert s0.calib == tmp_path / "sequences" / "00" / "calib.txt"
    assert s3.times is None and s3.calib is None and s3.dropped == ()
    with pytest.raises(ValueError):              # an index, read-only
        s0.poses[0, 0, 0] = 2.0


def test_kitti_grey_camera_and_kitti_precision_poses(tmp_path):
    poses = write_kitti(tmp_path, "01", n=3, camera="image_0")
    # KITTI's own files keep 7 significant digits: the rigidity tolerance accepts them
    pose_file(tmp_path, "01").write_text("".join(
        " ".join(f"{x:e}" for x in p[:3].ravel()) + "\n" for p in poses))
    (s,) = read_kitti_odometry(tmp_path, ["01"], camera="image_0")
    assert s.frames[0].parent.name == "image_0"
    np.testing.assert_allclose(s.poses, poses, atol=1e-4)
    with pytest.raises(DataError, match=r"camera folder .*01/image_2 is missing"):
        read_kitti_odometry(tmp_path, ["01"])


def test_kitti_missing_root_sequences_folder_sequence_and_pose_file(tmp_path):
    with pytest.raises(DataError, match=r"root .*nowhere is not a directory"):
        read_kitti_odometry(tmp_path / "nowhere", ["00"])
    with pytest.raises(DataError, match=r"no sequences folder \(.*sequences is missing\)"):
        read_kitti_odometry(tmp_path, ["00"])
    write_kitti(tmp_path, "00")
    with pytest.raises(DataError, match=r"sequence folder .*sequences/05 is missing"):
        read_kitti_odometry(tmp_path, ["00", "05"])
    pose_file(tmp_path).unlink()
    with pytest.raises(DataError, match=r"pose file .*poses/00\.txt is missing"):
        read_kitti_odometry(tmp_path, ["00"])
    with pytest.raises(DataError, match=r"'x1' is not a sequence number"):
        read_kitti_odometry(tmp_path, ["x1"])


@pytest.mark.parametrize("line, message", [
    (" ".join(["1"] * 11), r"line 3: expected 12 numbers \(a row-major 3x4 matrix\), found 11"),
    (" ".join(["1"] * 13), r"line 3: expected 12 numbers .*found 13"),
    ("1 0 0 0 0 1 0 0 0 0 one 0", r"line 3: 'one' is not a number"),
    ("1 0 0 0 0 1 0 0 0 0 nan 0", r"line 3: a number is not finite"),
    ("2 0 0 0 0 1 0 0 0 0 1 0", r"line 3: not a rigid transform: the rotation part is not orthonormal"),
    ("1 0.1 0 0 0 1 0 0 0 0 1 0", r"line 3: not a rigid transform: the rotation part is not orthonormal"),
    ("-1 0 0 0 0 1 0 0 0 0 1 0", r"line 3: not a rigid transform: det R = -1, not \+1"),
])
def test_kitti_a_bad_pose_line_is_named(tmp_path, line, message):
    write_kitti(tmp_path)
    set_line(pose_file(tmp_path), 3, line)
    with pytest.raises(DataError, match=re.escape(str(pose_file(tmp_path))) + " " + message):
        read_kitti_odometry(tmp_path, ["00"])


def test_kitti_pose_count_differing_from_frame_count_says_both(tmp_path):
    write_kitti(tmp_path, n=5)
    lines = pose_file(tmp_path).read_text().splitlines()
    pose_file(tmp_path).write_text("\n".join(lines[:4]) + "\n")
    with pytest.raises(DataError, match=r"poses/00\.txt has 4 poses but .*image_2 has 5 frames"):
        read_kitti_odometry(tmp_path, ["00"])
    pose_file(tmp_path).write_text("\n".join(lines + lines[:1]) + "\n")
    with pytest.raises(DataError, match=r"has 6 poses but .* has 5 frames"):
        read_kitti_odometry(tmp_path, ["00"])
    pose_file(tmp_path).write_text("\n".join(lines) + "\n\n\n")    # trailing blank lines: fine
    assert len(read_kitti_odometry(tmp_path, ["00"])[0]) == 5


def test_kitti_a_gap_in_frame_numbers_names_the_first_missing_frame(tmp_path):
    write_kitti(tmp_path, n=6)
    cam = tmp_path / "sequences" / "00" / "image_2"
    (cam / "000002.png").unlink()
    (cam / "000004.png").unlink()
    with pytest.raises(DataError, match=r"frame .*image_2/000002\.png is missing \(frames numbered 0\.\.5, 2 missing\)"):
        read_kitti_odometry(tmp_path, ["00"])
    (cam / "000002.png").write_bytes(b"x")
    (cam / "000004.png").write_bytes(b"x")
    (cam / "000000.png").unlink()
    with pytest.raises(DataError, match=r"frame .*image_2/000000\.png is missing"):
        read_kitti_odometry(tmp_path, ["00"])


def test_kitti_an_empty_sequence_is_an_error(tmp_path):
    write_kitti(tmp_path, n=2)
    for p in (tmp_path / "sequences" / "00" / "image_2").glob("*.png"):
        p.unlink()
    with pytest.raises(DataError, match=r"camera folder .*image_2 has no frames .*empty sequence"):
        read_kitti_odometry(tmp_path, ["00"])


def test_kitti_bad_times_file_is_named(tmp_path):
    write_kitti(tmp_path, n=4)
    times = tmp_path / "sequences" / "00" / "times.txt"
    set_line(times, 2, "0.1 0.2")
    with pytest.raises(DataError, match=re.escape(str(times)) + r" line 2: expected 1 numbers"):
        read_kitti_odometry(tmp_path, ["00"])
    times.write_text("0\n0.1\n0.2\n")
    with pytest.raises(DataError, match=r"times\.txt has 3 times but .* has 4 frames"):
        read_kitti_odometry(tmp_path, ["00"])
    times.write_text("0\n0.2\n0.1\n0.3\n")
    with pytest.raises(DataError, match=r"times\.txt line 3: timestamp 0\.1 is not after"):
        read_kitti_odometry(tmp_path, ["00"])


# --------------------------------------------------------------------------
# TUM RGB-D
# --------------------------------------------------------------------------

def tum_quat_line(t, pose):
    q = Rotation.from_matrix(pose[:3, :3]).as_quat()          # x y z w, as TUM
    return f"{t:.6f} " + " ".join(f"{x:.9f}" for x in (*pose[:3, 3], *q))


def write_tum(root, frame_times, pose_times, seed=0, files=True):
    """A TUM RGB-D folder: frames at ``frame_times``, poses at ``pose_times``; returns the
    poses written [M, 4, 4]."""
    root.mkdir()
    (root / "rgb").mkdir()
    lines = ["# color images", "# file: 'rgbd_dataset_test.bag'", "# timestamp filename"]
    for t in frame_times:
        name = f"rgb/{t:.6f}.png"
        lines.append(f"{t:.6f} {name}")
        if files:
            (root / name).write_bytes(b"frame")
    (root / "rgb.txt").write_text("\n".join(lines) + "\n")
    poses = rigid(len(pose_times), seed)
    gt = ["# ground truth trajectory", "# timestamp tx ty tz qx qy qz qw"]
    gt += [tum_quat_line(t, p) for t, p in zip(pose_times, poses)]
    (root / "groundtruth.txt").write_text("\n".join(gt) + "\n")
    return poses


def test_tum_matches_each_frame_to_the_nearest_pose_and_drops_the_unmatched(tmp_path, caplog):
    pose_t = 100.0 + 0.01 * np.arange(20)                   # 100.00 .. 100.19, 100 Hz
    frame_t = [99.5, 100.004, 100.046, 100.101, 100.17, 100.2095, 101.0]
    poses = write_tum(tmp_path / "fr1_desk", frame_t, pose_t)
    with caplog.at_level(logging.INFO, logger="keras_ssl.data.sequences"):
        s = read_tum_rgbd(tmp_path / "fr1_desk")
    # nearest: 100.00 (0.004 away), 100.05 (0.004), 100.10 (0.001), 100.17 (0), 100.19 (0.0195);
    # 99.5 and 101.0 have no pose within 0.02 s
    assert s.name == "fr1_desk" and len(s) == 5
    assert s.frames == [tmp_path / "fr1_desk" / f"rgb/{t:.6f}.png" for t in frame_t[1:6]]
    np.testing.assert_allclose(s.times, frame_t[1:6])
    np.testing.assert_allclose(s.poses, poses[[0, 5, 10, 17, 19]], atol=1e-8)
    assert s.dropped == tuple(tmp_path / "fr1_desk" / f"rgb/{t:.6f}.png" for t in (99.5, 101.0))
    assert "2 of 7 frames have no pose within 0.02 s" in caplog.text
    # a tighter window drops the frame 0.0195 s away too
    s = read_tum_rgbd(tmp_path / "fr1_desk", max_time_diff=0.01)
    assert len(s) == 4 and len(s.dropped) == 3


def test_nearest_index_picks_the_closer_neighbour():
    t = np.array([0.0, 1.0, 2.0])
    np.testing.assert_array_equal(nearest_index(t, np.array([-5, 0.4, 0.6, 1.5, 1.9, 7])),
                                  [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(nearest_index(np.array([3.0]), np.array([1.0, 9.0])), [0, 0])


def test_tum_missing_files_and_folder(tmp_path):
    with pytest.raises(DataError, match=r"TUM RGB-D folder .*nowhere is not a directory"):
        read_tum_rgbd(tmp_path / "nowhere")
    root = tmp_path / "seq"
    write_tum(root, [1.0, 1.1], [1.0, 1.1])
    (root / "rgb" / "1.100000.png").unlink()
    with pytest.raises(DataError, match=r"rgb\.txt line 5: frame file .*rgb/1\.100000\.png is missing"):
        read_tum_rgbd(root)
    assert len(read_tum_rgbd(root, check_images=False)) == 2   # paths only, not checked
    (root / "groundtruth.txt").unlink()
    with pytest.raises(DataError, match=r"ground-truth file .*groundtruth\.txt is missing"):
        read_tum_rgbd(root, check_images=False)
    (root / "rgb.txt").unlink()
    with pytest.raises(DataError, match=r"frame list .*rgb\.txt is missing"):
        read_tum_rgbd(root)


@pytest.mark.parametrize("which, k, line, message", [
    ("rgb.txt", 4, "1.0", r"line 4: expected 'timestamp filename', found 1 fields"),
    ("rgb.txt", 4, "one rgb/1.000000.png", r"line 4: 'one' is not a number"),
    ("rgb.txt", 4, "1.2 rgb/1.000000.png", r"line 5: timestamp 1\.1 is not after the previous line's 1\.2 \(line 4\)"),
    ("groundtruth.txt", 3, "1.0 0 0 0 0 0 0", r"line 3: expected 8 numbers \(timestamp tx ty tz qx qy qz qw\), found 7"),
    ("groundtruth.txt", 3, "1.0 0 0 0 0 0 0 x", r"line 3: 'x' is not a number"),
    ("groundtruth.txt", 3, "1.0 0 0 0 0 0 0 2", r"line 3: not a rigid transform: quaternion norm 2"),
    ("groundtruth.txt", 3, "1.0 0 0 0 0 0 0 0", r"line 3: not a rigid transform: quaternion norm 0"),
])
def test_tum_a_bad_line_is_named(tmp_path, which, k, line, message):
    root = tmp_path / "seq"
    write_tum(root, [1.0, 1.1], [1.0, 1.1])
    set_line(root / which, k, line)
    with pytest.raises(DataError, match=re.escape(str(root / which)) + " " + message):
        read_tum_rgbd(root)


def test_tum_empty_lists_and_no_match_are_errors(tmp_path):
    root = tmp_path / "seq"
    write_tum(root, [1.0, 1.1], [5.0, 5.1])
    with pytest.raises(DataError, match=r"no frame of .*rgb\.txt has a pose in .*groundtruth\.txt within 0\.02 s"):
        read_tum_rgbd(root)
    (root / "groundtruth.txt").write_text("# nothing\n")
    with pytest.raises(DataError, match=r"groundtruth\.txt has no poses"):
        read_tum_rgbd(root)
    (root / "rgb.txt").write_text("# timestamp filename\n\n")
    with pytest.raises(DataError, match=r"rgb\.txt lists no frames: empty sequence"):
        read_tum_rgbd(root)
