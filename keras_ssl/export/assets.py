"""``assets.extra/`` of a version: TF Serving's warm-up requests and our
preprocessing contract (``preprocessing.json``)."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

from keras_ssl.export.contract import (BYTES_INPUT, BYTES_SIGNATURE, FEATURES_OUTPUT, IMAGES_INPUT,
                                       MAX_IMAGE_PIXELS, SERVING_SIGNATURE)


def _png_bytes(h: int, w: int, c: int) -> bytes:
    import numpy as np
    import tensorflow as tf

    ramp = np.linspace(0, 255, h * w, dtype=np.float32).reshape(h, w, 1)
    img = np.repeat(ramp, 3 if c == 1 else c, axis=-1).astype(np.uint8)
    return tf.io.encode_png(img).numpy()

def write_warmup_requests(path: Path, model_name: str, h: int, w: int, c: int,
                          with_bytes: bool) -> int:
    """TF Serving warm-up file: TFRecord of ``PredictionLog`` with PredictRequests."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    requests = []
    for n in (1, 8):
        x = np.full((n, h, w, c), 0.5, np.float32)
        req = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SERVING_SIGNATURE))
        req.inputs[IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(x))
        requests.append(req)
    if with_bytes:
        req = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=BYTES_SIGNATURE))
        req.inputs[BYTES_INPUT].CopyFrom(
            tf.make_tensor_proto([_png_bytes(h, w, c)], dtype=tf.string))
        requests.append(req)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for req in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=req))
            writer.write(log.SerializeToString())
    return len(requests)

def preprocessing_contract(model_name, version, geometry, outputs_shapes, with_bytes, taps):
    import keras
    import tensorflow as tf

    h, w, c = geometry
    outputs = {
        name: {"dtype": "float32", "shape": [-1, int(_prod(shape))],
               **({"layer": name, "layer_shape": [-1, *shape]} if name != FEATURES_OUTPUT else {})}
        for name, shape in outputs_shapes.items()}
    sigs = {
        SERVING_SIGNATURE: {
            "inputs": {IMAGES_INPUT: {"dtype": "float32", "shape": [-1, h, w, c],
                                      "range": [0.0, 1.0], "layout": "NHWC"}},
            "outputs": outputs,
        }}
    if with_bytes:
        sigs[BYTES_SIGNATURE] = {
            "inputs": {BYTES_INPUT: {"dtype": "string", "shape": [-1],
                                     "formats": ["png", "jpeg", "gif", "bmp", "webp"],
                                     "max_pixels": MAX_IMAGE_PIXELS}},
            "preprocessing": [
                f"refuse (INVALID_ARGUMENT, before decoding) an image whose header is not one of "
                f"the formats or declares more than {MAX_IMAGE_PIXELS} pixels (width x height; "
                f"GIF: also its frames together)",
                "tf.io.decode_image(expand_animations=False): first frame",
                {1: "RGB(A) -> grayscale (ITU-R 601 luma); alpha dropped",
                 3: "grayscale -> RGB (replicated); alpha dropped",
                 4: "-> RGBA (opaque alpha added when missing)"}[c],
                f"bilinear resize (antialias) to {h}x{w} when the size differs",
                "scale to float32 [0, 1]",
            ],
            "outputs": outputs,
        }
    return {
        "format_version": 1,
        "model_name": model_name,
        "version": version,
        "input": {"height": h, "width": w, "channels": c, "dtype": "float32",
                  "range": [0.0, 1.0], "layout": "NHWC",
                  "color": {1: "grayscale", 3: "rgb", 4: "rgba"}.get(c, f"{c}-channel")},
        "signatures": sigs,
        "taps": list(taps),
        "taps_flattened": True,
        "inference_mode": "training=False",
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }

def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
