"""The thesis's KITTI base network, AlexNet-style: "C96-P-C256-P-C384-C384-C256-P".

Agrawal, Carreira, Malik 2015 (and the 2017 thesis reproducing it) train the siamese towers
of their KITTI and SF experiments with AlexNet's convolutional part (Krizhevsky et al.
2012, Caffe's "CaffeNet" ordering: pool before LRN):

    conv1 96 11x11 stride 4, ReLU, max-pool 3/2, LRN
    conv2 256 5x5 pad 2, 2 groups, ReLU, max-pool 3/2, LRN
    conv3 384 3x3 pad 1, ReLU
    conv4 384 3x3 pad 1, 2 groups, ReLU
    conv5 256 3x3 pad 1, 2 groups, ReLU, max-pool 3/2

On a 227x227 crop: 55x55x96 -> 27x27x96 -> 27x27x256 -> 13x13x256 -> 13x13x384 (x2) ->
13x13x256 -> 6x6x256 (9,216 features); 2,334,080 convolution weights and biases at
``width`` 1. Pools round up as Caffe's do (:func:`.layers.ceil_pool_padding`), so any input
of at least 11 px gives at least one output cell. ``width`` scales every layer's filters
(rounded to a multiple of the groups): 0.25 is a CPU-sized variant of the same shape.

Taps for the per-layer transfer (the thesis's softmax on each of L1..L5): ``norm1``,
``norm2``, ``conv3``, ``conv4``, ``pool5`` (``features`` is ``pool5`` flattened, or its
global average with ``features: "gap"``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import keras

from keras_ssl.config import num
from keras_ssl.encoders.bcnn import _init, _pool
from keras_ssl.encoders.layers import GroupedConv2D, LocalResponseNorm
from keras_ssl.registry import Params, register

#: (name, filters at width 1, kernel, stride, groups, pooled and normalised after).
LAYERS = (("conv1", 96, 11, 4, 1), ("conv2", 256, 5, 1, 2), ("conv3", 384, 3, 1, 1),
          ("conv4", 384, 3, 1, 2), ("conv5", 256, 3, 1, 2))


@dataclass(frozen=True)
class AlexNetParams(Params):
    """The KITTI base network (module docstring).

    - ``width``: multiplier of every layer's filter count (1: the thesis's 96-256-384-384-256).
    - ``lrn``: the local response normalisation after pool1 and pool2.
    - ``init``: ``"caffe"`` N(0, 0.01) weights, conv2/conv4/conv5 biases 0.1 (as the BCNN's;
      AlexNet's Caffe model sets them to 1) or ``"he"`` (He normal, biases 0).
    - ``features``: ``"last"``: pool5 flattened (6x6x256 on 227 px); ``"gap"``: pool5
      averaged over space (256 at width 1), for inputs whose pool5 is large.
    - ``conv1_stride``: conv1's stride (the thesis: 4). On small CPU-size inputs a stride
      of 2 keeps the spatial detail motion is seen in: 64 px at stride 4 leaves pool5 at
      1x1, at stride 2 at 3x3 (docs/sequences.md, "What learns").
    """
    width: float = num(1.0, 0.01, 4.0)
    lrn: bool = True
    init: Literal["caffe", "he"] = "caffe"
    features: Literal["last", "gap"] = "last"
    conv1_stride: int = num(4, 1)


def filters(p: AlexNetParams) -> list[int]:
    """Each layer's filter count at ``p.width``, a multiple of its groups (at least one per group)."""
    return [max(g, int(round(f * p.width / g)) * g) for _, f, _, _, g in LAYERS]


@register("encoder", "alexnet", AlexNetParams)
def build_alexnet(p: AlexNetParams, input_shape) -> keras.Model:
    if min(input_shape[:2]) < 11:
        raise ValueError(f"alexnet needs images of at least 11x11 px (conv1's kernel), got "
                         f"{input_shape[0]}x{input_shape[1]}")
    inp = keras.Input(shape=input_shape, name="images")
    x = inp
    bias = keras.initializers.Constant(0.1 if p.init == "caffe" else 0.0)
    for (name, _, k, stride, groups), f in zip(LAYERS, filters(p)):
        conv = keras.layers.Conv2D if groups == 1 else GroupedConv2D
        kw = {} if groups == 1 else {"groups": groups}
        if name == "conv1":
            stride = p.conv1_stride
        x = conv(f, k, strides=stride, padding="valid" if name == "conv1" else "same",
                 activation="relu", kernel_initializer=_init(p.init),
                 bias_initializer="zeros" if name in ("conv1", "conv3") else bias, name=name, **kw)(x)
        n = name[-1]
        if name in ("conv1", "conv2", "conv5"):
            x = _pool(x, f"pool{n}")
        if name in ("conv1", "conv2") and p.lrn:
            x = LocalResponseNorm(name=f"norm{n}")(x)
    if p.features == "gap":
        out = keras.layers.GlobalAveragePooling2D(name="features")(x)
    else:
        out = keras.layers.Flatten(name="features")(x)
    model = keras.Model(inp, out, name="alexnet")
    model.taps = ("norm1" if p.lrn else "pool1", "norm2" if p.lrn else "pool2", "conv3", "conv4",
                  "pool5", "features")
    return model
