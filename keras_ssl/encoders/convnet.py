"""A small VGG-style convnet: blocks of 3x3 convs, each block ending in a 2x2
max-pool (ceil mode), optional batch norm, flattened output (spatial layout
kept: egomotion needs to know *where* things are)."""
from __future__ import annotations

from dataclasses import dataclass

import keras

from keras_ssl.config import num
from keras_ssl.encoders.layers import ceil_pool_padding
from keras_ssl.registry import register


@dataclass(frozen=True)
class ConvNetParams:
    filters: tuple[int, ...] = (32, 64, 128)
    convs_per_block: int = num(1, 1, 4)
    batch_norm: bool = False
    output: str = "flatten"      # "flatten" or "gap" (global average pool)
    dense: int = num(0, 0)       # optional dense layer (ReLU) on top, 0 = none

    def validate(self):
        if not self.filters or min(self.filters) < 1:
            raise ValueError("filters must be a non-empty list of positive integers")
        if self.output not in ("flatten", "gap"):
            raise ValueError(f"output must be 'flatten' or 'gap', got {self.output!r}")


@register("encoder", "convnet", ConvNetParams)
def build_convnet(p: ConvNetParams, input_shape) -> keras.Model:
    inp = keras.Input(shape=input_shape, name="images")
    x = inp
    taps = []
    for b, f in enumerate(p.filters, start=1):
        for c in range(1, p.convs_per_block + 1):
            name = f"conv{b}" if p.convs_per_block == 1 else f"conv{b}_{c}"
            x = keras.layers.Conv2D(f, 3, padding="same", use_bias=not p.batch_norm,
                                    kernel_initializer="he_normal", name=name)(x)
            if p.batch_norm:
                x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
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
