"""Egomotion from odometry: the camera motion between two frames of a real sequence.

The thesis's main experiment (Agrawal, Carreira, Malik 2015, "Learning to See by Moving",
on KITTI odometry; ../docs/sequences.md): two frames at most ``max_frame_gap`` apart, the
relative camera motion inv(T_i) T_j from the poses, classified along x and z translation
and rotation about the camera's y axis (yaw), each axis in ``bins`` classes. The same
random crop (``data.image_size`` square, the encoder's input) is taken from both frames.

Data: ``data.dataset`` ``"kitti_odometry"`` or ``"tum_rgbd"`` (:mod:`keras_ssl.data.sequences`);
:meth:`prepare` samples the pairs and fits the bins on the pretraining sequences
(:mod:`keras_ssl.data.frames`); the frames are decoded in tf.data.

Bins: balanced quantile bins fitted on the pretraining pairs (``docs/sequences.md``: a
decision; values beyond the outer edges are clipped into the first or last class), or
(``binning: "zscore"``) the authors' code's: each axis z-scored, uniform bins and two
overflow classes. :meth:`save` writes the
edges and the class counts to ``motion_bins.json`` in the run directory, so validation or
transfer code can label other sequences with the same classes.

Views ``first``, ``second`` (the pair, frame i then j); targets ``tx``, ``tz``, ``yaw``;
labels also carry ``pair`` (the pair's id in the index). The ``classify`` method trains on
it as on the MNIST egomotion pretext.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from keras_ssl.config import num
from keras_ssl.data.frames import FramePairs, frame_pairs
from keras_ssl.data.motion import AXES, bin_count
from keras_ssl.data.sequences import SequenceData
from keras_ssl.pretext.sequence_base import SequencePretext
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class OdometryParams(Params):
    """``max_frame_gap``: the frames of a pair are 1..this many frames apart (the thesis: 7),
    in either order. ``bins``: classes per motion axis (the thesis: 20). ``pairs_per_sequence``:
    pairs drawn per sequence (seeded by ``seed``), null: every pair within the gap.
    ``seed``: the pair sampling's seed. ``binning``: ``"quantile"`` (balanced classes, the
    default: a decision, docs/sequences.md) or ``"zscore"``, the authors' code: each axis
    z-scored on the training pairs, ``bins`` classes of max_frame_gap / 7 standard deviations
    and an overflow class each side (``bins + 2`` classes; the thesis counts 20)."""
    max_frame_gap: int = num(7, 1)
    bins: int = num(20, 2)
    binning: Literal["quantile", "zscore"] = "quantile"
    pairs_per_sequence: Optional[int] = num(None, 1)
    seed: int = num(0, 0)


class OdometryPretext(SequencePretext):
    name = "odometry"
    record_file = "motion_bins.json"

    def __init__(self, params: OdometryParams, image_shape):
        classes = bin_count(params.bins, params.binning)
        super().__init__(params, image_shape, targets={a: classes for a in AXES})

    def pairs_of(self, data: SequenceData, edges: Optional[dict] = None) -> FramePairs:
        p = self.params
        return frame_pairs(data.sequences, p.max_frame_gap, pairs_per_sequence=p.pairs_per_sequence,
                           seed=p.seed, bins=p.bins, edges=edges, frame_size=data.frame_size,
                           channels=data.channels, binning=p.binning, bin_size=p.max_frame_gap / 7.0)

    def validation_index(self, data: SequenceData) -> FramePairs:
        """Held-out pairs in the training classes: the bin edges fitted in :meth:`prepare`
        (a motion beyond the training range falls in the first or last class)."""
        if self.pairs is None:
            raise RuntimeError("OdometryPretext.validation_index before prepare")
        return self.pairs_of(data, edges=self.pairs.edges)

    def facts(self, fp: FramePairs) -> dict:
        classes = bin_count(self.params.bins, self.params.binning)
        return {"pairs": len(fp), "max_frame_gap": self.params.max_frame_gap, "edges": fp.edges,
                "binning": self.params.binning, "classes": classes,
                "class_counts": {a: np.bincount(fp.labels[a], minlength=classes).tolist()
                                 for a in AXES},
                "conventions": "relative motion inv(T_i) T_j of camera-to-world poses; tx > 0 moved "
                               "right, tz > 0 moved forward, yaw > 0 turned right (docs/sequences.md)"}

    def describe(self, labels, i):
        return ", ".join(f"{a}={int(labels[a][i])}" for a in AXES) + f" (pair {int(labels['pair'][i])})"


@register("pretext", "odometry", OdometryParams)
def build_odometry(params: OdometryParams, image_shape) -> OdometryPretext:
    return OdometryPretext(params, image_shape)
