"""keras_ssl.data.motion: relative motion from constructed poses (values and signs),
composition, frame pairs, balanced quantile bins and the labels of pairs."""
import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from keras_ssl.data.motion import (AXES, all_pairs, concat_motion, edges_from_json, edges_to_json, fit_bins,
                                   fit_motion_bins, motion_matrix, pair_labels, pair_motion,
                                   relative_motion, relative_transform, sample_pairs, to_bins)


def pose(R=np.eye(3), t=(0, 0, 0)):
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def rot_y(theta):
    return Rotation.from_rotvec([0, theta, 0]).as_matrix()


def random_poses(n, seed=0):
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    T[:, :3, 3] = np.random.default_rng(seed).normal(0, 5, (n, 3))
    return T


# --------------------------------------------------------------------------
# relative_motion
# --------------------------------------------------------------------------

def test_moving_forward_along_z_is_tz_positive():
    m = relative_motion(pose(), pose(t=(0, 0, 1.5)))
    assert (m.tx, m.tz, m.yaw) == pytest.approx((0.0, 1.5, 0.0))
    m = relative_motion(pose(), pose(t=(-0.3, 0, 0)))           # moved left
    assert (m.tx, m.tz, m.yaw) == pytest.approx((-0.3, 0.0, 0.0))


def test_turning_by_theta_about_y_is_yaw_theta_and_means_turning_right():
    theta = 0.3
    m = relative_motion(pose(), pose(rot_y(theta)))
    assert (m.tx, m.tz, m.yaw) == pytest.approx((0.0, 0.0, theta))
    # +theta about y (down): the new forward axis points to the old camera's right (+x)
    forward_j = rot_y(theta) @ [0, 0, 1]
    assert forward_j[0] > 0 and forward_j[2] > 0
    assert relative_motion(pose(), pose(rot_y(-theta))).yaw == pytest.approx(-theta)
    # yaw is scipy's first intrinsic Y-X-Z Euler angle, also with pitch and roll present
    R = Rotation.from_euler("YXZ", [0.7, 0.2, -0.1]).as_matrix()
    assert relative_motion(pose(), pose(R)).yaw == pytest.approx(0.7)


def test_motion_is_in_camera_i_frame_not_world():
    # camera i at (5, 0, 2), turned right by 90 deg: its forward (+z) is world +x; camera j
    # 2 m further along world +x, turned a further 10 deg: 2 m forward, 10 deg right
    Ti = pose(rot_y(np.pi / 2), (5, 0, 2))
    Tj = pose(rot_y(np.pi / 2 + 0.1745), (7, 0, 2))
    m = relative_motion(Ti, Tj)
    assert (m.tx, m.tz, m.yaw) == pytest.approx((0.0, 2.0, 0.1745), abs=1e-12)
    back = relative_motion(Tj, Ti)                                   # the reverse
    assert back.yaw == pytest.approx(-0.1745)
    # camera i is 2 m behind along j's old heading, which lies 10 deg to j's left: so i is
    # behind j and to its right
    assert (back.tx, back.tz) == pytest.approx((2 * np.sin(0.1745), -2 * np.cos(0.1745)))


def test_relative_transform_is_inv_Ti_Tj_and_vectorised():
    Ti, Tj = random_poses(6, 1), random_poses(6, 2)
    T = relative_transform(Ti, Tj)
    np.testing.assert_allclose(T, np.linalg.inv(Ti) @ Tj, atol=1e-12)
    m = relative_motion(Ti, Tj)
    assert m.tx.shape == m.tz.shape == m.yaw.shape == (6,)
    for k in range(6):                                               # each pair alone
        one = relative_motion(Ti[k], Tj[k])
        assert (one.tx, one.tz, one.yaw) == pytest.approx((m.tx[k], m.tz[k], m.yaw[k]))
    with pytest.raises(ValueError, match=r"\[\.\.\., 4, 4\]"):
        relative_motion(np.eye(3), np.eye(4))


def test_composing_i_to_j_and_j_to_k_gives_i_to_k_for_yaw_about_y():
    rng = np.random.default_rng(3)
    n = 50
    # planar trajectories in the x-z plane with headings about y, random world start
    yaw = rng.uniform(-np.pi, np.pi, (3, n))
    start = random_poses(n, 4)
    Ti = start @ motion_matrix(0, 0, yaw[0])
    Tj = Ti @ motion_matrix(rng.normal(0, 1, n), rng.normal(0, 1, n), yaw[1])
    Tk = Tj @ motion_matrix(rng.normal(0, 1, n), rng.normal(0, 1, n), yaw[2])
    ij, jk, ik = relative_motion(Ti, Tj), relative_motion(Tj, Tk), relative_motion(Ti, Tk)
    wrap = lambda a: np.angle(np.exp(1j * a))
    np.testing.assert_allclose(wrap(ik.yaw - (ij.yaw + jk.yaw)), 0, atol=1e-9)
    # translation i->k: t_ij + R_y(yaw_ij) t_jk
    c, s = np.cos(ij.yaw), np.sin(ij.yaw)
    np.testing.assert_allclose(ik.tx, ij.tx + c * jk.tx + s * jk.tz, atol=1e-9)
    np.testing.assert_allclose(ik.tz, ij.tz - s * jk.tx + c * jk.tz, atol=1e-9)
    # motion_matrix inverts relative_motion for planar motions
    m = relative_motion(Ti, Tj)
    np.testing.assert_allclose(relative_transform(Ti, Tj), motion_matrix(m.tx, m.tz, m.yaw), atol=1e-9)


# --------------------------------------------------------------------------
# pairs
# --------------------------------------------------------------------------

def test_all_pairs_are_within_the_gap_both_ways():
    p = all_pairs(10, 7)
    gap = np.abs(p[:, 1] - p[:, 0])
    assert gap.min() == 1 and gap.max() == 7
    assert len(p) == 2 * sum(10 - g for g in range(1, 8)) == len({tuple(r) for r in p})
    assert p.min() >= 0 and p.max() <= 9
    forward = all_pairs(10, 7, backward=False)
    assert np.all(forward[:, 1] > forward[:, 0]) and len(forward) == len(p) // 2
    assert all_pairs(4, 7).shape == (12, 2)                     # the gap capped by the length
    assert all_pairs(1, 7).shape == (0, 2)


def test_sample_pairs_is_deterministic_given_the_seed():
    a = sample_pairs(100, 7, n_pairs=200, seed=5)
    b = sample_pairs(100, 7, n_pairs=200, seed=5)
    c = sample_pairs(100, 7, n_pairs=200, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    gap = np.abs(a[:, 1] - a[:, 0])
    assert a.dtype == np.int64 and gap.min() >= 1 and gap.max() <= 7
    assert len({tuple(r) for r in a}) == 200                    # without replacement
    assert np.any(a[:, 1] < a[:, 0])                            # both directions
    np.testing.assert_array_equal(sample_pairs(10, 2), all_pairs(10, 2))
    with pytest.raises(ValueError, match=r"asked for 100 distinct pairs; 5 frames at most 7 apart give 20"):
        sample_pairs(5, 7, n_pairs=100)
    assert len(sample_pairs(5, 7, n_pairs=100, replace=True)) == 100


# --------------------------------------------------------------------------
# bins
# --------------------------------------------------------------------------

@pytest.mark.parametrize("n, bins", [(1000, 20), (1003, 20), (21, 20), (20, 20), (57, 7)])
def test_fitted_bins_are_balanced_on_distinct_values(n, bins):
    v = np.random.default_rng(n).standard_normal(n) ** 3         # skewed, heavy tails
    edges = fit_bins(v, bins)
    assert edges.shape == (bins + 1,) and np.all(np.diff(edges) > 0)
    assert edges[0] == v.min() and edges[-1] == v.max()
    counts = np.bincount(to_bins(v, edges), minlength=bins)
    assert len(counts) == bins and counts.max() - counts.min() <= 1 and counts.sum() == n


def test_values_beyond_the_outer_edges_are_clipped_into_the_first_and_last_bin():
    edges = fit_bins(np.arange(100.0), 10)
    ids = to_bins([-1e9, -0.5, 0.0, 49.4, 49.6, 99.0, 99.5, 1e9], edges)
    np.testing.assert_array_equal(ids, [0, 0, 0, 4, 5, 9, 9, 9])
    assert ids.dtype == np.int64
    with pytest.raises(ValueError, match="NaN"):
        to_bins([np.nan], edges)


def test_fit_bins_refuses_what_cannot_be_balanced():
    with pytest.raises(ValueError, match=r"cannot fit 20 bins on 5 values"):
        fit_bins(np.arange(5.0), 20)
    with pytest.raises(ValueError, match=r"edges 0 and 1 coincide at 0\.0"):
        fit_bins([0, 0, 0, 0, 0, 0, 1, 2], 4)            # six of eight values equal
    with pytest.raises(ValueError, match="not finite"):
        fit_bins([0, 1, np.inf], 2)


def test_edges_round_trip_through_json():
    v = np.random.default_rng(0).normal(0, 1e-3, 500)
    edges = fit_bins(v, 20)
    back = edges_from_json(json.loads(json.dumps(edges_to_json(edges))))
    np.testing.assert_array_equal(back, edges)                  # exactly
    probe = np.random.default_rng(1).normal(0, 2e-3, 1000)
    np.testing.assert_array_equal(to_bins(probe, back), to_bins(probe, edges))
    with pytest.raises(ValueError, match="not bin edges"):
        edges_from_json([0.0, 2.0, 1.0, 3.0])


def test_the_label_of_a_pair_is_to_bins_of_the_motion_from_the_poses():
    rng = np.random.default_rng(7)
    n = 120
    # a planar drive: forward steps with small lateral drift and turns
    steps = motion_matrix(rng.normal(0, 0.05, n), rng.uniform(0.5, 1.5, n), rng.normal(0, 0.03, n))
    poses = np.empty((n, 4, 4))
    poses[0] = np.eye(4)
    for k in range(1, n):
        poses[k] = poses[k - 1] @ steps[k]
    train = sample_pairs(n, 7, n_pairs=400, seed=0)
    edges = fit_motion_bins(pair_motion(poses, train), bins=20)
    assert sorted(edges) == sorted(AXES) and all(len(e) == 21 for e in edges.values())
    edges = json.loads(json.dumps(edges))                        # stored with a run, reused
    val = sample_pairs(n, 7, n_pairs=50, seed=1)
    labels = pair_labels(poses, val, edges)
    for r, (i, j) in enumerate(val):
        T = np.linalg.inv(poses[i]) @ poses[j]                   # by hand
        by_hand = {"tx": T[0, 3], "tz": T[2, 3], "yaw": np.arctan2(T[0, 2], T[2, 2])}
        for a in AXES:
            assert labels[a][r] == to_bins(by_hand[a], edges[a]), (a, i, j)
            assert 0 <= labels[a][r] < 20
    # forward pairs move forward: tz > 0 exactly when j > i
    m = pair_motion(poses, val)
    np.testing.assert_array_equal(m.tz > 0, val[:, 1] > val[:, 0])
    # training labels are balanced per axis
    for a, ids in pair_labels(poses, train, edges).items():
        counts = np.bincount(ids, minlength=20)
        assert counts.max() - counts.min() <= 1, a


def test_bins_fitted_across_sequences_with_concat_motion():
    a, b = random_poses(30, 8), random_poses(40, 9)
    ma = pair_motion(a, sample_pairs(30, 7, n_pairs=100, seed=0))
    mb = pair_motion(b, sample_pairs(40, 7, n_pairs=60, seed=1))
    both = concat_motion([ma, mb])
    assert both.tx.shape == (160,)
    np.testing.assert_array_equal(both.yaw, np.concatenate([ma.yaw, mb.yaw]))
    edges = fit_motion_bins(both, bins=8)
    counts = np.bincount(np.concatenate([pair_labels(a, sample_pairs(30, 7, n_pairs=100, seed=0), edges)["tz"],
                                         pair_labels(b, sample_pairs(40, 7, n_pairs=60, seed=1), edges)["tz"]]))
    assert counts.max() - counts.min() <= 1


def test_zscore_bins_are_the_authors_uniform_bins_with_two_overflow_classes():
    """binning "zscore": width w = std * bin_size around the training mean m; v in
    [m + (k - 10) w, m + (k - 9) w) is class k + 1 for k = 0..19, below m - 10 w class 0,
    at or above m + 10 w class 21 (22 classes from bins = 20)."""
    from keras_ssl.data.motion import bin_count, fit_zscore_bins

    rng = np.random.default_rng(0)
    v = rng.normal(3.0, 2.0, 5000)
    m, s = v.mean(), v.std()
    e = fit_zscore_bins(v, 20, bin_size=0.5)
    w = s * 0.5
    assert len(e) == 23 and bin_count(20, "zscore") == 22 and bin_count(20, "quantile") == 20
    np.testing.assert_allclose(e[1:-1], m + w * np.arange(-10, 11), rtol=0, atol=1e-12)
    probe = [m + 0.5 * w, m - 0.5 * w, m - 9.5 * w, m - 10.5 * w, m + 9.5 * w, m + 10.5 * w, m + 1e6]
    assert to_bins(probe, e).tolist() == [11, 10, 1, 0, 20, 21, 21]
    # most values sit in the central classes (+-2 std = 8 classes hold ~95 %)
    counts = np.bincount(to_bins(v, e), minlength=22)
    assert counts[7:15].sum() / len(v) == pytest.approx(0.954, abs=0.02)
    with pytest.raises(ValueError, match="all 3 values equal"):
        fit_zscore_bins([1.0, 1.0, 1.0], 20)
    with pytest.raises(ValueError, match="binning must be one of"):
        bin_count(20, "uniform")
