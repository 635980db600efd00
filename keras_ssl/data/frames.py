"""Frame pairs of pose-annotated sequences, decoded in tf.data.

The step between the sequence readers (:mod:`.sequences`: an index of paths and poses,
nothing decoded) and a pretext on real frames (egomotion from odometry, SFA from time):

- :func:`frame_pairs` turns sequences into a :class:`FramePairs` index: every frame's path
  (sequences concatenated), the pairs (global frame ids, never across sequences, at most
  ``max_gap`` apart: :func:`.motion.sample_pairs`), the relative camera motion of each pair
  (:func:`.motion.pair_motion`) and its class per axis under bin edges fitted on these
  sequences (training) or given (validation: the training run's edges, so both share
  classes).
- :func:`frame_pair_batches` is the tf.data pipeline: a pure function of (seed, step), as
  :func:`.pipeline.pretext_batches` is for in-memory images. Step ``s`` draws ``batch_size``
  pair ids with stateless ops seeded by ``(seed, s)``; each example's two PNG/JPEG files are
  read and decoded inside tf.data (no frame is held in memory beyond the batches in
  flight: KITTI's 22 sequences are ~22 GB), optionally resized, and cropped at **one**
  random offset shared by both frames (Agrawal et al.'s protocol: the same crop of both
  images, so the crop adds no motion of its own), drawn from the example's own stateless
  seed. Examples decode in parallel (``threads``) and the batch keeps their order, so the
  batches are the same whatever the thread count, and a resumed run sees the batches the
  uninterrupted run would have seen. With ``cache_mb`` > 0 every frame of the index is
  decoded once first (:func:`decode_frames`, the same decoding) and the examples are
  cropped from memory: the same batches, without decoding on every step.

Element of the dataset: ``({"first": float32 [B, h, w, C], "second": ...},
{axis: int32 [B] for axis in tx, tz, yaw; "pair": int64 [B]})``, pixels in [0, 1].

A frame that cannot be read or decoded, a pair whose frames differ in size, or a frame
smaller than the crop stops the pipeline with TensorFlow's error carrying the message of
:data:`CROP_ERROR` / :data:`SIZE_ERROR` and the file paths.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence as Seq

import numpy as np
import tensorflow as tf

from keras_ssl.data.motion import AXES, Motion, concat_motion, fit_motion_bins, motion_labels, \
    pair_motion, sample_pairs
from keras_ssl.data.pipeline import batch_seed, to_float
from keras_ssl.data.sequences import Sequence

SIZE_ERROR = "the two frames of a pair differ in size"
CROP_ERROR = "a frame is smaller than the crop; frames"


@dataclass(frozen=True)
class FramePairs:
    """Frame pairs over several sequences.

    ``paths``: every frame's path, sequences concatenated in order; ``offsets[k]``: the
    global id of sequence k's first frame; ``names``: the sequences' names.
    ``pairs``: int64 [P, 2], global frame ids (i, j) (or [P, K], tuples of K frames:
    :func:`frame_tuples`); ``sequence``: int64 [P], the sequence of each pair.
    ``motion``: the relative motion i -> j of each pair (tx, tz in the poses' unit, yaw in
    radians, :mod:`.motion`'s conventions; None for tuples); ``labels``: axis -> int64
    [P], its class under ``edges`` (axis -> bin edges, JSON-ready).
    ``frame_size``: (H, W) every frame is resized to when decoded (None: as stored);
    ``channels``: 1 or 3, as decoded. ``weights``: float64 [P], the probability of each
    pair per draw (None: uniform), e.g. to balance close and far pairs (:func:`with_weights`).
    ``labels`` may hold more than the motion classes (``close`` for SFA): every entry goes
    into the batches.
    """
    paths: tuple[str, ...]
    offsets: tuple[int, ...]
    names: tuple[str, ...]
    pairs: np.ndarray
    sequence: np.ndarray
    motion: Motion
    labels: dict
    edges: dict
    frame_size: Optional[tuple[int, int]] = None
    channels: int = 3
    weights: Optional[np.ndarray] = None

    @property
    def gaps(self) -> np.ndarray:
        """int64 [P]: j - i of each pair (frames apart, signed)."""
        return self.pairs[:, 1] - self.pairs[:, 0]

    def __len__(self) -> int:
        return int(self.pairs.shape[0])


def frame_pairs(sequences: Seq[Sequence], max_gap: int, *, min_gap: int = 1,
                pairs_per_sequence: Optional[int] = None,
                seed: int = 0, bins: int = 20, edges: Optional[dict] = None,
                frame_size: Optional[tuple[int, int]] = None, channels: int = 3,
                binning: str = "quantile", bin_size: float = 1.0) -> FramePairs:
    """The pairs of ``sequences`` ``min_gap`` to ``max_gap`` frames apart (both directions):
    all of them, or ``pairs_per_sequence`` drawn per sequence (seeded by ``seed`` and the
    sequence's position); their classes under ``edges``, or under bins per axis fitted on
    these pairs when ``edges`` is None (:func:`.motion.fit_motion_bins`: ``bins`` balanced
    quantile bins, or ``binning="zscore"``, the authors' uniform bins); ``frame_size``,
    ``channels``: how the pipeline decodes the frames."""
    if not sequences:
        raise ValueError("no sequences")
    paths, offsets, names, pairs, seq_of, motions = [], [], [], [], [], []
    for k, s in enumerate(sequences):
        p = sample_pairs(len(s.frames), max_gap, None, seed=0)
        p = p[np.abs(p[:, 1] - p[:, 0]) >= min_gap]
        if len(p) == 0:
            raise ValueError(f"sequence {s.name!r} has {len(s.frames)} frame(s): no pair {min_gap} to "
                             f"{max_gap} apart")
        if pairs_per_sequence is not None:
            if pairs_per_sequence > len(p):
                raise ValueError(f"sequence {s.name!r}: asked for {pairs_per_sequence} pairs, it has "
                                 f"{len(p)} {min_gap} to {max_gap} frames apart")
            p = p[np.random.default_rng(seed * 1000 + k).choice(len(p), pairs_per_sequence, replace=False)]
        motions.append(pair_motion(s.poses, p))
        offsets.append(len(paths))
        pairs.append(p + offsets[-1])
        seq_of.append(np.full(len(p), k, np.int64))
        paths.extend(str(f) for f in s.frames)
        names.append(s.name)
    motion = concat_motion(motions)
    edges = (fit_motion_bins(motion, bins, binning, bin_size) if edges is None
             else {a: list(edges[a]) for a in AXES})
    return FramePairs(paths=tuple(paths), offsets=tuple(offsets), names=tuple(names),
                      pairs=np.concatenate(pairs), sequence=np.concatenate(seq_of), motion=motion,
                      labels=motion_labels(motion, edges), edges=edges,
                      frame_size=None if frame_size is None else tuple(int(v) for v in frame_size),
                      channels=int(channels))


def frame_tuples(sequences: Seq[Sequence], tuples: Seq[np.ndarray], labels: Seq[dict], *,
                 frame_size: Optional[tuple[int, int]] = None, channels: int = 3) -> FramePairs:
    """An index of frame tuples given per sequence: ``tuples[k]`` int [P_k, K] frame ids of
    sequence k (local), ``labels[k]`` name -> int [P_k]; no motion classes (``motion`` None,
    ``edges`` empty). For pretexts that choose their own frames (Shuffle & Learn's triplets)."""
    paths, offsets, names, rows, seq_of = [], [], [], [], []
    for k, (s, t) in enumerate(zip(sequences, tuples)):
        t = np.asarray(t, np.int64)
        if t.size and (t.min() < 0 or t.max() >= len(s.frames)):
            raise ValueError(f"sequence {s.name!r}: frame ids outside 0..{len(s.frames) - 1}")
        offsets.append(len(paths))
        rows.append(t + offsets[-1])
        seq_of.append(np.full(len(t), k, np.int64))
        paths.extend(str(f) for f in s.frames)
        names.append(s.name)
    pairs = np.concatenate(rows)
    if len(pairs) == 0:
        raise ValueError("no frame tuples")
    keys = set(labels[0]) if labels else set()
    joined = {key: np.concatenate([np.asarray(l[key], np.int64) for l in labels]) for key in keys}
    return FramePairs(paths=tuple(paths), offsets=tuple(offsets), names=tuple(names), pairs=pairs,
                      sequence=np.concatenate(seq_of), motion=None, labels=joined, edges={},
                      frame_size=None if frame_size is None else tuple(int(v) for v in frame_size),
                      channels=int(channels))


def with_weights(pairs: FramePairs, weights, **labels) -> FramePairs:
    """``pairs`` drawn with probability proportional to ``weights`` (float [P], >= 0, not all
    0), with extra ``labels`` (name -> int [P]) added to what the batches carry."""
    w = np.asarray(weights, np.float64)
    if w.shape != (len(pairs),) or not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError(f"weights must be {len(pairs)} finite values >= 0, not all 0")
    extra = {k: np.asarray(v, np.int64) for k, v in labels.items()}
    for k, v in extra.items():
        if v.shape != (len(pairs),):
            raise ValueError(f"label {k!r} has shape {v.shape}, want ({len(pairs)},)")
    return dataclasses.replace(pairs, weights=w / w.sum(), labels={**pairs.labels, **extra})


def _decode(path, channels: int, resize):
    img = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    img = to_float(img)
    if resize is not None:
        img = tf.image.resize(img, resize, method="area")
    return img


#: The frames :func:`decode_frames` decoded last, by (paths, frame_size, channels): a run's
#: training index and its held-out index, decoded once however often batches are made.
_DECODED: dict = {}


def decode_frames(pairs: FramePairs, cache_mb: int, threads: int = 0, progress: bool = True) -> np.ndarray:
    """float32 [N, H, W, C]: every frame of ``pairs.paths`` decoded as the pipeline decodes
    it (``pairs.channels``, resized to ``pairs.frame_size``), if they fit in ``cache_mb``
    MB; ValueError naming ``data.frame_cache_mb`` and the size needed if not, and naming
    the first frame whose size differs from the first one's (frames as stored)."""
    key = (pairs.paths, pairs.frame_size, pairs.channels)
    if key in _DECODED:
        return _DECODED[key]
    n = len(pairs.paths)
    if pairs.frame_size is not None:
        h, w = pairs.frame_size
    else:
        h, w = (int(v) for v in _decode(pairs.paths[0], pairs.channels, None).shape[:2])
    need = n * h * w * pairs.channels * 4
    if need > cache_mb * 2 ** 20:
        raise ValueError(f"data.frame_cache_mb is {cache_mb}: the {n} frames of {h}x{w}x{pairs.channels} "
                         f"need {need / 2 ** 20:.0f} MB in memory; raise it, set a smaller data.frame_size, "
                         f"or set it to 0 to decode frames as they are drawn")
    out = np.empty((n, h, w, pairs.channels), np.float32)
    ds = tf.data.Dataset.from_tensor_slices(list(pairs.paths)).map(
        lambda f: _decode(f, pairs.channels, pairs.frame_size),
        num_parallel_calls=threads or tf.data.AUTOTUNE, deterministic=True)
    from tqdm import tqdm
    bar = tqdm(total=n, desc="decoding frames", unit="frame", disable=None if progress else True, mininterval=2, leave=False)
    for i, frame in enumerate(ds):
        if tuple(frame.shape[:2]) != (h, w):
            raise ValueError(f"{SIZE_ERROR}: {pairs.paths[0]} is {h}x{w}, {pairs.paths[i]} is "
                             f"{frame.shape[0]}x{frame.shape[1]} (data.frame_size resizes them all)")
        out[i] = frame.numpy()
        bar.update()
    bar.close()
    if len(_DECODED) >= 2:
        _DECODED.pop(next(iter(_DECODED)))
    _DECODED[key] = out
    return out


def frame_pair_batches(pairs: FramePairs, batch_size: int, seed: int, start_step: int,
                       end_step: int, *, crop: tuple[int, int], threads: int = 2,
                       views: tuple[str, ...] = ("first", "second"), cache_mb: int = 0) -> tf.data.Dataset:
    """Dataset of global batches for steps [start_step, end_step) (see the module
    docstring). ``crop``: (h, w) of the crop taken at one offset from every frame of an
    example, after each frame is decoded with ``pairs.channels`` channels and resized to
    ``pairs.frame_size`` (area averaging; None: as stored); ``threads``: examples decoded
    at once (0: autotuned), which does not change the batches. ``views``: the view names,
    one per column of ``pairs.pairs`` (an index of triplets has three). ``cache_mb`` > 0:
    the frames decoded once and held in memory (:func:`decode_frames`), the same batches."""
    n = len(pairs)
    if n == 0:
        raise ValueError("no frame pairs")
    if len(views) != pairs.pairs.shape[1]:
        raise ValueError(f"{len(views)} view names for tuples of {pairs.pairs.shape[1]} frames")
    ch, cw = (int(c) for c in crop)
    paths = tf.constant(pairs.paths)
    columns = [tf.constant(pairs.pairs[:, k]) for k in range(len(views))]
    labels = {a: tf.constant(np.asarray(v).astype(np.int32)) for a, v in pairs.labels.items()}
    logits = None if pairs.weights is None else tf.constant(
        np.log(np.maximum(pairs.weights, 1e-300))[None, :], tf.float32)
    resize, channels = pairs.frame_size, pairs.channels
    decoded = tf.constant(decode_frames(pairs, cache_mb, threads)) if cache_mb else None

    def draw(step):
        s_idx, s_crop = tf.unstack(tf.random.experimental.stateless_split(batch_seed(seed, step), 2))
        if logits is None:
            idx = tf.random.stateless_uniform([batch_size], s_idx, 0, n, dtype=tf.int64)
        else:
            idx = tf.random.stateless_categorical(logits, batch_size, s_idx, dtype=tf.int64)[0]
        crop_seeds = tf.random.experimental.stateless_split(s_crop, batch_size)
        return tf.data.Dataset.from_tensor_slices((idx, crop_seeds))

    def example(idx, crop_seed):
        ids = [tf.gather(c, idx) for c in columns]
        files = [tf.gather(paths, i) for i in ids]
        frames = ([_decode(f, channels, resize) for f in files] if decoded is None
                  else [decoded[i] for i in ids])
        shape = tf.shape(frames[0])
        checks = [tf.debugging.Assert(tf.reduce_all(tf.equal(shape, tf.shape(b))),
                                      [SIZE_ERROR, files[0], shape, f, tf.shape(b)], summarize=4)
                  for f, b in zip(files[1:], frames[1:])]
        checks.append(tf.debugging.Assert(tf.reduce_all(shape[:2] >= tf.constant([ch, cw])),
                                          [CROP_ERROR, *files, shape, "crop", tf.constant([ch, cw])],
                                          summarize=4))
        with tf.control_dependencies(checks):
            s_y, s_x = tf.unstack(tf.random.experimental.stateless_split(crop_seed, 2))
            y = tf.random.stateless_uniform([], s_y, 0, shape[0] - ch + 1, dtype=tf.int32)
            x = tf.random.stateless_uniform([], s_x, 0, shape[1] - cw + 1, dtype=tf.int32)
        out = {v: tf.ensure_shape(f[y:y + ch, x:x + cw], [ch, cw, channels]) for v, f in zip(views, frames)}
        return out, {**{k: tf.gather(v, idx) for k, v in labels.items()}, "pair": idx}

    ds = tf.data.Dataset.range(start_step, end_step).flat_map(draw)
    ds = ds.map(example, num_parallel_calls=threads or tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(2)
