"""Colorization (Zhang, Isola, Efros 2016, "Colorful Image Colorization"): from the L
channel alone, predict the ab channels as a distribution over quantised ab bins, with
class rebalancing towards rare (saturated) colours.

- Input: pretext ``colorization``'s one view ``L`` (the encoder sees L / 100 only; the
  evaluated encoder takes RGB and converts: :mod:`keras_ssl.pretext.colour`).
- Bins: the Q in-gamut bins of side ``ab_grid`` (:func:`keras_ssl.colour.bins.gamut_bins`,
  computed from the sRGB cube: 262 at the paper's grid 10, where the paper keeps 313).
- Target grid: the ab label averaged over ``target_stride`` x ``target_stride`` cells
  (the paper predicts at a quarter of the input's resolution: stride 4); each cell's
  target is soft-encoded over its ``soft_neighbours`` nearest bins with a Gaussian of
  deviation ``soft_sigma`` (the paper: 5 and 5).
- Rebalancing: each target pixel's loss is weighted by ``w[q*]``, q* its nearest bin,
  ``w`` from the empirical distribution of nearest bins on the pretraining images (at
  the target grid), smoothed (``prior_sigma``) and mixed with the uniform distribution
  (``rebalance_lambda``), averaging to 1 under the smoothed distribution
  (:mod:`keras_ssl.colour.bins`; the paper: lambda 0.5, sigma 5). Estimated once, before
  the first step (:meth:`Colorization.prepare`), kept in a non-trainable variable that
  checkpoints carry, and written with the bins to ``RUN/colour_bins.json``.
- Decoder: the convolutional decoder of :func:`keras_ssl.methods.autoencoder.conv_decoder`
  from the encoder's features to logits [B, H / stride, W / stride, Q]. A difference from
  the paper, whose network is fully convolutional (a dilated VGG); here the decoder reads
  the encoder's flattened features, as the other encoder-decoder methods do.
- Loss: :func:`keras_ssl.losses.colour.soft_bin_cross_entropy`. Metrics: ``cross_entropy``
  (not rebalanced) and ``bin_accuracy`` (the most probable bin is the nearest bin).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_ssl.colour import bins as colour_bins
from keras_ssl.colour.lab import rgb_to_lab
from keras_ssl.config import num
from keras_ssl.files import write_text_atomic
from keras_ssl.losses.colour import pixel_cross_entropy, soft_bin_cross_entropy
from keras_ssl.methods.autoencoder import conv_decoder
from keras_ssl.methods.base import NO_FACTS, DatasetFacts, Method, view_inputs
from keras_ssl.registry import Params, register

#: Images converted at a time when the bin distribution is estimated.
PRIOR_BATCH = 256


@dataclass(frozen=True)
class AbBinsParams(Params):
    """The quantised ab output (module docstring).

    - ``ab_grid``: side of the ab bins, in Lab units (the paper: 10).
    - ``soft_neighbours``: bins of each pixel's soft target (the paper: 5).
    - ``soft_sigma``: deviation of the soft target's Gaussian, ab units (the paper: 5).
    - ``target_stride``: the target grid's cell side, pixels: targets are the ab label
      averaged over stride x stride cells (the paper: 4); must divide H and W.
    - ``hidden``: units of a dense layer (ReLU) before the decoder's spatial map; 0: none.
    - ``channels``: channels of the decoder's first feature map (the second has half).
    """
    ab_grid: float = num(10.0, 1.0, 60.0)
    soft_neighbours: int = num(5, 1, 64)
    soft_sigma: float = num(5.0, 0.0, None, lo_open=True)
    target_stride: int = num(4, 1)
    hidden: int = num(0, 0)
    channels: int = num(64, 2)


@dataclass(frozen=True)
class ColorizationParams(AbBinsParams):
    """:class:`AbBinsParams` plus class rebalancing (module docstring):

    - ``rebalance_lambda``: weight of the uniform distribution mixed into the smoothed
      empirical one (the paper: 0.5); 1: every bin weighs 1 (no rebalancing).
    - ``prior_sigma``: deviation of the Gaussian smoothing the empirical bin
      distribution, ab units (the paper: 5).
    """
    rebalance_lambda: float = num(0.5, 0.0, 1.0)
    prior_sigma: float = num(5.0, 0.0, None, lo_open=True)


def target_ab(ab: tf.Tensor, stride: int) -> tf.Tensor:
    """ab [B, H, W, 2] averaged over ``stride`` x ``stride`` cells: [B, H/s, W/s, 2]."""
    ab = tf.cast(ab, tf.float32)
    return ab if stride == 1 else tf.nn.avg_pool2d(ab, stride, stride, "VALID")


def check_target_grid(method: str, view_shape, stride: int) -> tuple[int, int]:
    """(H / stride, W / stride); ValueError naming ``method.target_stride`` otherwise."""
    h, w = int(view_shape[0]), int(view_shape[1])
    if h % stride or w % stride:
        raise ValueError(f"method {method!r}: method.target_stride={stride} must divide the image's "
                         f"{h}x{w} (data.image_size)")
    return h // stride, w // stride


class Colorization(Method):
    def __init__(self, encoder, network, params: ColorizationParams, centres: np.ndarray, **kwargs):
        super().__init__(encoder, network, **kwargs)
        self.params = params
        self.centres = np.asarray(centres, np.float32)
        # w[q] of each bin: 1 until prepare() estimates them from the data.
        self.rebalance = tf.Variable(tf.ones([len(self.centres)]), trainable=False, name="rebalance_weights")

    def targets(self, ab):
        """(bins [B, h, w, k], weights [B, h, w, k]) of the ab label at the target grid."""
        p = self.params
        return colour_bins.soft_encode(target_ab(ab, p.target_stride), self.centres,
                                       p.soft_neighbours, p.soft_sigma)

    def per_example(self, outputs, labels):
        if "ab" not in labels:
            raise ValueError(f"method 'colorization' needs label 'ab' (pretext 'colorization'), "
                             f"got labels {sorted(labels)}")
        logits = outputs["ab_logits"]
        bins, weights = self.targets(labels["ab"])
        nearest = bins[..., 0]
        loss = soft_bin_cross_entropy(logits, bins, weights, tf.gather(self.rebalance, nearest))
        hit = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), nearest), tf.float32)
        return loss, {"cross_entropy": tf.reduce_mean(pixel_cross_entropy(logits, bins, weights), [1, 2]),
                      "bin_accuracy": tf.reduce_mean(hit, [1, 2])}

    def prior(self, images) -> np.ndarray:
        """The empirical distribution of the nearest bins of uint8 RGB ``images`` at the target grid."""
        stride = self.params.target_stride

        def batches():
            for i in range(0, len(images), PRIOR_BATCH):
                rgb = tf.constant(images[i:i + PRIOR_BATCH], tf.float32) / 255.0
                yield target_ab(rgb_to_lab(rgb)[..., 1:], stride)
        return colour_bins.empirical_prior(batches(), self.centres)

    def prepare(self, images, run_dir=None) -> None:
        p = self.params
        prior = self.prior(images)
        smooth = colour_bins.smooth_prior(prior, self.centres, p.prior_sigma)
        weights = colour_bins.rebalancing_weights(smooth, p.rebalance_lambda)
        self.rebalance.assign(weights.astype(np.float32))
        if run_dir is not None:
            write_text_atomic(Path(run_dir) / "colour_bins.json", json.dumps({
                "ab_grid": p.ab_grid, "bins": len(self.centres), "images": len(images),
                "target_stride": p.target_stride, "rebalance_lambda": p.rebalance_lambda,
                "prior_sigma": p.prior_sigma,
                "centres": self.centres.tolist(), "prior": prior.round(8).tolist(),
                "smoothed_prior": smooth.round(8).tolist(), "weights": weights.round(6).tolist()}) + "\n")


def check_lab_pretext(method: str, pretext, channels: str, pretext_name: str) -> None:
    """ValueError unless ``pretext`` has one view of the Lab ``channels`` (its input transform)."""
    t = getattr(pretext, "input_transform", None)
    if len(pretext.view_names) != 1 or getattr(t, "channels", None) != channels:
        raise ValueError(f"method {method!r} needs a pretext with one view of the Lab channels {channels!r} "
                         f"(pretext {pretext_name!r}), got views {pretext.view_names} and input transform {t}")


@register("method", "colorization", ColorizationParams)
def build_colorization(p: ColorizationParams, encoder: keras.Model, pretext, *,
                       facts: DatasetFacts = NO_FACTS) -> Colorization:
    check_lab_pretext("colorization", pretext, "L", "colorization")
    th, tw = check_target_grid("colorization", pretext.view_shape, p.target_stride)
    centres = colour_bins.gamut_bins(p.ab_grid)
    inputs = view_inputs(pretext)
    x = conv_decoder(encoder(inputs[0]), (th, tw, len(centres)), p.hidden, p.channels)
    network = keras.Model(inputs, {"ab_logits": x}, name="colorization")
    return Colorization(encoder, network, p, centres, name="colorization")
