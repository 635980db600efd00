"""sRGB <-> CIE L*a*b* (D65 white, 2 degree observer) in TensorFlow ops, so the conversion
runs inside the graph (pretext samplers, the evaluated and exported encoder).

The standard formula, with the constants scikit-image's ``skimage.color.rgb2lab`` uses
(the tests check it to within 1e-3 on random images; skimage is the reference in tests
only):

1. sRGB companding: ``c_lin = ((c + 0.055) / 1.055) ** 2.4`` if ``c > 0.04045`` else
   ``c / 12.92``, for c in [0, 1];
2. linear RGB -> XYZ with :data:`XYZ_FROM_RGB` (IEC 61966-2-1, skimage's matrix);
3. XYZ divided by the D65 white :data:`WHITE_D65`, then ``f(t) = t ** (1/3)`` if
   ``t > 0.008856`` else ``7.787 t + 16/116``;
4. ``L = 116 f(Y) - 16``, ``a = 500 (f(X) - f(Y))``, ``b = 200 (f(Y) - f(Z))``.

Units: L in [0, 100]; a, b roughly in [-128, 128] (sRGB colours reach about
[-86, 98] for a and [-108, 95] for b). :func:`lab_to_rgb` inverts the steps (Z's f
clipped at 0 and the result clipped to [0, 1], as skimage does).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

#: Linear sRGB -> XYZ (rows X, Y, Z), skimage's ``xyz_from_rgb``.
XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                         [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]])
#: Its inverse (XYZ -> linear sRGB).
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
#: The D65 reference white (2 degree observer), X, Y, Z.
WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_EPS = 0.008856          # (6/29)^3, rounded as in the CIE standard and skimage
_KAPPA = 7.787           # (29/6)^2 / 3, likewise


def rgb_to_lab(rgb: tf.Tensor) -> tf.Tensor:
    """float [..., 3] sRGB in [0, 1] -> float32 [..., 3] (L, a, b)."""
    rgb = tf.cast(rgb, tf.float32)
    lin = tf.where(rgb > 0.04045, tf.pow((tf.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4), rgb / 12.92)
    m = tf.constant((XYZ_FROM_RGB / WHITE_D65[:, None]).T, tf.float32)     # xyz / white = lin @ m
    t = tf.tensordot(lin, m, axes=[[-1], [0]])
    f = tf.where(t > _EPS, tf.pow(tf.maximum(t, _EPS), 1.0 / 3.0), _KAPPA * t + 16.0 / 116.0)
    fx, fy, fz = tf.unstack(f, axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: tf.Tensor) -> tf.Tensor:
    """float [..., 3] (L, a, b) -> float32 [..., 3] sRGB clipped to [0, 1]."""
    lab = tf.cast(lab, tf.float32)
    l, a, b = tf.unstack(lab, axis=-1)
    fy = (l + 16.0) / 116.0
    f = tf.stack([a / 500.0 + fy, fy, tf.maximum(fy - b / 200.0, 0.0)], axis=-1)
    t = tf.where(f > 0.2068966, tf.pow(f, 3.0), (f - 16.0 / 116.0) / _KAPPA)
    m = tf.constant((RGB_FROM_XYZ * WHITE_D65[None, :]).T, tf.float32)     # lin = (t * white) @ M^-T
    lin = tf.tensordot(t, m, axes=[[-1], [0]])
    srgb = tf.where(lin > 0.0031308, 1.055 * tf.pow(tf.maximum(lin, 0.0031308), 1.0 / 2.4) - 0.055,
                    12.92 * lin)
    return tf.clip_by_value(srgb, 0.0, 1.0)
