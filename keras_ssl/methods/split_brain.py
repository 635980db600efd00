"""Split-brain autoencoder (Zhang, Isola, Efros 2017, "Split-Brain Autoencoders:
Unsupervised Learning by Cross-Channel Prediction"): two disjoint sub-networks, one
predicting the ab channels from L, the other L from ab; the representation is the
concatenation of the two halves' features.

- Input: pretext ``split_brain``'s one view ``lab`` (L / 100, a / 110, b / 110); encoder
  ``channel_split`` with groups [1, 2] named ``L`` and ``ab`` (the builder refuses any
  other), so half ``L`` sees only channel 0 and half ``ab`` only channels 1-2. The
  evaluated and exported encoder takes RGB, converts to Lab inside and returns both
  halves' features side by side (``features``), as the paper's representation.
- Both predictions are classifications, the paper's best variant (its Table 2:
  cross-entropy beats L2 regression): ``ab_logits`` [B, H/s, W/s, Q] from half L's
  features over the in-gamut ab bins of side ``ab_grid``, soft-encoded targets as in
  colorization (:mod:`keras_ssl.methods.colorization`; no class rebalancing here);
  ``L_logits`` [B, H/s, W/s, l_bins] from half ab's features, the target the bin of
  the cell's mean L among ``l_bins`` equal bins of [0, 100] (a hard label).
- Each half has its own decoder (:func:`keras_ssl.methods.autoencoder.conv_decoder`,
  layers ``ab_dec_*`` and ``L_dec_*``), reading its half's flattened features.
- Loss: the two cross-entropies summed per example
  (:func:`keras_ssl.losses.colour.soft_bin_cross_entropy`). Metrics: each one and each
  bin accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from keras_ssl.colour import bins as colour_bins
from keras_ssl.config import num
from keras_ssl.encoders.layers import ChannelSlice
from keras_ssl.losses.colour import soft_bin_cross_entropy
from keras_ssl.methods.autoencoder import conv_decoder
from keras_ssl.methods.base import NO_FACTS, DatasetFacts, Method, view_inputs
from keras_ssl.methods.colorization import AbBinsParams, check_lab_pretext, check_target_grid, target_ab
from keras_ssl.registry import register

#: The halves of the channel_split encoder (group name, channels), in the view's channel order.
HALVES = (("L", 1), ("ab", 2))


@dataclass(frozen=True)
class SplitBrainParams(AbBinsParams):
    """:class:`~keras_ssl.methods.colorization.AbBinsParams` (the ab bins, their soft
    targets, the target grid, the decoders) plus ``l_bins``: the number of equal bins of
    L's range [0, 100] that half ab classifies into (our choice: 50, bins of 2 L units)."""
    l_bins: int = num(50, 2, 1000)


def half_sizes(encoder: keras.Model) -> tuple[int, int]:
    """The feature widths of halves L and ab of a ``channel_split`` encoder, whose
    ``features`` are the two side by side (L first); ValueError naming what is missing
    otherwise."""
    names = {l.name: l for l in encoder.layers}
    need = [f"{g}_features" for g, _ in HALVES] + [f"{g}_input" for g, _ in HALVES]
    missing = [n for n in need if n not in names]
    if missing:
        raise ValueError(f"method 'split_brain' needs encoder 'channel_split' with groups [1, 2] named "
                         f"['L', 'ab'] (its layers {missing} are missing from encoder {encoder.name!r})")
    start = 0
    for g, c in HALVES:
        layer = names[f"{g}_input"]
        if (layer.start, layer.stop) != (start, start + c):
            raise ValueError(f"method 'split_brain': encoder group {g!r} reads channels "
                             f"{layer.start}..{layer.stop - 1}; encoder.groups must be [1, 2] (L, then ab)")
        start += c
    return tuple(int(names[f"{g}_features"].output.shape[-1]) for g, _ in HALVES)


class SplitBrain(Method):
    def __init__(self, encoder, network, params: SplitBrainParams, centres, **kwargs):
        super().__init__(encoder, network, **kwargs)
        self.params, self.centres = params, centres

    def l_target(self, l):
        """int32 [B, h, w, 1]: the L bin of each target cell's mean L (L in [0, 100])."""
        p = self.params
        mean = target_ab(l, p.target_stride)
        return tf.clip_by_value(tf.cast(tf.floor(mean * (p.l_bins / 100.0)), tf.int32), 0, p.l_bins - 1)

    def per_example(self, outputs, labels):
        p = self.params
        for key in ("L", "ab"):
            if key not in labels:
                raise ValueError(f"method 'split_brain' needs labels 'L' and 'ab' (pretext 'split_brain'), "
                                 f"got labels {sorted(labels)}")
        ab_bins, ab_w = colour_bins.soft_encode(target_ab(labels["ab"], p.target_stride), self.centres,
                                                p.soft_neighbours, p.soft_sigma)
        l_bin = self.l_target(labels["L"])
        ab_loss = soft_bin_cross_entropy(outputs["ab_logits"], ab_bins, ab_w)
        l_loss = soft_bin_cross_entropy(outputs["L_logits"], l_bin, tf.ones_like(l_bin, tf.float32))

        def acc(logits, target):
            hit = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), target)
            return tf.reduce_mean(tf.cast(hit, tf.float32), [1, 2])
        return ab_loss + l_loss, {"ab_cross_entropy": ab_loss, "L_cross_entropy": l_loss,
                                  "ab_bin_accuracy": acc(outputs["ab_logits"], ab_bins[..., 0]),
                                  "L_bin_accuracy": acc(outputs["L_logits"], l_bin[..., 0])}


@register("method", "split_brain", SplitBrainParams)
def build_split_brain(p: SplitBrainParams, encoder: keras.Model, pretext, *,
                      facts: DatasetFacts = NO_FACTS) -> SplitBrain:
    check_lab_pretext("split_brain", pretext, "Lab", "split_brain")
    th, tw = check_target_grid("split_brain", pretext.view_shape, p.target_stride)
    centres = colour_bins.gamut_bins(p.ab_grid)
    inputs = view_inputs(pretext)
    d_l, d_ab = half_sizes(encoder)
    features = encoder(inputs[0])                      # [B, d_l + d_ab]: half L's, then half ab's
    f_l = ChannelSlice(0, d_l, name="L_half")(features)
    f_ab = ChannelSlice(d_l, d_l + d_ab, name="ab_half")(features)
    ab_logits = conv_decoder(f_l, (th, tw, len(centres)), p.hidden, p.channels, prefix="ab_dec")
    l_logits = conv_decoder(f_ab, (th, tw, p.l_bins), p.hidden, p.channels, prefix="L_dec")
    network = keras.Model(inputs, {"ab_logits": ab_logits, "L_logits": l_logits}, name="split_brain")
    return SplitBrain(encoder, network, p, centres, name="split_brain")
