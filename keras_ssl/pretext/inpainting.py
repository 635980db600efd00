"""Inpainting: the image with a region removed (Pathak et al. 2016, "Context
Encoders: Feature Learning by Inpainting").

One view ``image``: the image with the pixels of a mask replaced by the
constant ``fill`` in every channel (the paper fills the dropped region with
the mean pixel value). Labels: ``target``, the clean image, float32
[B, H, W, C]; ``mask``, float32 [B, H, W, 1], 1 on the removed pixels and 0
on the context. No classification targets: use method ``inpainting``, whose
loss is the reconstruction of the removed pixels only.

Masks (``mask``; the paper's Section 3.3 region masks):

- ``"center"``: the central square of side ``size_px`` (the paper removes
  the central 64x64 of 128x128 images: half the side, a quarter of the
  area), the same for every image;
- ``"random_blocks"``: squares of side ``block_px`` at uniformly random
  positions, possibly overlapping (the paper's random blocks, "covering up to
  1/4 of the image"): per image a sequence of blocks is drawn and its first
  k kept, k chosen so that the covered fraction is the closest to
  ``fraction`` (within about half a block's area of it);
- ``"random_region"``: random blobs covering ``fraction`` of the image (a
  substitute for the paper's random regions, which are PASCAL VOC
  segmentation shapes): uniform noise on a grid of ``block_px`` cells,
  resized bilinearly to H x W, its ``round(fraction * H * W)`` largest values
  per image removed (exactly that many pixels).

The random masks are drawn with stateless ops from the batch's seed: the
same seed gives the same masks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import tensorflow as tf

from keras_ssl.config import ConfigError, num
from keras_ssl.pretext.base import Pretext
from keras_ssl.registry import Params, register

MaskKind = Literal["center", "random_blocks", "random_region"]


@dataclass(frozen=True)
class InpaintingParams(Params):
    """The removed region (module docstring; Pathak et al. 2016, Section 3.3).

    - ``mask``: ``"center"``, ``"random_blocks"`` or ``"random_region"``.
    - ``size_px``: side of the central square (``"center"``), in pixels; at most
      the image's height and width (the paper: half the side).
    - ``block_px``: side of each random block (``"random_blocks"``), or of the
      noise cells whose blobs make the region (``"random_region"``), in pixels.
    - ``fraction``: the fraction of the image's pixels the random masks cover
      (the paper: up to 1/4); not used by ``"center"``.
    - ``fill``: the value written into the removed pixels, in the [0, 1] pixel
      unit of the images (the paper fills with the mean pixel value; 0 is the
      background of MNIST).
    """
    mask: MaskKind = "center"
    size_px: int = num(14, 1)
    block_px: int = num(7, 1)
    fraction: float = num(0.25, 0.0, 0.75, lo_open=True)
    fill: float = num(0.0, 0.0, 1.0)


def center_mask(h: int, w: int, size: int) -> tf.Tensor:
    """float32 [h, w]: 1 on the central ``size`` x ``size`` square (top-left corner at
    ``((h - size) // 2, (w - size) // 2)``), 0 elsewhere."""
    top, left = (h - size) // 2, (w - size) // 2
    rows = tf.logical_and(tf.range(h) >= top, tf.range(h) < top + size)
    cols = tf.logical_and(tf.range(w) >= left, tf.range(w) < left + size)
    return tf.cast(tf.logical_and(rows[:, None], cols[None, :]), tf.float32)


def block_candidates(h: int, w: int, block: int, fraction: float) -> int:
    """How many blocks ``random_blocks`` draws per image: three times the number
    whose independent, uniform placement covers ``fraction`` in expectation
    (``1 - (1 - a)^k = fraction``, a = the block's share of the image), plus 4:
    enough for the closest count to be among them."""
    a = block * block / (h * w)
    if a >= 1.0:
        return 1
    return 3 * math.ceil(math.log(1.0 - fraction) / math.log(1.0 - a)) + 4


def random_blocks_mask(batch, h: int, w: int, block: int, fraction: float, seed) -> tf.Tensor:
    """float32 [batch, h, w]: per image, the union of the first k of a sequence of
    random ``block`` x ``block`` squares (top-left uniform in [0, h - block] x
    [0, w - block]), k chosen per image so that the covered fraction is the
    closest to ``fraction``."""
    m = block_candidates(h, w, block, fraction)
    s_row, s_col = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    top = tf.random.stateless_uniform([batch, m], s_row, 0, h - block + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([batch, m], s_col, 0, w - block + 1, dtype=tf.int32)
    i, j = tf.range(h), tf.range(w)
    rows = tf.logical_and(i >= top[..., None], i < top[..., None] + block)      # [B, m, h]
    cols = tf.logical_and(j >= left[..., None], j < left[..., None] + block)    # [B, m, w]
    blocks = tf.cast(tf.logical_and(rows[..., :, None], cols[..., None, :]), tf.float32)
    union = tf.cast(tf.cumsum(blocks, axis=1) > 0, tf.float32)                  # first k blocks
    covered = tf.reduce_mean(union, axis=[2, 3])                                # [B, m]
    k = tf.argmin(tf.abs(covered - fraction), axis=1, output_type=tf.int32)
    return tf.gather(union, k, axis=1, batch_dims=1)


def random_region_mask(batch, h: int, w: int, cell: int, fraction: float, seed) -> tf.Tensor:
    """float32 [batch, h, w]: 1 on the ``round(fraction * h * w)`` pixels where bilinearly
    upsampled uniform noise on a grid of ``cell``-pixel cells is largest (random blobs)."""
    gh, gw = math.ceil(h / cell) + 1, math.ceil(w / cell) + 1
    noise = tf.random.stateless_uniform([batch, gh, gw, 1], seed)
    smooth = tf.reshape(tf.image.resize(noise, [h, w], method="bilinear"), [batch, h * w])
    k = max(1, round(fraction * h * w))
    rank = tf.argsort(tf.argsort(smooth, axis=1, direction="DESCENDING", stable=True), axis=1)
    return tf.reshape(tf.cast(rank < k, tf.float32), [batch, h, w])   # exactly k (ties: first)


class InpaintingPretext(Pretext):
    def __init__(self, params: InpaintingParams, image_shape):
        super().__init__(view_names=("image",), view_shape=tuple(image_shape), targets={})
        self.params = params

    def masks(self, batch, seed) -> tf.Tensor:
        """float32 [batch, H, W, 1]: 1 on the pixels to remove."""
        p = self.params
        h, w = int(self.view_shape[0]), int(self.view_shape[1])
        if p.mask == "center":
            m = tf.tile(center_mask(h, w, p.size_px)[None], [batch, 1, 1])
        elif p.mask == "random_blocks":
            m = random_blocks_mask(batch, h, w, p.block_px, p.fraction, seed)
        else:
            m = random_region_mask(batch, h, w, p.block_px, p.fraction, seed)
        return m[..., None]

    def __call__(self, images, index, seed):
        mask = self.masks(tf.shape(images)[0], seed)
        view = images * (1.0 - mask) + self.params.fill * mask
        return {"image": view}, {"target": images, "mask": mask}

    def describe(self, labels, i):
        removed = float(tf.reduce_mean(labels["mask"][i]))
        return f"inpaint the {self.params.mask} mask ({removed:.0%} of the pixels, filled with {self.params.fill:g})"


@register("pretext", "inpainting", InpaintingParams)
def build_inpainting(params: InpaintingParams, image_shape) -> InpaintingPretext:
    h, w = int(image_shape[0]), int(image_shape[1])
    if params.mask == "center" and params.size_px > min(h, w):
        raise ConfigError(f"pretext.size_px={params.size_px} is larger than the {h}x{w} image")
    if params.mask != "center" and params.block_px > min(h, w):
        raise ConfigError(f"pretext.block_px={params.block_px} is larger than the {h}x{w} image")
    return InpaintingPretext(params, image_shape)
