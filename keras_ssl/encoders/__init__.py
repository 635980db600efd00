"""Encoders: plain Keras functional models, image -> features.

They know nothing about self-supervision (DESIGN principle 1). Contract:

- input ``keras.Input(shape=(H, W, C), name="images")``, float32 in [0, 1];
- output: float32 [batch, D] from the layer named ``features``;
- every layer named, so that evaluation and export can tap any of them;
- ``model.taps``: names of the layers that linear probes and export taps use
  by default, in order.

Custom layers are registered with Keras (package ``keras_ssl``), so
``keras.models.load_model`` works after ``import keras_ssl.encoders``.
"""
from __future__ import annotations

import keras

from keras_ssl import registry
from keras_ssl.encoders import layers  # noqa: F401  (registers custom layers)


def build_encoder(component, input_shape) -> keras.Model:
    """Build the registered encoder ``component.name`` for ``input_shape`` (H, W, C)."""
    return registry.build("encoder", component, tuple(input_shape))


def tap_outputs(encoder: keras.Model, names) -> keras.Model:
    """A model mapping images to the flattened outputs of the named layers."""
    known = [l.name for l in encoder.layers]
    outs = []
    for n in names:
        if n not in known:
            raise ValueError(f"unknown layer {n!r} of encoder {encoder.name}; layers: {', '.join(known)}")
        outs.append(keras.layers.Flatten(name=f"{n}_flat")(encoder.get_layer(n).output))
    return keras.Model(encoder.inputs, outs, name=f"{encoder.name}_taps")
