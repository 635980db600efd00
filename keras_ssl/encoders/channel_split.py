"""One encoder per group of input channels, features side by side: the architecture of
split-brain autoencoders (Zhang, Isola, Efros 2017, "Split-Brain Autoencoders:
Unsupervised Learning by Cross-Channel Prediction"), whose two halves see disjoint
channels of the image (L and ab) and whose representation is the concatenation of the
halves' features.

For input (H, W, C) and ``groups`` (c1, c2, ...) summing to C: group g reads channels
``c1 + .. + c_{g-1}`` onward (layer ``<name>_input``, a
:class:`~keras_ssl.encoders.layers.ChannelSlice`) and is a fresh build of ``encoder`` for
(H, W, c_g) whose layers are prefixed ``<name>_`` (``L_conv1``, ``L_features``, ...);
``features`` concatenates the groups' features in order. Taps: each group's taps,
prefixed. Nothing here is self-supervised: method ``split_brain`` trains the halves on
cross-channel prediction (it finds them by these layer names). The paper splits every
layer's channels in half: give ``encoder`` half the filters of the single-network one.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras

from keras_ssl import registry
from keras_ssl.config import Component, ConfigError, component
from keras_ssl.encoders import rebuild_on
from keras_ssl.encoders.layers import ChannelSlice
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class ChannelSplitParams(Params):
    """The groups (module docstring).

    - ``encoder``: the encoder built once per group (by name, or its whole config).
    - ``groups``: the number of input channels of each group, in channel order (their sum
      must be the input's channels; split-brain on Lab: ``[1, 2]``, L and ab).
    - ``group_names``: one name per group, the prefix of its layers (``["L", "ab"]``).
    """
    encoder: Component = component("encoder", "bcnn")
    groups: tuple[int, ...] = (1, 2)
    group_names: tuple[str, ...] = ("L", "ab")

    def validate(self):
        if len(self.groups) < 2 or any(int(g) < 1 for g in self.groups):
            raise ValueError(f"groups must be 2 or more positive channel counts, got {list(self.groups)}")
        if len(self.group_names) != len(self.groups) or len(set(self.group_names)) != len(self.groups):
            raise ValueError(f"group_names must be {len(self.groups)} distinct names, one per group, "
                             f"got {list(self.group_names)}")
        if self.encoder.name == "channel_split":
            raise ValueError("encoder must not be 'channel_split' itself")


@register("encoder", "channel_split", ChannelSplitParams)
def build_channel_split(p: ChannelSplitParams, input_shape) -> keras.Model:
    p.validate()
    h, w, c = input_shape
    if sum(p.groups) != c:
        raise ConfigError(f"encoder.groups {list(p.groups)} sum to {sum(p.groups)} channels, but the "
                          f"encoder's input has {c} (data.channels, or the pretext's views)")
    inp = keras.Input(shape=tuple(input_shape), name="images")
    feats, taps, start = [], [], 0
    for g, name in zip(p.groups, p.group_names):
        inner = registry.build("encoder", p.encoder, (h, w, int(g)))
        part = ChannelSlice(start, start + int(g), name=f"{name}_input")(inp)
        feats.append(rebuild_on(inner, part, prefix=f"{name}_"))
        taps += [f"{name}_{t}" for t in getattr(inner, "taps", ())]
        start += int(g)
    out = keras.layers.Concatenate(name="features")(feats)
    model = keras.Model(inp, out, name="channel_split")
    model.taps = tuple(taps)
    return model
