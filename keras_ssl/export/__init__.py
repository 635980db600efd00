"""Export a trained encoder as a SavedModel that TF Serving loads unchanged.

Layout written (TF Serving's model directory convention)::

    <base_path>/<model_name>/<version>/
        saved_model.pb
        variables/
        assets.extra/
            config.json                  resolved training config (when given)
            preprocessing.json           input contract, signatures, outputs
            tf_serving_warmup_requests   TFRecord of PredictionLog (warm-up)

Signatures (both with an unknown batch dimension, as TF Serving's batching
needs):

- ``serving_default``: input ``images`` float32 ``[-1, H, W, C]`` in [0, 1];
  outputs ``features`` float32 ``[-1, D]`` plus one output per tap.
- ``image_bytes``: input ``image_bytes`` string ``[-1]`` holding encoded
  PNG/JPEG/GIF/BMP/WebP; decoded in the graph (first frame), converted to the
  model's channels (RGB <-> grayscale, alpha dropped), resized to H x W
  (bilinear, only when the size differs), scaled to [0, 1]; same outputs.

Taps: each name in ``taps`` is a layer of the encoder; its output is returned
under the layer's name, **flattened to float32 [-1, N]** (row-major over the
layer's own H, W, C); ``preprocessing.json`` records every tap's unflattened
shape so a client can reshape.

The encoder is always called with ``training=False`` (pitfall: exporting a
model with active augmentation/dropout gives different features for the same
request). A version is written to a hidden temporary directory beside its
final place and renamed into place, so a server polling ``base_path`` never
sees a half-written version; existing versions are never overwritten.

CLI (:mod:`keras_ssl.export.__main__`)::

    python -m keras_ssl.export --run-dir RUN [--model-name NAME] [--base-path DIR]
"""
from keras_ssl.export.contract import validate_model_name
from keras_ssl.export.runs import export_run, load_run
from keras_ssl.export.signatures import decode_image_bytes
from keras_ssl.export.writer import ExportError, existing_versions, export_encoder, next_version

__all__ = ["ExportError", "decode_image_bytes", "existing_versions", "export_encoder", "export_run",
           "load_run", "next_version", "validate_model_name"]
