"""The thesis's base network (BCNN), "C96-P-C256-P".

conv1 96 11x11 stride 4, ReLU, max-pool 3/2, LRN; conv2 256 5x5 pad 2 in 2
groups, ReLU, max-pool 3/2, LRN. Caffe pools round up: on 28x28 input the
output is 1x1x256. Init N(0, 0.01) for conv weights as in the Caffe model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import keras

from keras_ssl.config import num
from keras_ssl.encoders.layers import GroupedConv2D, LocalResponseNorm, ceil_pool_padding
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class BCNNParams(Params):
    """The thesis's BCNN (module docstring); defaults are the Caffe model's.

    - ``conv1_filters``, ``conv1_kernel``, ``conv1_stride``: conv1's channels,
      kernel side (pixels) and stride (pixels).
    - ``conv2_filters``, ``conv2_kernel``: conv2's channels and kernel side
      (pixels; "same" padding); ``conv2_groups``: its groups (must divide both
      filter counts).
    - ``lrn``: the local response normalisation after each pool.
    - ``init``: ``"caffe"`` N(0, 0.01) conv weights (conv2 bias 0.1) or ``"he"`` (He normal, bias 0).
    - ``features``: ``"last"``, the thesis's output, conv2's block (1x1x256 on
      MNIST); ``"multiscale"``: conv1's block (2x2x96, spatial layout kept) and
      conv2's side by side, so a frozen head sees both scales.
    """
    conv1_filters: int = num(96, 1)
    conv1_kernel: int = num(11, 1)
    conv1_stride: int = num(4, 1)
    conv2_filters: int = num(256, 1)
    conv2_kernel: int = num(5, 1)
    conv2_groups: int = num(2, 1)
    lrn: bool = True
    init: Literal["caffe", "he"] = "caffe"
    features: Literal["last", "multiscale"] = "last"

    def validate(self):
        for f in (self.conv1_filters, self.conv2_filters):
            if f % self.conv2_groups:
                raise ValueError(f"conv2_groups={self.conv2_groups} must divide the filter counts")


def _init(kind):
    if kind == "caffe":
        return keras.initializers.RandomNormal(0.0, 0.01)
    return keras.initializers.HeNormal()


def _pool(x, name, pool=3, stride=2):
    h = x.shape[1]
    pad = ceil_pool_padding(h, pool, stride)
    if pad:  # after ReLU values are >= 0, so zero padding equals Caffe's ceil mode
        x = keras.layers.ZeroPadding2D(((0, pad), (0, pad)), name=f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(pool, stride, name=name)(x)


@register("encoder", "bcnn", BCNNParams)
def build_bcnn(p: BCNNParams, input_shape) -> keras.Model:
    inp = keras.Input(shape=input_shape, name="images")
    x = keras.layers.Conv2D(p.conv1_filters, p.conv1_kernel, strides=p.conv1_stride,
                            activation="relu", kernel_initializer=_init(p.init), name="conv1")(inp)
    x = _pool(x, "pool1")
    if p.lrn:
        x = LocalResponseNorm(name="norm1")(x)
    block1 = x
    x = GroupedConv2D(p.conv2_filters, p.conv2_kernel, padding="same", groups=p.conv2_groups,
                            activation="relu", kernel_initializer=_init(p.init),
                            bias_initializer=keras.initializers.Constant(0.1 if p.init == "caffe" else 0.0),
                            name="conv2")(x)
    x = _pool(x, "pool2")
    if p.lrn:
        x = LocalResponseNorm(name="norm2")(x)
    if p.features == "multiscale":
        out = keras.layers.Concatenate(name="features")([
            keras.layers.Flatten(name="block1_flat")(block1),
            keras.layers.Flatten(name="block2_flat")(x)])
    else:
        out = keras.layers.Flatten(name="features")(x)
    model = keras.Model(inp, out, name="bcnn")
    model.taps = ("conv1", "norm1" if p.lrn else "pool1", "conv2", "norm2" if p.lrn else "pool2",
                  "features")
    return model
