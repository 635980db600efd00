"""Relative patch position, a.k.a. context prediction (Doersch, Gupta,
Efros, "Unsupervised Visual Representation Learning by Context Prediction",
ICCV 2015).

The centre ``region_px`` square of the image is cut into 3x3 cells; a
``tile_px`` patch with random jitter is cropped from the centre cell and from
one of its 8 neighbours (uniformly), so the two patches are separated by a
random gap. Both are normalised on their own and made images of the input
size, resized or pasted at their own size (``placement``; see
:mod:`keras_ssl.pretext.patches`: the same encoder is then evaluated on whole
28x28 digits). Views ``center`` and ``neighbor``; target ``position``
in 0..7 names the neighbour's place, in reading order::

    0 1 2
    3 . 4
    5 6 7

(``position`` p is cell ``NEIGHBOR_CELLS[p]`` of the 3x3 grid; the centre is
cell 4.) Use with method ``classify`` (two towers, features concatenated,
8-way softmax). MNIST defaults as for jigsaw: a 24x24 central region (the
digit's 20x20 box plus margin), 8 px cells, 6 px patches.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.pretext.base import Pretext
from keras_ssl.pretext.patches import Normalization, Placement, cell_tiles, check_geometry
from keras_ssl.registry import Params, register

GRID = 3
CENTER_CELL = 4
NEIGHBOR_CELLS = (0, 1, 2, 3, 5, 6, 7, 8)
POSITION_NAMES = ("top-left", "top", "top-right", "left", "right", "bottom-left", "bottom", "bottom-right")


@dataclass(frozen=True)
class RelativePositionParams(Params):
    """Patch geometry (MNIST defaults: module docstring).

    - ``region_px``: side of the central square cut into 3x3 cells, pixels.
    - ``tile_px``: side of each patch, pixels (at most a cell; the rest is jitter).
    - ``normalize``: per patch: ``"minmax"``, ``"standardize"`` or ``"none"``.
    - ``placement``: ``"resize"`` to the image size or ``"center"`` (pasted at its own size).
    """
    region_px: int = num(24, 3)
    tile_px: int = num(6, 1)
    normalize: Normalization = "minmax"
    placement: Placement = "resize"


class RelativePositionPretext(Pretext):
    def __init__(self, params: RelativePositionParams, image_shape):
        super().__init__(view_names=("center", "neighbor"), view_shape=tuple(image_shape),
                         targets={"position": len(NEIGHBOR_CELLS)})
        self.params = params
        self._cells = tf.constant(NEIGHBOR_CELLS, tf.int32)

    def __call__(self, images, index, seed):
        p = self.params
        b = tf.shape(images)[0]
        s_pos, s_jit = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        position = tf.random.stateless_uniform([b], s_pos, 0, len(NEIGHBOR_CELLS), dtype=tf.int32)
        cells = tf.stack([tf.fill([b], CENTER_CELL), tf.gather(self._cells, position)], axis=1)
        patches = cell_tiles(images, cells, s_jit, GRID, p.region_px, p.tile_px, p.normalize, p.placement)
        return {"center": patches[:, 0], "neighbor": patches[:, 1]}, {"position": position}

    def describe(self, labels, i):
        return f"neighbour {POSITION_NAMES[int(labels['position'][i])]}"


@register("pretext", "relative_position", RelativePositionParams)
def build_relative_position(params: RelativePositionParams, image_shape) -> RelativePositionPretext:
    check_geometry("relative_position", image_shape, GRID, params.region_px, params.tile_px)
    return RelativePositionPretext(params, image_shape)
