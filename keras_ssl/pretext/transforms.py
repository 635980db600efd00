"""Affine image transforms shared by the samplers (egomotion, SFA pairs, augment, PIRL).

One convention throughout: a transform scales by ``s`` and rotates by ``deg``
about the image centre c = ((W - 1) / 2, (H - 1) / 2), then shifts by
t = (tx, ty) pixels; x points right and y down as the image is displayed, so
positive ``deg`` turns the content clockwise on screen and positive tx, ty
move it right and down. ``ImageProjectiveTransformV3`` maps each output pixel
to the input pixel it reads, so the matrices hold the inverse map

    p -> c + (s R)^-1 (p - t - c),    R^-1 = [[cos, sin], [-sin, cos]].

Egomotion's moves (Agrawal et al. 2015) are the case s = 1 with integer
shifts and degrees; NPID-style augmentation (Wu et al. 2018) draws all four.
"""
from __future__ import annotations

import math

import tensorflow as tf


def affine_matrices(tx, ty, deg, height: int, width: int, scale=1.0) -> tf.Tensor:
    """Projective transforms [B, 8] for ImageProjectiveTransformV3 (module docstring).

    ``tx``, ``ty``: shifts [B], pixels; ``deg``: rotations [B], degrees;
    ``scale``: [B] or a number (1: none; exact, x * 1.0 == x in floating point).
    """
    theta = tf.cast(deg, tf.float32) * (math.pi / 180.0)
    inv = 1.0 / tf.cast(scale, tf.float32)
    cos, sin = tf.cos(theta) * inv, tf.sin(theta) * inv
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    ux = -tf.cast(tx, tf.float32) - cx   # p - t - c, constant part
    uy = -tf.cast(ty, tf.float32) - cy
    a0, a1, a2 = cos, sin, cos * ux + sin * uy + cx
    b0, b1, b2 = -sin, cos, -sin * ux + cos * uy + cy
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def warp(images: tf.Tensor, transforms: tf.Tensor, interpolation: str = "BILINEAR") -> tf.Tensor:
    """``images`` [B, H, W, C] under ``transforms`` [B, 8], same size, black outside."""
    h, w = images.shape[1], images.shape[2]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.constant([h, w], tf.int32),
        fill_value=0.0, interpolation=interpolation, fill_mode="CONSTANT")
