"""Colour: sRGB <-> CIE Lab in TensorFlow ops (:mod:`.lab`), the quantised ab space of
colorization (:mod:`.bins`: in-gamut bins, soft encoding, class rebalancing) and the
Keras layer that feeds an encoder the Lab channels it sees (:mod:`.layers`).
``docs/colour.md`` describes them and the two methods that use them."""
from keras_ssl.colour.lab import lab_to_rgb, rgb_to_lab  # noqa: F401
