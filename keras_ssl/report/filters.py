"""conv1's filters as an image grid: what the first layer of the trained encoder looks for.

Contract: :func:`first_conv` is the first ``keras.layers.Conv2D`` of the encoder
in layer order (nested models searched in place); :func:`filter_grid` lays its
kernel [kh, kw, C, F] out as one cell per filter, row by row, ``cols =
ceil(sqrt(F))`` columns, each cell the filter min-max normalised on its own
(over its kh x kw x C weights; a constant filter is mid-gray) and enlarged
``scale`` times (nearest neighbour) to at least :data:`MIN_CELL` px, with a
:data:`GAP`-pixel white border around every cell. Gray for C = 1, RGB for
C = 3; any other C shows the mean over input channels, in gray. The image is
``rows * (kh*scale + GAP) + GAP`` by ``cols * (kw*scale + GAP) + GAP`` pixels
(:class:`GridLayout`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_CELL = 32
GAP = 1


@dataclass(frozen=True)
class GridLayout:
    """Where the cells are: ``rows`` x ``cols`` cells of ``cell_h`` x ``cell_w`` px
    (the filter enlarged ``scale`` times), ``GAP`` px apart; ``filters`` of them are drawn."""
    filters: int
    rows: int
    cols: int
    cell_h: int
    cell_w: int
    scale: int
    channels: int                   # of the image: 1 or 3

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image."""
        return (self.rows * (self.cell_h + GAP) + GAP, self.cols * (self.cell_w + GAP) + GAP)

    def cell(self, i: int) -> tuple[slice, slice]:
        """The (rows, columns) slices of filter ``i``'s cell in the image."""
        r, c = divmod(i, self.cols)
        y, x = GAP + r * (self.cell_h + GAP), GAP + c * (self.cell_w + GAP)
        return slice(y, y + self.cell_h), slice(x, x + self.cell_w)


def _layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def first_conv(encoder):
    """The encoder's first Conv2D layer; ValueError when it has none."""
    import keras

    for layer in _layers(encoder):
        if isinstance(layer, keras.layers.Conv2D):
            return layer
    raise ValueError(f"encoder {encoder.name} has no Conv2D layer")


def normalise(f: np.ndarray) -> np.ndarray:
    """One filter min-max scaled to [0, 1] (0.5 everywhere when constant)."""
    lo, hi = float(f.min()), float(f.max())
    return np.full_like(f, 0.5) if hi - lo < 1e-12 else (f - lo) / (hi - lo)


def filter_grid(kernel: np.ndarray) -> tuple[np.ndarray, GridLayout]:
    """(uint8 image [H, W, 1 or 3], its layout) of a Conv2D kernel [kh, kw, C, F]."""
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim != 4:
        raise ValueError(f"expected a Conv2D kernel [kh, kw, C, F], got shape {kernel.shape}")
    kh, kw, c, n = kernel.shape
    channels = 3 if c == 3 else 1
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    scale = max(1, math.ceil(MIN_CELL / max(kh, kw)))
    layout = GridLayout(n, rows, cols, kh * scale, kw * scale, scale, channels)
    image = np.ones(layout.size + (channels,), np.float64)           # white borders
    for i in range(n):
        f = kernel[..., i]
        if channels == 1:
            f = f.mean(axis=-1, keepdims=True)
        f = np.kron(normalise(f), np.ones((scale, scale, 1)))
        image[layout.cell(i)] = f
    return np.round(image * 255).astype(np.uint8), layout


def conv1_grid(encoder) -> tuple[np.ndarray, GridLayout, str]:
    """(image, layout, layer name) of the encoder's first Conv2D's filters."""
    import keras

    layer = first_conv(encoder)
    image, layout = filter_grid(keras.ops.convert_to_numpy(layer.kernel))
    return image, layout, layer.name
