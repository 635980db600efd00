"""SFA from time: pairs of frames of a real sequence, close when near in time.

The slow-feature-analysis baseline of Agrawal, Carreira, Malik 2015 on KITTI (the thesis's
"KITTI-SFA" rows): frames at most ``close_frames`` (7) apart are close, frames
``close_frames + 1`` to ``far_frames`` (30) apart are far; the ``contrastive`` method pulls
close pairs' features together and pushes far ones beyond its margin, as the MNIST SFA
configs do with synthetic moves (:mod:`keras_ssl.pretext.sfa`).

Data: ``data.dataset`` ``"kitti_odometry"`` or ``"tum_rgbd"``; the frame pairs and their
pipeline are those of pretext ``odometry`` (:mod:`keras_ssl.data.frames`: the same random
crop from both frames, frames decoded in tf.data, a pure function of (seed, step)).

``close_ratio``: the probability that a drawn pair is close. Uniform over all pairs up to
30 frames apart, about 7 in 30 would be close; with a number, each pair is drawn with
probability ``close_ratio / #close`` or ``(1 - close_ratio) / #far`` (the MNIST configs'
0.5: balanced). Labels: ``close`` (1 close, 0 far), ``gap`` (j - i, frames), ``pair``, and
the pairs' motion classes (``tx``, ``tz``, ``yaw`` under bins fitted on them; unused by the
contrastive loss, kept so a run can report them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from keras_ssl.config import num
from keras_ssl.data.frames import FramePairs, frame_pairs, with_weights
from keras_ssl.data.sequences import SequenceData
from keras_ssl.pretext.sequence_base import SequencePretext
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class SFATimeParams(Params):
    """``close_frames``: pairs at most this many frames apart are close (the thesis: 7);
    ``far_frames``: pairs ``close_frames + 1`` to this many apart are far (the thesis: 30).
    ``close_ratio``: the probability that a drawn pair is close (None: every pair equally
    likely). ``pairs_per_sequence``: pairs drawn per sequence among all within
    ``far_frames`` (None: all), seeded by ``seed``."""
    close_frames: int = num(7, 1)
    far_frames: int = num(30, 2)
    close_ratio: Optional[float] = num(0.5, 0.0, 1.0)
    pairs_per_sequence: Optional[int] = num(None, 1)
    seed: int = num(0, 0)

    def validate(self):
        if self.far_frames <= self.close_frames:
            raise ValueError(f"far_frames ({self.far_frames}) must exceed close_frames "
                             f"({self.close_frames}): no far pair otherwise")


def close_weights(gaps: np.ndarray, close_frames: int, close_ratio: Optional[float]) -> tuple:
    """(close int64 [P], draw weights float64 [P]) of pairs ``gaps`` frames apart."""
    close = (np.abs(gaps) <= close_frames).astype(np.int64)
    if close_ratio is None:
        return close, np.ones(len(gaps))
    n_close, n_far = int(close.sum()), int(len(close) - close.sum())
    if (close_ratio > 0 and not n_close) or (close_ratio < 1 and not n_far):
        raise ValueError(f"close_ratio {close_ratio} needs close and far pairs; the sequences give "
                         f"{n_close} close and {n_far} far")
    w = np.where(close == 1, close_ratio / max(n_close, 1), (1 - close_ratio) / max(n_far, 1))
    return close, w


class SFATimePretext(SequencePretext):
    name = "sfa_time"
    record_file = "sfa_pairs.json"

    def __init__(self, params: SFATimeParams, image_shape):
        super().__init__(params, image_shape, targets={})

    def pairs_of(self, data: SequenceData) -> FramePairs:
        p = self.params
        pairs = frame_pairs(data.sequences, p.far_frames, pairs_per_sequence=p.pairs_per_sequence,
                            seed=p.seed, frame_size=data.frame_size, channels=data.channels)
        close, w = close_weights(pairs.gaps, p.close_frames, p.close_ratio)
        return with_weights(pairs, w, close=close, gap=pairs.gaps)

    def facts(self, fp: FramePairs) -> dict:
        close = fp.labels["close"]
        return {"pairs": len(fp), "close_pairs": int(close.sum()), "far_pairs": int(len(close) - close.sum()),
                "close_probability": float(fp.weights[close == 1].sum()),
                "close_frames": self.params.close_frames, "far_frames": self.params.far_frames}

    def describe(self, labels, i):
        kind = "close" if int(labels["close"][i]) else "far"
        return f"{kind}: {int(labels['gap'][i])} frames apart (pair {int(labels['pair'][i])})"


@register("pretext", "sfa_time", SFATimeParams)
def build_sfa_time(params: SFATimeParams, image_shape) -> SFATimePretext:
    return SFATimePretext(params, image_shape)
