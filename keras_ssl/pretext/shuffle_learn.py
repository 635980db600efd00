"""Shuffle & Learn (Misra, Zitnick, Hebert, ECCV 2016): is a triplet of frames in order?

From a window of five frames a < b < c < d < e of one sequence (here equally spaced,
``spacing`` frames apart), the positive triplet is (b, c, d), in temporal order, and the
negatives put the middle frame out of order: (b, a, d) or (b, e, d), one of the two per
window (seeded by ``seed``), so half the triplets are positive. The three frames go
through the one encoder (three towers of shared weights), their features are concatenated
and a binary head says whether the order is right: the ``classify`` method on target
``in_order``.

The paper keeps windows with enough motion (optical flow) so that order is visible; frame
sequences with poses give the camera's motion directly, so a window is kept when the camera
moved at least ``min_motion`` (in the poses' unit, metres for KITTI) between b and d. The
paper samples windows from frames of high motion and uses spacings of several frames;
``spacing`` is a list, each window taking one (seeded).

Labels: ``in_order`` (1: (b, c, d); 0: middle out of order), ``spacing`` (frames), ``pair``
(the triplet's id). Views ``first``, ``middle``, ``last``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_ssl.config import num
from keras_ssl.data.frames import FramePairs, frame_tuples
from keras_ssl.data.sequences import SequenceData
from keras_ssl.pretext.sequence_base import SequencePretext
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class ShuffleLearnParams(Params):
    """``spacing``: frames between consecutive frames of a window (each window draws one of
    these); ``min_motion``: the camera translation between b and d a window needs (poses'
    unit; 0: every window); ``seed``: which negative (a or e) and which spacing each window
    takes."""
    spacing: tuple[int, ...] = (2, 3, 4)
    min_motion: float = num(0.0, 0.0)
    seed: int = num(0, 0)

    def validate(self):
        if not self.spacing or min(self.spacing) < 1:
            raise ValueError(f"spacing must list frame spacings >= 1, got {list(self.spacing)}")


def triplets(poses: np.ndarray, spacing, min_motion: float, rng: np.random.Generator):
    """(tuples int64 [P, 3], in_order int64 [P], spacing int64 [P]) of one sequence: one
    triplet per window start b whose window fits and whose camera moved enough."""
    n = len(poses)
    rows, order, gaps = [], [], []
    for b in range(n):
        g = int(rng.choice(spacing))
        a, c, d, e = b - g, b + g, b + 2 * g, b + 3 * g
        if a < 0 or e >= n:
            continue
        if np.linalg.norm(poses[d][:3, 3] - poses[b][:3, 3]) < min_motion:
            continue
        positive = rng.random() < 0.5
        out = a if rng.random() < 0.5 else e
        rows.append((b, c, d) if positive else (b, out, d))
        order.append(int(positive))
        gaps.append(g)
    return (np.asarray(rows, np.int64).reshape(-1, 3), np.asarray(order, np.int64),
            np.asarray(gaps, np.int64))


class ShuffleLearnPretext(SequencePretext):
    name = "shuffle_learn"
    record_file = "shuffle_learn.json"

    def __init__(self, params: ShuffleLearnParams, image_shape):
        super().__init__(params, image_shape, targets={"in_order": 2}, views=("first", "middle", "last"))

    def pairs_of(self, data: SequenceData) -> FramePairs:
        p = self.params
        tuples, labels = [], []
        for k, s in enumerate(data.sequences):
            t, order, gaps = triplets(s.poses, p.spacing, p.min_motion, np.random.default_rng([p.seed, k]))
            tuples.append(t)
            labels.append({"in_order": order, "spacing": gaps})
        if not sum(len(t) for t in tuples):
            raise ValueError(f"no window of five frames {list(p.spacing)} apart with the camera moving "
                             f">= {p.min_motion} (pretext.spacing, pretext.min_motion)")
        return frame_tuples(data.sequences, tuples, labels, frame_size=data.frame_size,
                            channels=data.channels)

    def facts(self, fp: FramePairs) -> dict:
        order = fp.labels["in_order"]
        return {"triplets": len(order), "in_order": int(order.sum()), "out_of_order": int(len(order) - order.sum()),
                "spacing": list(self.params.spacing), "min_motion": self.params.min_motion}

    def describe(self, labels, i):
        kind = "in order" if int(labels["in_order"][i]) else "middle out of order"
        return f"{kind}, spacing {int(labels['spacing'][i])} (triplet {int(labels['pair'][i])})"


@register("pretext", "shuffle_learn", ShuffleLearnParams)
def build_shuffle_learn(params: ShuffleLearnParams, image_shape) -> ShuffleLearnPretext:
    return ShuffleLearnPretext(params, image_shape)
