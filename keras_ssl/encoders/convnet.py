"""A small convnet: blocks of convolutions, each block downsampling by a 2x2
max-pool (ceil mode) or, with ``strides``, by its first convolution's stride;
optional batch norm; flattened output (the spatial layout is kept: egomotion
needs to know *where* things are).

Defaults give a VGG-style net (3x3 convs, max-pools). ``kernels=[5, 3, 3],
strides=[2, 2, 2]`` gives a strided net about as cheap on CPU as the BCNN
but with a 4x4 spatial output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import keras

from keras_ssl.config import num
from keras_ssl.encoders.layers import ceil_pool_padding
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class ConvNetParams(Params):
    """Blocks of 'same'-padded convolutions, He-initialised, each followed by ReLU.

    - ``filters``: channels of each block's convolutions (one entry per block).
    - ``kernels``: kernel side per block, pixels (empty: 3 everywhere).
    - ``strides``: first convolution's stride per block (empty: 1); a stride > 1
      downsamples instead of the block's 2x2 max-pool.
    - ``convs_per_block``: convolutions per block.
    - ``batch_norm``: batch normalisation after each convolution (then no bias).
    - ``output``: ``"flatten"`` (the spatial layout kept) or ``"gap"`` (global average pool).
    - ``dense``: units of a dense layer (ReLU) on top; 0: none.
    """
    filters: tuple[int, ...] = (32, 64, 128)
    kernels: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    convs_per_block: int = num(1, 1, 4)
    batch_norm: bool = False
    output: Literal["flatten", "gap"] = "flatten"
    dense: int = num(0, 0)

    def validate(self):
        # Not ranges: a non-empty list, and per-block lists as long as ``filters``.
        if not self.filters or min(self.filters) < 1:
            raise ValueError("filters must be a non-empty list of positive integers")
        for name in ("kernels", "strides"):
            v = getattr(self, name)
            if v and (len(v) != len(self.filters) or min(v) < 1):
                raise ValueError(f"{name} must list one positive integer per block ({len(self.filters)})")


@register("encoder", "convnet", ConvNetParams)
def build_convnet(p: ConvNetParams, input_shape) -> keras.Model:
    inp = keras.Input(shape=input_shape, name="images")
    x = inp
    taps = []
    for b, f in enumerate(p.filters, start=1):
        kernel = p.kernels[b - 1] if p.kernels else 3
        stride = p.strides[b - 1] if p.strides else 1
        for c in range(1, p.convs_per_block + 1):
            name = f"conv{b}" if p.convs_per_block == 1 else f"conv{b}_{c}"
            x = keras.layers.Conv2D(f, kernel, strides=stride if c == 1 else 1, padding="same",
                                    use_bias=not p.batch_norm, kernel_initializer="he_normal",
                                    name=name)(x)
            if p.batch_norm:
                x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
        if stride > 1:
            taps.append(f"{name}_relu")
            continue
        pad = ceil_pool_padding(x.shape[1], 2, 2)
        if pad:
            x = keras.layers.ZeroPadding2D(((0, pad), (0, pad)), name=f"pool{b}_pad")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{b}")(x)
        taps.append(f"pool{b}")
    if p.output == "gap":
        x = keras.layers.GlobalAveragePooling2D(name="gap" if p.dense else "features")(x)
    else:
        x = keras.layers.Flatten(name="flatten" if p.dense else "features")(x)
    if p.dense:
        x = keras.layers.Dense(p.dense, activation="relu", name="features")(x)
    model = keras.Model(inp, x, name="convnet")
    model.taps = tuple(taps) + ("features",)
    return model
