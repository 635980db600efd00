"""The quantised ab output space of colorization (Zhang, Isola, Efros 2016, "Colorful
Image Colorization", Section 2.1 and 2.2).

- :func:`gamut_bins`: the in-gamut bins of a grid of side ``grid`` in ab: the centres
  ``grid * round(ab / grid)`` of the ab values of every colour of the sRGB cube, sampled
  at :data:`GAMUT_LEVELS` levels per channel and converted with
  :func:`keras_ssl.colour.lab.rgb_to_lab`, sorted by (a, b). The paper keeps Q = 313
  bins at grid 10; this computation keeps 262 at grid 10 (the cells that contain the ab
  of an sRGB colour; the paper's count includes more border cells), 1,000-odd at grid 5.
- :func:`soft_encode`: the target of a pixel: its ``k`` nearest bin centres, weighted by
  a Gaussian of their distance to the pixel's ab (the paper: 5 neighbours, sigma 5),
  normalised to sum to 1.
- :func:`empirical_prior`, :func:`smooth_prior`, :func:`rebalancing_weights`: class
  rebalancing (eq. 3-4): p, the empirical distribution of the pixels' nearest bins;
  p~, p smoothed by a Gaussian of deviation ``sigma`` over the bin centres; the weight
  of bin q is ``w_q ~ ((1 - lam) p~_q + lam / Q) ** -1``, scaled so that
  ``sum_q p~_q w_q = 1`` (the weights average to 1 under the smoothed empirical
  distribution; the paper: lam 0.5, sigma 5).
"""
from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from keras_ssl.colour.lab import rgb_to_lab

#: Levels per channel of the sRGB cube whose ab values define the gamut (128^3 colours;
#: 64 levels already give all but one of the 262 bins at grid 10).
GAMUT_LEVELS = 128


@functools.lru_cache(maxsize=8)
def _gamut_bins(grid: float, levels: int) -> np.ndarray:
    g = np.linspace(0.0, 1.0, levels, dtype=np.float32)
    cube = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    ab = rgb_to_lab(tf.constant(cube)).numpy()[:, 1:]
    centres = np.unique(np.round(ab / grid).astype(np.int64), axis=0) * grid
    centres.setflags(write=False)
    return centres.astype(np.float32)


def gamut_bins(grid: float, levels: int = GAMUT_LEVELS) -> np.ndarray:
    """float32 [Q, 2]: the (a, b) centres of the in-gamut bins of side ``grid`` (module
    docstring), sorted by a then b; the same array for the same arguments (read-only)."""
    if grid <= 0:
        raise ValueError(f"ab grid must be > 0, got {grid}")
    return _gamut_bins(float(grid), int(levels))


def _sq_distances(ab: tf.Tensor, centres) -> tf.Tensor:
    """[..., Q] squared distances of ab [..., 2] to the centres [Q, 2]."""
    c = tf.constant(centres, tf.float32)
    ab = tf.cast(ab, tf.float32)
    d2 = (tf.reduce_sum(tf.square(ab), -1, keepdims=True) - 2.0 * tf.tensordot(ab, tf.transpose(c), 1)
          + tf.reduce_sum(tf.square(c), -1))
    return tf.maximum(d2, 0.0)


def soft_encode(ab: tf.Tensor, centres, k: int = 5, sigma: float = 5.0):
    """Soft targets of ab values [..., 2]: ``(bins, weights)``, int32 [..., k] indices of the
    k nearest centres (nearest first) and float32 [..., k] Gaussian weights
    ``exp(-d^2 / (2 sigma^2))`` normalised to sum to 1 over the k."""
    k = min(int(k), len(centres))
    neg, bins = tf.math.top_k(-_sq_distances(ab, centres), k)
    # relative to the nearest: the same normalised weights, never 0/0 far from the gamut
    logits = (neg - neg[..., :1]) / (2.0 * sigma * sigma)
    return bins, tf.nn.softmax(logits, axis=-1)


def nearest_bin(ab: tf.Tensor, centres) -> tf.Tensor:
    """int32 [...]: the index of the centre nearest each ab value [..., 2]."""
    return tf.argmin(_sq_distances(ab, centres), axis=-1, output_type=tf.int32)


def empirical_prior(ab_batches, centres) -> np.ndarray:
    """float64 [Q]: the fraction of the ab values (an iterable of [..., 2] arrays) whose
    nearest centre is each bin (p of eq. 4)."""
    counts = np.zeros(len(centres), np.float64)
    for ab in ab_batches:
        counts += np.bincount(nearest_bin(ab, centres).numpy().ravel(), minlength=len(centres))
    if counts.sum() == 0:
        raise ValueError("no ab values to estimate the bin distribution from")
    return counts / counts.sum()


def smooth_prior(p: np.ndarray, centres, sigma: float = 5.0) -> np.ndarray:
    """p smoothed by a Gaussian of deviation ``sigma`` (ab units) over the bin centres,
    renormalised to sum to 1 (p~ of eq. 4)."""
    c = np.asarray(centres, np.float64)
    d2 = np.sum((c[:, None, :] - c[None, :, :]) ** 2, -1)
    smoothed = np.exp(-d2 / (2.0 * sigma * sigma)) @ np.asarray(p, np.float64)
    return smoothed / smoothed.sum()


def rebalancing_weights(p_smooth: np.ndarray, lam: float = 0.5) -> np.ndarray:
    """float64 [Q]: ``w ~ 1 / ((1 - lam) p~ + lam / Q)``, scaled so that ``sum(p~ * w) = 1``."""
    p = np.asarray(p_smooth, np.float64)
    w = 1.0 / ((1.0 - lam) * p + lam / len(p))
    return w / np.sum(p * w)
