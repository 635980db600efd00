"""Patch geometry shared by the jigsaw and relative-position samplers.

A square ``region_px`` in the centre of the image is cut into a
``grid`` x ``grid`` array of cells of ``cell = region_px // grid`` pixels. In
each cell a ``tile_px`` square tile is cropped at a random offset in
``[0, cell - tile_px]`` on each axis (Noroozi & Favaro 2016: random 64x64 tiles
in 75x75 cells; Doersch et al. 2015: a gap and a few pixels of jitter), so
neighbouring tiles are separated by a random gap of ``0 .. 2 (cell - tile_px)``
pixels: edges and strokes do not simply continue from one tile into the next.

The views must have the encoder's input shape because the very same encoder
is evaluated on whole 28x28 digits after pretraining (and exported for them);
an encoder built for 6x6 tiles could not be evaluated that way. Two
``placement``s make a tile an image:

- ``resize``: the tile is resized (bilinear) up to the full image size. Strokes
  then look 28 / tile_px times thicker than in the digits the encoder is
  evaluated on.
- ``center``: the tile keeps its pixel size and is pasted at the centre of a
  black image, so strokes keep their scale. The centre is the same for every
  cell, so the view's position does not reveal the cell it came from.

Cells are in reading order: cell ``k`` is row ``k // grid``, column ``k % grid``.
"""
from __future__ import annotations

import typing
from typing import Literal

import tensorflow as tf

from keras_ssl.config import ConfigError

#: Per-tile normalisation (:func:`crop_tiles`).
Normalization = Literal["minmax", "standardize", "none"]
#: How a tile becomes an image of the input size (module docstring).
Placement = Literal["resize", "center"]
NORMALIZATIONS = typing.get_args(Normalization)
PLACEMENTS = typing.get_args(Placement)


def check_geometry(kind: str, image_shape, grid: int, region_px: int, tile_px: int) -> None:
    """ConfigError unless the grid fits the image (called by the builders)."""
    h, w = int(image_shape[0]), int(image_shape[1])
    if h != w:
        raise ConfigError(f"pretext {kind!r} needs square images, got {h}x{w}")
    if region_px > h:
        raise ConfigError(f"pretext.region_px={region_px} is larger than the {h}x{h} image")
    if tile_px > region_px // grid:
        raise ConfigError(f"pretext.tile_px={tile_px} does not fit a cell of {region_px // grid} px "
                          f"(region_px={region_px} // grid={grid})")


def tile_origins(batch, seed, grid: int, region_px: int, tile_px: int, image_px: int) -> tf.Tensor:
    """Top-left (row, col) in pixels of every cell's jittered tile: int32 [B, grid*grid, 2]."""
    cell = region_px // grid
    offset = (image_px - region_px) // 2
    jitter = tf.random.stateless_uniform([batch, grid * grid, 2], seed, 0, cell - tile_px + 1,
                                         dtype=tf.int32)
    k = tf.range(grid * grid)
    base = tf.stack([k // grid, k % grid], axis=1) * cell + offset        # [K, 2]
    return base[None] + jitter


def cell_tiles(images, cells, seed, grid: int, region_px: int, tile_px: int,
               normalize: Normalization, placement: Placement) -> tf.Tensor:
    """The jittered tiles of ``cells`` (int [B, K]: per example, the cell each view
    is cut from, in reading order) as images of the input size: [B, K, H, W, C].
    Jitter drawn from ``seed`` (:func:`tile_origins`), tiles made by :func:`crop_tiles`."""
    origins = tile_origins(tf.shape(images)[0], seed, grid, region_px, tile_px, images.shape[1])
    return crop_tiles(images, tf.gather(origins, cells, batch_dims=1), tile_px, normalize, placement)


def crop_tiles(images, origins, tile_px: int, normalize: Normalization,
               placement: Placement = "resize") -> tf.Tensor:
    """Tiles at ``origins`` (int [B, K, 2]) as images of the input size: [B, K, H, W, C].

    ``crop_and_resize`` samples the tile's pixels [r, r + tile_px - 1] (corner
    aligned): bilinearly up to the image size for ``placement="resize"``, one
    to one for ``"center"``, which then pads the tile with zeros to the image
    size, centred. ``normalize`` is applied per tile, before the padding: ``minmax``
    rescales each tile to [0, 1] by its own min and max (keeps the encoder's
    [0, 1] input contract), ``standardize`` to zero mean and unit deviation
    (Noroozi & Favaro), ``none`` leaves it.
    """
    shape = tf.shape(images)
    b, k = shape[0], tf.shape(origins)[1]
    h, w, c = images.shape[1], images.shape[2], images.shape[3]
    o = tf.cast(tf.reshape(origins, [-1, 2]), tf.float32)
    span = float(tile_px - 1)
    boxes = tf.concat([o[:, :1] / (h - 1), o[:, 1:] / (w - 1),
                       (o[:, :1] + span) / (h - 1), (o[:, 1:] + span) / (w - 1)], axis=1)
    box_index = tf.repeat(tf.range(b), k)
    size = [h, w] if placement == "resize" else [tile_px, tile_px]
    tiles = tf.image.crop_and_resize(images, boxes, box_index, size, method="bilinear")
    if normalize == "minmax":
        lo = tf.reduce_min(tiles, axis=[1, 2, 3], keepdims=True)
        hi = tf.reduce_max(tiles, axis=[1, 2, 3], keepdims=True)
        tiles = tf.math.divide_no_nan(tiles - lo, hi - lo)
    elif normalize == "standardize":
        mean, var = tf.nn.moments(tiles, axes=[1, 2, 3], keepdims=True)
        tiles = (tiles - mean) / tf.sqrt(var + 1e-6)
    if placement == "center":
        top, left = (h - tile_px) // 2, (w - tile_px) // 2
        tiles = tf.pad(tiles, [[0, 0], [top, h - tile_px - top], [left, w - tile_px - left], [0, 0]])
    return tf.reshape(tiles, [b, k, h, w, c])
