"""Frame sequences with camera poses: readers for the KITTI odometry and TUM RGB-D layouts.

A :class:`Sequence` is an index, never pixels: the paths of its frames in time order, one
camera-to-world pose per frame (float64 [N, 4, 4]) and, where the layout gives them, the
frame times. Decoding belongs in the tf.data pipeline that reads the paths later.

Layouts (conventions as documented by their authors):

- KITTI odometry (Geiger, Lenz, Urtasun, CVPR 2012; the odometry devkit's readme)::

      <root>/sequences/<NN>/image_2/<6 digits>.png   colour left camera (image_0: grey left)
      <root>/sequences/<NN>/times.txt                optional: one time in seconds per frame
      <root>/sequences/<NN>/calib.txt                optional: projection matrices (not parsed)
      <root>/poses/<NN>.txt                          one pose per frame

  Line k of ``poses/<NN>.txt`` is frame k's pose: 12 numbers, the row-major 3x4 matrix
  [R | t] taking points from the left camera's frame (x right, y down, z forward) to the
  world frame (the camera frame of frame 0). Frames are numbered 000000, 000001, ...
  without gaps. Only sequences 00-10 have poses.

- TUM RGB-D (Sturm et al., IROS 2012; the benchmark's "File Formats" page)::

      <root>/rgb.txt           "timestamp filename" per frame, e.g. "1305031102.175304 rgb/1305031102.175304.png"
      <root>/groundtruth.txt   "timestamp tx ty tz qx qy qz qw" (~100 Hz, motion capture)

  Lines starting with ``#`` are comments. A ground-truth line is the position of the colour
  camera's optical centre and its orientation as a unit quaternion (scalar last) with
  respect to the world: the camera-to-world transform. Frames (~30 Hz) take the pose with
  the nearest timestamp, as the benchmark's ``associate.py`` does (without its one-to-one
  constraint: at 100 Hz against 30 Hz no two frames want the same pose in practice).

Every problem with the files raises :class:`~keras_ssl.data.core.DataError` naming the file
and, for a bad line, its number (1-based).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
from scipy.spatial.transform import Rotation

from keras_ssl.data.core import DataError

log = logging.getLogger(__name__)

#: Tolerance of the rigidity check on a pose's rotation part: max |R^T R - I| and |det R - 1|.
#: KITTI stores 7 significant digits (rounding error ~1e-7); 1e-4 leaves room and still
#: catches a scaled or sheared matrix.
RIGID_TOL = 1e-4
#: Tolerance on the norm of a TUM quaternion (the files keep 4 decimals).
QUATERNION_TOL = 1e-2
#: TUM: a frame takes the nearest pose only if it is at most this many seconds away.
MAX_TIME_DIFF = 0.02

_KITTI_FRAME = re.compile(r"^(\d{6})\.png$")


@dataclass(frozen=True)
class Sequence:
    """One sequence of frames with a camera pose per frame.

    - ``name``: the KITTI sequence number ("00") or the TUM folder's name.
    - ``frames``: frame paths in time order (KITTI: by frame number).
    - ``poses``: float64 [N, 4, 4] camera-to-world rigid transforms, frame k's at ``poses[k]``
      (read-only).
    - ``times``: float64 [N] seconds (KITTI ``times.txt``, TUM ``rgb.txt`` timestamps) or None.
    - ``calib``: KITTI ``calib.txt`` when present (not parsed), else None.
    - ``dropped``: TUM: the frames of ``rgb.txt`` left out for want of a pose within
      ``max_time_diff``, in file order (also logged); empty for KITTI.
    """
    name: str
    frames: list[Path]
    poses: np.ndarray
    times: Optional[np.ndarray] = None
    calib: Optional[Path] = None
    dropped: tuple[Path, ...] = ()

    def __post_init__(self):
        n = len(self.frames)
        if self.poses.shape != (n, 4, 4):
            raise ValueError(f"sequence {self.name}: poses {self.poses.shape} for {n} frames")
        if self.times is not None and self.times.shape != (n,):
            raise ValueError(f"sequence {self.name}: times {self.times.shape} for {n} frames")
        self.poses.setflags(write=False)
        if self.times is not None:
            self.times.setflags(write=False)

    def __len__(self) -> int:
        return len(self.frames)


# --------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------

def _lines(path: Path, what: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank, non-comment lines of ``path``."""
    if not path.is_file():
        raise DataError(f"{what} {path} is missing")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {what} {path}: {getattr(e, 'strerror', None) or e}") from None
    out = []
    for k, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s and not s.startswith("#"):
            out.append((k, s))
    return out


def _numbers(path: Path, k: int, fields: list[str], count: int, layout: str) -> np.ndarray:
    if len(fields) != count:
        raise DataError(f"{path} line {k}: expected {count} numbers ({layout}), found {len(fields)}")
    try:
        v = np.array([float(f) for f in fields], np.float64)
    except ValueError:
        bad = next(f for f in fields if not _is_float(f))
        raise DataError(f"{path} line {k}: {bad!r} is not a number") from None
    if not np.all(np.isfinite(v)):
        raise DataError(f"{path} line {k}: a number is not finite ({' '.join(fields)})")
    return v


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _check_rigid(path: Path, k: int, pose: np.ndarray) -> None:
    r = pose[:3, :3]
    err = float(np.max(np.abs(r.T @ r - np.eye(3))))
    if err > RIGID_TOL:
        raise DataError(f"{path} line {k}: not a rigid transform: the rotation part is not "
                        f"orthonormal (max |R^T R - I| = {err:.3g} > {RIGID_TOL:g})")
    det = float(np.linalg.det(r))
    if abs(det - 1.0) > RIGID_TOL:
        raise DataError(f"{path} line {k}: not a rigid transform: det R = {det:.6g}, not +1 "
                        f"(a reflection)")


def _increasing(path: Path, ks: list[int], t: np.ndarray, strict: bool) -> None:
    d = np.diff(t)
    bad = np.flatnonzero(d <= 0 if strict else d < 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise DataError(f"{path} line {ks[i]}: timestamp {t[i]!r} is not after the previous "
                        f"line's {t[i - 1]!r} (line {ks[i - 1]})")


# --------------------------------------------------------------------------
# KITTI odometry
# --------------------------------------------------------------------------

def read_kitti_poses(path: Union[str, Path]) -> tuple[np.ndarray, list[int]]:
    """Poses of a KITTI ``poses/<NN>.txt``: float64 [N, 4, 4] and each pose's line number."""
    path = Path(path)
    rows = _lines(path, "KITTI pose file")
    poses = np.zeros((len(rows), 4, 4))
    for n, (k, s) in enumerate(rows):
        poses[n, :3, :] = _numbers(path, k, s.split(), 12, "a row-major 3x4 matrix").reshape(3, 4)
        poses[n, 3, 3] = 1.0
        _check_rigid(path, k, poses[n])
    return poses, [k for k, _ in rows]


def _kitti_frames(cam_dir: Path) -> list[Path]:
    if not cam_dir.is_dir():
        raise DataError(f"KITTI camera folder {cam_dir} is missing")
    numbered = {}
    for p in cam_dir.iterdir():
        m = _KITTI_FRAME.match(p.name)
        if m and p.is_file():
            numbered[int(m.group(1))] = p
    if not numbered:
        raise DataError(f"KITTI camera folder {cam_dir} has no frames (<6 digits>.png): empty sequence")
    missing = sorted(set(range(max(numbered) + 1)) - set(numbered))
    if missing:
        raise DataError(f"KITTI camera folder {cam_dir}: frame {cam_dir / f'{missing[0]:06d}.png'} is "
                        f"missing (frames numbered 0..{max(numbered)}, {len(missing)} missing)")
    return [numbered[i] for i in range(len(numbered))]


def _sequence_name(s: Union[str, int]) -> str:
    if isinstance(s, (int, np.integer)) or (isinstance(s, str) and s.isdigit()):
        return f"{int(s):02d}"
    raise DataError(f"KITTI sequence {s!r} is not a sequence number (00, 01, ...)")


def read_kitti_odometry(root: Union[str, Path], sequences: Iterable[Union[str, int]],
                        camera: str = "image_2") -> list[Sequence]:
    """The KITTI odometry ``sequences`` (numbers: ``"00"`` or ``0``) under ``root``, in the
    order asked; ``camera``: ``"image_2"`` colour left (the poses' camera), ``"image_0"`` grey
    left (the same poses up to a ~6 cm offset; see the devkit's calib.txt).

    DataError naming the file if: ``root``, ``root/sequences``, a sequence's folder or camera
    folder, or its pose file is missing; a pose line is not 12 numbers or its rotation is not
    orthonormal with det +1 (line named); a frame number is missing (the first named); there
    are no frames; the pose count (or ``times.txt`` count) differs from the frame count.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"KITTI odometry root {root} is not a directory")
    seq_root = root / "sequences"
    if not seq_root.is_dir():
        raise DataError(f"KITTI odometry root {root} has no sequences folder ({seq_root} is missing)")
    names = [_sequence_name(s) for s in sequences]
    if not names:
        raise DataError(f"no KITTI sequence asked for under {root}")
    out = []
    for name in names:
        seq_dir = seq_root / name
        if not seq_dir.is_dir():
            raise DataError(f"KITTI sequence folder {seq_dir} is missing")
        frames = _kitti_frames(seq_dir / camera)
        pose_file = root / "poses" / f"{name}.txt"
        if not pose_file.is_file():
            raise DataError(f"KITTI pose file {pose_file} is missing (sequences 11-21 have no "
                            f"ground-truth poses)")
        poses, _ = read_kitti_poses(pose_file)
        if len(poses) != len(frames):
            raise DataError(f"KITTI pose file {pose_file} has {len(poses)} poses but "
                            f"{seq_dir / camera} has {len(frames)} frames")
        times = None
        times_file = seq_dir / "times.txt"
        if times_file.exists():
            rows = _lines(times_file, "KITTI times file")
            times = np.array([_numbers(times_file, k, s.split(), 1, "seconds")[0] for k, s in rows])
            if len(times) != len(frames):
                raise DataError(f"KITTI times file {times_file} has {len(times)} times but "
                                f"{seq_dir / camera} has {len(frames)} frames")
            _increasing(times_file, [k for k, _ in rows], times, strict=False)
        calib = seq_dir / "calib.txt"
        out.append(Sequence(name, frames, poses, times, calib if calib.is_file() else None))
    return out


# --------------------------------------------------------------------------
# TUM RGB-D
# --------------------------------------------------------------------------

def read_tum_groundtruth(path: Union[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps float64 [M], camera-to-world poses float64 [M, 4, 4]) of a TUM
    ``groundtruth.txt``; the quaternions (qx qy qz qw) through scipy's Rotation."""
    path = Path(path)
    rows = _lines(path, "TUM ground-truth file")
    if not rows:
        raise DataError(f"TUM ground-truth file {path} has no poses")
    t = np.zeros(len(rows))
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    quats = np.zeros((len(rows), 4))
    for n, (k, s) in enumerate(rows):
        v = _numbers(path, k, s.split(), 8, "timestamp tx ty tz qx qy qz qw")
        norm = float(np.linalg.norm(v[4:]))
        if abs(norm - 1.0) > QUATERNION_TOL:
            raise DataError(f"{path} line {k}: not a rigid transform: quaternion norm {norm:.6g}, "
                            f"not 1 (within {QUATERNION_TOL:g})")
        t[n], poses[n, :3, 3], quats[n] = v[0], v[1:4], v[4:]
    poses[:, :3, :3] = Rotation.from_quat(quats).as_matrix()   # scalar last, as TUM; normalised
    _increasing(path, [k for k, _ in rows], t, strict=True)
    return t, poses


def read_tum_rgbd(root: Union[str, Path], max_time_diff: float = MAX_TIME_DIFF,
                  check_images: bool = True) -> Sequence:
    """The TUM RGB-D sequence in folder ``root``: each frame of ``rgb.txt`` with the pose of
    ``groundtruth.txt`` nearest in time; frames with no pose within ``max_time_diff`` seconds
    are dropped: their paths in :attr:`Sequence.dropped`, their count logged.

    ``check_images``: raise DataError naming ``rgb.txt``'s line if a listed frame file does
    not exist (one stat per frame; nothing is read).

    DataError naming the file if: ``root``, ``rgb.txt`` or ``groundtruth.txt`` is missing; a
    line does not parse (line named); timestamps do not increase; a quaternion is not of unit
    norm; no frame is listed, or none has a pose within ``max_time_diff``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"TUM RGB-D folder {root} is not a directory")
    rgb_file, gt_file = root / "rgb.txt", root / "groundtruth.txt"
    rows = _lines(rgb_file, "TUM frame list")
    if not gt_file.is_file():
        raise DataError(f"TUM ground-truth file {gt_file} is missing")
    if not rows:
        raise DataError(f"TUM frame list {rgb_file} lists no frames: empty sequence")
    times, frames = np.zeros(len(rows)), []
    for n, (k, s) in enumerate(rows):
        fields = s.split()
        if len(fields) != 2:
            raise DataError(f"{rgb_file} line {k}: expected 'timestamp filename', found "
                            f"{len(fields)} fields")
        times[n] = _numbers(rgb_file, k, fields[:1], 1, "timestamp")[0]
        frame = root / fields[1]
        if check_images and not frame.is_file():
            raise DataError(f"{rgb_file} line {k}: frame file {frame} is missing")
        frames.append(frame)
    _increasing(rgb_file, [k for k, _ in rows], times, strict=True)
    gt_t, gt_poses = read_tum_groundtruth(gt_file)

    nearest = nearest_index(gt_t, times)
    keep = np.abs(gt_t[nearest] - times) <= max_time_diff
    dropped = tuple(f for f, ok in zip(frames, keep) if not ok)
    if not keep.any():
        raise DataError(f"no frame of {rgb_file} has a pose in {gt_file} within {max_time_diff:g} s "
                        f"(frames {times[0]:.6f}..{times[-1]:.6f}, poses {gt_t[0]:.6f}..{gt_t[-1]:.6f})")
    if dropped:
        log.info("TUM %s: %d of %d frames have no pose within %g s and are left out (first: %s)",
                 root, len(dropped), len(frames), max_time_diff, dropped[0])
    return Sequence(root.name, [f for f, ok in zip(frames, keep) if ok],
                    gt_poses[nearest[keep]], times[keep], None, dropped)


def nearest_index(sorted_times: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index into ``sorted_times`` (increasing) of the time nearest each query (ties: the earlier)."""
    if len(sorted_times) == 1:
        return np.zeros(len(queries), np.int64)
    j = np.clip(np.searchsorted(sorted_times, queries), 1, len(sorted_times) - 1)
    earlier = np.abs(queries - sorted_times[j - 1]) <= np.abs(sorted_times[j] - queries)
    return np.where(earlier, j - 1, j).astype(np.int64)


# --------------------------------------------------------------------------
# From a config: data.dataset "kitti_odometry" / "tum_rgbd"
# --------------------------------------------------------------------------

#: The ``data.dataset`` values that are frame sequences with poses.
SEQUENCE_DATASETS = ("kitti_odometry", "tum_rgbd")


@dataclass(frozen=True)
class SequenceData:
    """Pretraining data that is frame sequences (``data.dataset`` in :data:`SEQUENCE_DATASETS`):
    the sequences, and how their frames are decoded: ``frame_size`` (H, W) every frame is
    resized to before a pretext crops it (None: as stored), ``channels`` 1 or 3. A pretext
    that trains on sequences turns it into its own index (e.g. frame pairs) in
    ``Pretext.prepare``. ``frame_cache_mb``: the memory the pretext's batches may hold its
    decoded frames in (0: decode as drawn; :func:`keras_ssl.data.frames.frame_pair_batches`)."""
    sequences: tuple[Sequence, ...]
    frame_size: Optional[tuple[int, int]] = None
    channels: int = 3
    frame_cache_mb: int = 0

    def __len__(self) -> int:
        return sum(len(s) for s in self.sequences)


def load_sequences(data_cfg, validation: bool = False) -> SequenceData:
    """The sequences a DataConfig names: KITTI ``data.sequences`` (e.g. ``["00", "02"]``) of
    camera ``data.camera`` under ``data.path``; TUM: each of ``data.sequences`` a folder
    under ``data.path`` (none: ``data.path`` itself is the sequence). ``validation``: those
    of ``data.validation_sequences`` instead (read the same way). DataError naming the
    key when one is missing."""
    name = data_cfg.dataset
    if validation:
        import dataclasses

        if not data_cfg.validation_sequences:
            raise DataError("no data.validation_sequences to load")
        data_cfg = dataclasses.replace(data_cfg, sequences=tuple(data_cfg.validation_sequences),
                                       validation_sequences=())
    if not data_cfg.path:
        raise DataError(f"data.dataset {name!r} needs data.path: the dataset's root folder")
    frame_size = tuple(int(v) for v in data_cfg.frame_size) if data_cfg.frame_size else None
    if name == "kitti_odometry":
        if not data_cfg.sequences:
            raise DataError("data.dataset 'kitti_odometry' needs data.sequences: the sequence "
                            "numbers to pretrain on, e.g. [\"00\", \"02\"] (00-10 have poses)")
        seqs = read_kitti_odometry(data_cfg.path, data_cfg.sequences, camera=data_cfg.camera)
    elif name == "tum_rgbd":
        root = Path(data_cfg.path)
        seqs = [read_tum_rgbd(root / s) for s in data_cfg.sequences] or [read_tum_rgbd(root)]
    else:
        raise DataError(f"data.dataset {name!r} is not a sequence dataset ({', '.join(SEQUENCE_DATASETS)})")
    return SequenceData(tuple(seqs), frame_size, int(data_cfg.channels), int(data_cfg.frame_cache_mb))
