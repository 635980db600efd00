"""Car-like drives: a smooth random path with yaw (and optionally small pitch and roll), a
road along it over grass, walls, billboards and poles on both sides, rendered frame by frame
and written in the KITTI odometry or the TUM RGB-D layout (``docs/render.md``).

World ("ground frame" G): x, z horizontal, y down (as the camera), ground at
``y = CAMERA_HEIGHT`` below the camera's centre. Camera k's pose in G is P_k =
[R_y(heading) R_x(pitch) R_z(roll) | position]; the poses written are
T_k = inv(P_0) P_k, so the world of the files is frame 0's camera, as KITTI's.
``heading`` increasing = turning right (towards +x), which :func:`relative_motion` reports
as yaw > 0.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter1d, map_coordinates
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from keras_ssl.render import textures as tx
from keras_ssl.render.raycast import BandGround, Rects, World, camera_rays, intrinsics, render_view

#: KITTI's camera height above the road (m) and its colour cameras' P2 (sequence 00) at
#: 1241x376, scaled to the rendered size; stereo baseline (m) for P1/P3.
CAMERA_HEIGHT = 1.65
KITTI_SIZE = (376, 1241)
KITTI_F, KITTI_CX, KITTI_CY = 718.856, 607.1928, 185.2157
BASELINE = 0.54
#: Frame rates (Hz) of the layouts, and TUM's ground-truth rate as a multiple of its frame rate
#: (each frame's pose is one ground-truth line: exact).
KITTI_RATE, TUM_RATE, TUM_GT_PER_FRAME = 10.0, 30.0, 4
#: Road: half width of the asphalt, the gravel shoulder beyond it, painted edge lines.
ROAD_HALF, SHOULDER = 3.5, 1.5
#: Seconds of path before the first and after the last frame (the road runs on out of view).
EXTRA_S = 25.0
#: Speed (m/s) and yaw rate (rad/s) of the random path: mean/limits and spread.
SPEED_MEAN, SPEED_STD, SPEED_MIN, SPEED_MAX = 8.0, 3.0, 3.0, 14.0
YAW_RATE_STD, YAW_RATE_MAX = 0.18, 0.5
TUM_BASE_TIME = 1700000000.0


def kitti_intrinsics(height: int, width: int) -> np.ndarray:
    """KITTI's left colour camera scaled to width (square pixels: fx = fy)."""
    s = width / KITTI_SIZE[1]
    return intrinsics(KITTI_F * s, KITTI_F * s, KITTI_CX * s, KITTI_CY * height / KITTI_SIZE[0])


def rot_y(a):
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


@dataclass
class DrivePath:
    """A path sampled on a fine time grid: ``times`` [F] (s, 0 at the first frame), ``poses``
    [F, 4, 4] in G, ``heading`` [F] (rad), ``speed`` [F] (m/s); ``frames``: the fine
    indices of the rendered frames (every ``substeps``-th from ``first``)."""
    times: np.ndarray
    poses: np.ndarray
    heading: np.ndarray
    speed: np.ndarray
    frames: np.ndarray
    substeps: int


def _smooth_knots(rng, n_knots, sigma, std, mean=0.0):
    k = gaussian_filter1d(rng.standard_normal(n_knots), sigma, mode="nearest")
    return mean + std * k / max(float(k.std()), 1e-6)


def drive_path(n_frames: int, rate: float, rng: np.random.Generator, substeps: int = 4,
               pitch_roll_deg: float = 0.0, yaw_rate=None, speed=None) -> DrivePath:
    """A smooth random forward path of ``n_frames`` frames at ``rate`` Hz, with
    :data:`EXTRA_S` seconds more before and after. ``yaw_rate`` (rad/s, > 0: turning right)
    and ``speed`` (m/s): constants or callables of time replacing the random ones (tests).
    ``pitch_roll_deg``: amplitude of a small smooth random pitch and roll (0: none)."""
    dt = 1.0 / (rate * substeps)
    n_extra = int(round(EXTRA_S / dt))
    total = (n_frames - 1) * substeps + 1 + 2 * n_extra
    t = (np.arange(total) - n_extra) * dt
    knot_t = np.arange(t[0] - 1.0, t[-1] + 2.0, 1.0)
    w_knots = _smooth_knots(rng, len(knot_t), 2.0, YAW_RATE_STD)
    w_knots = np.clip(w_knots - w_knots.mean(), -YAW_RATE_MAX, YAW_RATE_MAX)   # as many right as left turns
    v_knots = np.clip(_smooth_knots(rng, len(knot_t), 3.0, SPEED_STD, SPEED_MEAN), SPEED_MIN, SPEED_MAX)
    w = np.interp(t, knot_t, w_knots)
    v = np.interp(t, knot_t, v_knots)
    if yaw_rate is not None:
        w = np.broadcast_to(yaw_rate(t) if callable(yaw_rate) else float(yaw_rate), t.shape).astype(np.float64)
    if speed is not None:
        v = np.broadcast_to(speed(t) if callable(speed) else float(speed), t.shape).astype(np.float64)
    heading = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * dt)])
    vx, vz = v * np.sin(heading), v * np.cos(heading)
    x = np.concatenate([[0.0], np.cumsum(0.5 * (vx[1:] + vx[:-1]) * dt)])
    z = np.concatenate([[0.0], np.cumsum(0.5 * (vz[1:] + vz[:-1]) * dt)])
    R = rot_y(heading)
    if pitch_roll_deg > 0:
        pk = np.radians(pitch_roll_deg) * np.clip(_smooth_knots(rng, len(knot_t), 1.0, 0.5), -1, 1)
        rk = np.radians(pitch_roll_deg) * np.clip(_smooth_knots(rng, len(knot_t), 1.0, 0.5), -1, 1)
        pr = Rotation.from_euler("XZ", np.stack([np.interp(t, knot_t, pk), np.interp(t, knot_t, rk)], 1))
        R = R @ pr.as_matrix()
    poses = np.tile(np.eye(4), (total, 1, 1))
    poses[:, :3, :3] = R
    poses[:, 0, 3], poses[:, 2, 3] = x, z
    frames = n_extra + substeps * np.arange(n_frames)
    return DrivePath(t, poses, heading, v, frames, substeps)


# --------------------------------------------------------------------------
# The world along a path
# --------------------------------------------------------------------------

_BUILDING_TINTS = [(150, 80, 62), (140, 138, 132), (185, 165, 120), (120, 95, 80), (170, 120, 95),
                   (110, 112, 120), (200, 190, 170)]


class _RasterDistance:
    """Distance (m) to the path in the ground plane, from a raster (bilinear; clamped outside)."""

    def __init__(self, xz: np.ndarray, cell: float = 0.4, margin: float = 40.0):
        lo = xz.min(0) - margin
        shape = np.ceil((xz.max(0) + margin - lo) / cell).astype(int) + 1
        grid = np.ones(tuple(shape), bool)
        ij = np.round((xz - lo) / cell).astype(int)
        grid[ij[:, 0], ij[:, 1]] = False
        self.d = distance_transform_edt(grid, sampling=cell).astype(np.float32)
        self.lo, self.cell = lo.astype(np.float32), np.float32(cell)

    def __call__(self, x, z):
        coords = np.stack([(x - self.lo[0]) / self.cell, (z - self.lo[1]) / self.cell])
        return map_coordinates(self.d, coords, order=1, mode="nearest").astype(np.float32)


def road_ground(distance) -> BandGround:
    asphalt = tx.texture("gravel", tint=(88, 88, 92), contrast=0.45)
    shoulder = tx.texture("gravel", tint=(150, 135, 112))
    grass = tx.texture("grass", tint=(88, 132, 58), contrast=1.2)
    return BandGround(distance, [(asphalt, 3.0, ROAD_HALF), (shoulder, 2.5, ROAD_HALF + SHOULDER),
                                 (grass, 4.0, np.inf)],
                      lines=(ROAD_HALF - 0.3,))


def _facing(centre_xz, toward_xz, width, height, bottom, ground_y):
    """A vertical rectangle centred at ``centre_xz``, facing point ``toward_xz`` (its image
    upright and unmirrored seen from there), ``bottom`` m above the ground."""
    f = np.asarray(toward_xz, np.float64) - centre_xz
    f /= max(np.linalg.norm(f), 1e-9)
    fwd = -np.array([f[0], 0.0, f[1]])                 # the viewer's forward
    a = np.cross([0.0, 1.0, 0.0], fwd)                  # the viewer's right (x = y cross z)
    b = np.array([0.0, -1.0, 0.0])
    p0 = np.array([centre_xz[0], ground_y - bottom, centre_xz[1]]) - a * width / 2
    return p0, a, b


def drive_world(path: DrivePath, rng: np.random.Generator) -> World:
    """Road, walls, billboards and poles along ``path`` (in G), textures from skimage.data."""
    xz = path.poses[:, [0, 2], 3]
    dist = _RasterDistance(xz)
    tree = cKDTree(xz)
    step = np.linalg.norm(np.diff(xz, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(step)])
    heading = path.heading
    textures, rects = [], []
    tex_index = {}

    def tex(key, make):
        if key not in tex_index:
            tex_index[key] = len(textures)
            textures.append(make())
        return tex_index[key]

    def at(s):
        k = int(np.clip(np.searchsorted(arc, s), 0, len(arc) - 1))
        h = heading[k]
        return xz[k], np.array([np.sin(h), np.cos(h)]), np.array([np.cos(h), -np.sin(h)])

    def clear(p0, a, width, clearance):
        n = max(int(width / 0.5), 1) + 1
        pts = p0[[0, 2]][None, :] + np.linspace(0, width, n)[:, None] * a[[0, 2]][None, :]
        return bool(tree.query(pts)[0].min() >= clearance)

    def add(p0, a, b, w, h, t, su, sv, shade):
        rects.append(dict(p0=p0, a=a, b=b, w=w, h=h, tex=t, su=su, sv=sv, shade=shade))

    sun = np.array([0.5, 0.0, 0.8]) / np.linalg.norm([0.5, 0.0, 0.8])

    def lit(a, b):
        return float(0.75 + 0.25 * abs(np.cross(a, b) @ sun))

    G = CAMERA_HEIGHT
    for side in (1.0, -1.0):
        # walls (building fronts) and open stretches
        s = arc[0] + rng.uniform(0, 20)
        while s < arc[-1]:
            if rng.random() < 0.12:
                s += rng.uniform(20, 70)
                continue
            length, height = rng.uniform(6, 35), rng.uniform(3, 12)
            offset = rng.uniform(7.0, 11.0)
            choice = rng.random()
            if choice < 0.7:
                t = tex(("brick", k := int(rng.integers(len(_BUILDING_TINTS)))),
                        lambda: tx.texture("brick", tint=_BUILDING_TINTS[k]))
                su = sv = float(rng.uniform(2.5, 4.0))
            elif choice < 0.85:
                t = tex(("concrete",), lambda: tx.texture("gravel", tint=(165, 162, 155), contrast=0.7))
                su = sv = 3.0
            else:
                name = str(rng.choice(["cell", "coins", "clock", "camera"]))
                t = tex((name, "wall"), lambda: tx.texture(name, tint=(175, 170, 160)))
                su = sv = float(height)
            for _ in range(3):
                c_xz, tau, right = at(s + length / 2)
                centre = c_xz + side * offset * right
                p0, a, b = _facing(centre, centre - side * right, length, height, 0.0, G)
                if clear(p0, a, length, 6.0):
                    add(p0, a, b, length, height, t, su, sv, lit(a, b))
                    break
                length *= 0.5
                if length < 4:
                    break
            s += length + rng.uniform(0.5, 10)
        # billboards on two posts, angled towards the traffic
        s = arc[0] + rng.uniform(10, 40)
        while s < arc[-1]:
            c_xz, tau, right = at(s)
            width, height, bottom = rng.uniform(4, 7), rng.uniform(2.5, 4.0), rng.uniform(1.8, 3.0)
            centre = c_xz + side * rng.uniform(5.8, 8.0) * right
            p0, a, b = _facing(centre, at(s - rng.uniform(20, 60))[0], width, height, bottom, G)
            if clear(p0, a, width, 4.8):
                name = str(rng.choice(tx.PHOTOS + ("camera", "moon", "clock", "page", "text", "coins")))
                add(p0, a, b, width, height, tex((name, "photo"), lambda: tx.texture(name, wrap=False)),
                    width, height, lit(a, b))
                post = tex(("post",), lambda: tx.texture("gravel", tint=(110, 110, 115)))
                for u in (0.2 * width, 0.8 * width):
                    q = p0 + a * u
                    add(np.array([q[0], G, q[2]]), a, b, 0.2, bottom, post, 0.5, 0.5, 1.0)
            s += rng.uniform(25, 80)
        # poles (street lights)
        s = arc[0] + rng.uniform(0, 30)
        while s < arc[-1]:
            c_xz, tau, right = at(s)
            centre = c_xz + side * rng.uniform(5.5, 6.5) * right
            p0, a, b = _facing(centre, c_xz, 0.22, 6.0, 0.0, G)
            if clear(p0, a, 0.22, 4.8):
                add(p0, a, b, 0.22, 6.0, tex(("pole",), lambda: tx.texture("gravel", tint=(150, 150, 150))),
                    0.5, 0.5, lit(a, b))
            s += rng.uniform(15, 45)
    sky = rng.uniform(-15, 15, 3)
    return World(road_ground(dist), Rects.from_list(rects), textures, ground_y=G,
                 horizon=tuple(np.clip(np.array([205.0, 215.0, 228.0]) + sky, 0, 255)),
                 zenith=tuple(np.clip(np.array([75.0, 125.0, 205.0]) + sky, 0, 255)))


# --------------------------------------------------------------------------
# Writing the layouts
# --------------------------------------------------------------------------

def _inverse(T):
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def calib_text(K: np.ndarray) -> str:
    """KITTI odometry ``calib.txt``: P0..P3 (3x4, row-major) and Tr. The rendered camera
    (image_2, whose poses the file holds) is the reference: P0 = P2 = K [I | 0]; P1 = P3 =
    K [I | (-baseline, 0, 0)] (a right camera, not rendered); Tr (velodyne to camera; there
    is none) the identity, so KITTI tools that read it find it."""
    P = np.hstack([K, np.zeros((3, 1))])
    Pr = P.copy()
    Pr[0, 3] = -K[0, 0] * BASELINE
    row = lambda M: " ".join(f"{v:.12e}" for v in M.ravel())  # noqa: E731
    tr = np.hstack([np.eye(3), np.zeros((3, 1))])
    return "".join(f"{n}: {row(M)}\n" for n, M in (("P0", P), ("P1", Pr), ("P2", P), ("P3", Pr), ("Tr", tr)))


def read_calib(path) -> np.ndarray:
    """The 3x3 intrinsics K of P2 in a KITTI ``calib.txt``."""
    for line in Path(path).read_text().splitlines():
        if line.startswith("P2:"):
            return np.array([float(v) for v in line.split()[1:]]).reshape(3, 4)[:, :3]
    raise ValueError(f"{path}: no P2 line")


def pose_line(T: np.ndarray) -> str:
    return " ".join(f"{v:.12e}" for v in T[:3, :4].ravel())


def _save_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(rgb).save(path, format="PNG", compress_level=1)


@dataclass
class Drive:
    """One drive ready to render: its path, world, the written poses T_k (frame 0 = I),
    frame times (s) and intrinsics."""
    path: DrivePath
    world: World
    poses: np.ndarray
    times: np.ndarray
    K: np.ndarray
    size: tuple


def make_drive(seed, n_frames: int, size=(128, 384), rate: float = KITTI_RATE,
               substeps: int = 4, pitch_roll_deg: float = 0.0, yaw_rate=None, speed=None) -> Drive:
    rng = np.random.default_rng(seed)
    path = drive_path(n_frames, rate, rng, substeps, pitch_roll_deg, yaw_rate, speed)
    world = drive_world(path, rng)
    P0inv = _inverse(path.poses[path.frames[0]])
    poses = P0inv @ path.poses[path.frames]
    return Drive(path, world, poses, path.times[path.frames], kitti_intrinsics(*size), tuple(size))


def render_frame(drive: Drive, k: int, rays: Optional[np.ndarray] = None):
    """The :class:`~keras_ssl.render.raycast.View` of frame ``k`` of ``drive``."""
    H, W = drive.size
    return render_view(drive.world, drive.path.poses[drive.path.frames[k]], drive.K, H, W, rays)


def sequence_names(n: int) -> list[str]:
    return [f"{k:02d}" for k in range(n)]


def write_drives(out: Path, n_sequences: int, n_frames: int, size=(128, 384), layout: str = "kitti",
                 seed: int = 0, pitch_roll_deg: float = 0.0, overwrite: bool = False,
                 progress: bool = True) -> dict:
    """Render ``n_sequences`` drives of ``n_frames`` frames into ``out`` in ``layout``
    ("kitti" or "tum"). Sequence k uses seed (``seed``, k). Returns figures (frames, seconds,
    images/s)."""
    import time

    from tqdm.auto import tqdm

    out = Path(out)
    rate = KITTI_RATE if layout == "kitti" else TUM_RATE
    substeps = 4 if layout == "kitti" else TUM_GT_PER_FRAME
    names = sequence_names(n_sequences)
    if overwrite:
        for name in names:
            for p in ((out / "sequences" / name, out / "poses" / f"{name}.txt") if layout == "kitti"
                      else (out / name,)):
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
    bar = tqdm(total=n_sequences * n_frames, desc=f"render {layout}", unit="frame",
               disable=not progress, dynamic_ncols=True)
    start = time.perf_counter()
    rays = camera_rays(kitti_intrinsics(*size), *size)
    for q, name in enumerate(names):
        drive = make_drive((seed, q), n_frames, size, rate, substeps, pitch_roll_deg)
        if layout == "kitti":
            seq = out / "sequences" / name
            (seq / "image_2").mkdir(parents=True, exist_ok=True)
            (out / "poses").mkdir(parents=True, exist_ok=True)
            (seq / "calib.txt").write_text(calib_text(drive.K))
            (seq / "times.txt").write_text("".join(f"{t:.6e}\n" for t in drive.times))
            (out / "poses" / f"{name}.txt").write_text("".join(pose_line(T) + "\n" for T in drive.poses))
            frame_paths = [seq / "image_2" / f"{k:06d}.png" for k in range(n_frames)]
        else:
            seq = out / name
            (seq / "rgb").mkdir(parents=True, exist_ok=True)
            (seq / "calib.txt").write_text(calib_text(drive.K))
            stamps = [f"{TUM_BASE_TIME + t:.6f}" for t in drive.times]
            frame_paths = [seq / "rgb" / f"{s}.png" for s in stamps]
            (seq / "rgb.txt").write_text(
                "# color images\n# rendered by keras_ssl.render (seed %s)\n# timestamp filename\n"
                % repr((seed, q)) + "".join(f"{s} rgb/{s}.png\n" for s in stamps))
            first, last = drive.path.frames[0], drive.path.frames[-1]
            P0inv = _inverse(drive.path.poses[first])
            lines = []
            for i in range(first, last + 1):
                T = P0inv @ drive.path.poses[i]
                qx, qy, qz, qw = Rotation.from_matrix(T[:3, :3]).as_quat()
                lines.append(f"{TUM_BASE_TIME + drive.path.times[i]:.6f} {T[0, 3]:.9f} {T[1, 3]:.9f} "
                             f"{T[2, 3]:.9f} {qx:.9f} {qy:.9f} {qz:.9f} {qw:.9f}\n")
            (seq / "groundtruth.txt").write_text(
                "# ground truth trajectory\n# rendered by keras_ssl.render\n"
                "# timestamp tx ty tz qx qy qz qw\n" + "".join(lines))
        for k in range(n_frames):
            _save_png(frame_paths[k], render_frame(drive, k, rays).rgb)
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - start
    n = n_sequences * n_frames
    return {"frames": n, "seconds": seconds, "images_per_s": n / seconds if seconds > 0 else float("inf")}
