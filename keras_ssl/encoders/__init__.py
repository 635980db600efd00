"""Encoders: plain Keras functional models, image -> features.

They know nothing about self-supervision (DESIGN principle 1). Contract:

- input ``keras.Input(shape=(H, W, C), name="images")``, float32 in [0, 1];
- output: float32 [batch, D] from the layer named ``features``;
- every layer named, so that evaluation and export can tap any of them;
- ``model.taps``: names of the layers that linear probes and export taps use
  by default, in order.

Custom layers are registered with Keras (package ``keras_ssl``), so
``keras.models.load_model`` works after ``import keras_ssl.encoders``.

Input transforms: a pretext whose views are not the images themselves but a fixed
function of them (colorization's L channel: ``Pretext.input_transform``) gets an
encoder built for its views and preceded by that function, a layer named
:data:`INPUT_LAYER` (:func:`build_encoder`). That whole model is *the* encoder: it
takes the images of the data (what evaluation and export feed it, e.g. RGB) and every
layer of the inner encoder is one of its own, so taps, saving and export work as for
any encoder. Methods train :func:`view_encoder`, the part from the views on, which
shares its layers.
"""
from __future__ import annotations

import keras

from keras_ssl import registry
from keras_ssl.colour import layers as _colour_layers  # noqa: F401  (registers LabInput)
from keras_ssl.encoders import layers  # noqa: F401  (registers custom layers)

#: The name of the input transform's layer in an encoder built with one.
INPUT_LAYER = "encoder_input"


def fresh_layers(prefix: str = ""):
    """An ``operation_fn`` for ``Functional._run_through_graph``: each layer replaced by a
    fresh one of the same config (new weights), named ``prefix + name``."""
    def fresh(layer):
        cfg = layer.get_config()
        cfg["name"] = prefix + layer.name
        return layer.__class__.from_config(cfg)
    return fresh


def rebuild_on(encoder: keras.Model, x, prefix: str = ""):
    """The graph of functional ``encoder`` rebuilt with fresh layers (same configs, new
    weights, names prefixed by ``prefix``) on the symbolic tensor ``x``; its output.
    The layers become the caller's model's own (top-level: taps reach them)."""
    # Keras 3's own graph walk (keras==3.15.1 pinned); the layers are called on x in
    # topological order, as clone_model does, but on a tensor that is not an Input.
    return encoder._run_through_graph(x, operation_fn=fresh_layers(prefix))


def build_encoder(component, input_shape, input_transform: keras.layers.Layer | None = None) -> keras.Model:
    """Build the registered encoder ``component.name`` for images of ``input_shape``
    (H, W, C). With ``input_transform`` (a layer mapping those images to the views the
    encoder is trained on), the encoder is built for the transform's output shape and
    preceded by a fresh copy of the transform, named :data:`INPUT_LAYER`; the model
    takes ``input_shape`` images and keeps the inner encoder's name, layers and taps."""
    if input_transform is None:
        return registry.build("encoder", component, tuple(input_shape))
    transform = input_transform.__class__.from_config({**input_transform.get_config(), "name": INPUT_LAYER})
    view_shape = tuple(transform.compute_output_shape((None, *input_shape))[1:])
    inner = registry.build("encoder", component, view_shape)
    inp = keras.Input(shape=tuple(input_shape), name="images")
    model = keras.Model(inp, rebuild_on(inner, transform(inp)), name=inner.name)
    model.taps = tuple(getattr(inner, "taps", ()))
    return model


def input_transform_of(encoder: keras.Model) -> keras.layers.Layer | None:
    """The input transform an encoder was built with (its :data:`INPUT_LAYER`), or None."""
    names = {l.name for l in encoder.layers}
    return encoder.get_layer(INPUT_LAYER) if INPUT_LAYER in names else None


def view_encoder(encoder: keras.Model) -> keras.Model:
    """The part of ``encoder`` a method trains on the pretext's views: the model from its
    input transform's output to its features, sharing every layer (``encoder`` itself
    when it has no input transform)."""
    transform = input_transform_of(encoder)
    if transform is None:
        return encoder
    model = keras.Model(transform.output, encoder.output, name=f"{encoder.name}_views")
    model.taps = tuple(getattr(encoder, "taps", ()))
    return model


def tap_outputs(encoder: keras.Model, names) -> keras.Model:
    """A model mapping images to the flattened outputs of the named layers."""
    known = [l.name for l in encoder.layers]
    outs = []
    for n in names:
        if n not in known:
            raise ValueError(f"unknown layer {n!r} of encoder {encoder.name}; layers: {', '.join(known)}")
        outs.append(keras.layers.Flatten(name=f"{n}_flat")(encoder.get_layer(n).output))
    return keras.Model(encoder.inputs, outs, name=f"{encoder.name}_taps")
