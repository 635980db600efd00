"""The serving module: the encoder in inference mode behind two signatures
(``serving_default`` on float images, ``image_bytes`` on encoded files)."""
from __future__ import annotations

from typing import Sequence

from keras_ssl.export.contract import (BYTES_INPUT, BYTES_SIGNATURE, FEATURES_OUTPUT, IMAGES_INPUT,
                                       MAX_IMAGE_PIXELS, SERVING_SIGNATURE)
from keras_ssl.export.image_header import check_image_header


def input_geometry(encoder) -> tuple[int, int, int]:
    if len(encoder.inputs) != 1:
        raise ValueError(f"encoder must have exactly one image input, has {len(encoder.inputs)}")
    shape = tuple(encoder.inputs[0].shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ValueError(f"encoder input must be [batch, H, W, C] with known H, W, C; got {shape}")
    _, h, w, c = shape
    return int(h), int(w), int(c)

def _feature_model(encoder, taps: Sequence[str]):
    """A functional model returning ``{"features": ..., tap: ...}``."""
    import keras

    names = [layer.name for layer in encoder.layers]
    outputs = {FEATURES_OUTPUT: encoder.outputs[0]}
    for tap in taps:
        if tap not in names:
            raise ValueError(f"unknown tap layer {tap!r}; encoder layers: {', '.join(names)}")
        if tap == FEATURES_OUTPUT:
            # A layer named "features" that produces the encoder's output is
            # already the ``features`` output; any other one would collide.
            if encoder.get_layer(tap).output is encoder.outputs[0]:
                continue
            raise ValueError(f"tap name {tap!r} collides with the '{FEATURES_OUTPUT}' output")
        if tap in outputs:
            raise ValueError(f"tap {tap!r} listed twice")
        try:
            outputs[tap] = encoder.get_layer(tap).output
        except (AttributeError, ValueError) as e:
            raise ValueError(f"tap layer {tap!r} has no single output to export: {e}") from None
    if len(encoder.outputs) != 1:
        raise ValueError(f"encoder must have exactly one output (features), has {len(encoder.outputs)}")
    model = keras.Model(inputs=encoder.inputs[0], outputs=outputs, name=f"{encoder.name}_serving")
    model.output_names_ordered = tuple(outputs)  # "features" first, then the taps
    return model

def _flatten(t):
    import tensorflow as tf

    t = tf.cast(t, tf.float32)
    if t.shape.rank == 2:
        return t
    inner = t.shape[1:]
    n = inner.num_elements() if inner.is_fully_defined() else -1
    return tf.reshape(t, [-1, n]) if n != -1 else tf.reshape(t, [tf.shape(t)[0], -1])

def decode_image_bytes(data, height: int, width: int, channels: int,
                       max_pixels: int = MAX_IMAGE_PIXELS):
    """Decode one encoded image (scalar string) to float32 [H, W, C] in [0, 1].

    First refuses (InvalidArgumentError, before anything is decoded) an image
    whose header is not PNG/JPEG/GIF/BMP/WebP or declares more than
    ``max_pixels`` pixels (:func:`check_image_header`). Decodes it (first
    frame only), converts to ``channels``
    (1: luminance of RGB; 3: grayscale replicated; 4: RGBA with opaque alpha
    when the file has none), resizes bilinearly to H x W when the size
    differs. Corrupt data raises InvalidArgumentError (a 400 in TF Serving).
    """
    import tensorflow as tf

    if channels not in (1, 3, 4):
        raise ValueError(f"image_bytes supports models with 1, 3 or 4 channels, not {channels}")
    # The decoder only runs once the header check has passed (a control
    # dependency: an Assert is not otherwise ordered before a stateless op).
    with tf.control_dependencies([check_image_header(data, max_pixels)]):
        data = tf.identity(data)
    # channels=0 keeps the file's own channel count (1 gray, 2 gray+alpha,
    # 3 RGB, 4 RGBA), so a grayscale PNG reaches a grayscale model unchanged.
    # TensorFlow decodes WebP to uint8 only (asked for float32 it refuses the file):
    # decode it so and scale to [0, 1] as the float32 decode does for the others.
    head = tf.strings.join([tf.strings.substr(data, 0, 12), " " * 12])   # 12 bytes at least
    is_webp = tf.logical_and(tf.equal(tf.strings.substr(head, 0, 4), "RIFF"),
                             tf.equal(tf.strings.substr(head, 8, 4), "WEBP"))
    img = tf.cond(
        is_webp,
        lambda: tf.image.convert_image_dtype(
            tf.io.decode_image(data, channels=0, expand_animations=False), tf.float32),
        lambda: tf.io.decode_image(data, channels=0, dtype=tf.float32, expand_animations=False))
    n = tf.shape(img)[-1]
    has_color = n >= 3
    if channels == 1:
        img = tf.cond(has_color, lambda: tf.image.rgb_to_grayscale(img[..., :3]),
                      lambda: img[..., :1])
    else:
        rgb = tf.cond(has_color, lambda: img[..., :3],
                      lambda: tf.tile(img[..., :1], [1, 1, 3]))
        if channels == 3:
            img = rgb
        else:
            has_alpha = tf.logical_or(tf.equal(n, 2), tf.equal(n, 4))
            alpha = tf.cond(has_alpha, lambda: img[..., -1:], lambda: tf.ones_like(img[..., :1]))
            img = tf.concat([rgb, alpha], axis=-1)
    img.set_shape([None, None, channels])
    size = tf.shape(img)[:2]
    same = tf.reduce_all(tf.equal(size, tf.constant([height, width], tf.int32)))
    img = tf.cond(
        same,
        lambda: tf.image.resize_with_crop_or_pad(img, height, width),  # identity, fixes static shape
        lambda: tf.image.resize(img, [height, width], method="bilinear", antialias=True))
    img = tf.clip_by_value(img, 0.0, 1.0)
    img.set_shape([height, width, channels])
    return img

def build_archive(encoder, taps: Sequence[str]):
    import keras
    import tensorflow as tf

    h, w, c = input_geometry(encoder)
    model = _feature_model(encoder, taps)
    out_names = list(model.output_names_ordered)

    def run(images):
        outs = model(images, training=False)
        return {k: _flatten(outs[k]) for k in out_names}

    def serve_images(images):
        return run(images)

    def serve_bytes(image_bytes):
        images = tf.map_fn(
            lambda b: decode_image_bytes(b, h, w, c), image_bytes,
            fn_output_signature=tf.TensorSpec([h, w, c], tf.float32))
        return run(images)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SERVING_SIGNATURE, fn=serve_images,
        input_signature=[tf.TensorSpec([None, h, w, c], tf.float32, name=IMAGES_INPUT)])
    if c in (1, 3, 4):
        archive.add_endpoint(
            name=BYTES_SIGNATURE, fn=serve_bytes,
            input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_INPUT)])
    return archive, tuple(out_names[1:]), (h, w, c)
