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

CLI::

    python -m keras_ssl.export --run-dir RUN [--model-name NAME] [--base-path DIR]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Iterable, Sequence

from keras_ssl.config import ConfigError, read_json_object

#: Model names allowed in directory names and URLs (also enforced by serve.py).
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_VERSION_DIR_RE = re.compile(r"^[0-9]{1,18}$")

SERVING_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "image_bytes"
IMAGES_INPUT = "images"
BYTES_INPUT = "image_bytes"
FEATURES_OUTPUT = "features"
WARMUP_FILE = "tf_serving_warmup_requests"
PREPROCESSING_FILE = "preprocessing.json"
CONFIG_FILE = "config.json"


class ExportError(RuntimeError):
    """An export that cannot be written (bad target, existing version...)."""


# --------------------------------------------------------------------------
# Version directories
# --------------------------------------------------------------------------

def existing_versions(model_dir: str | os.PathLike) -> list[int]:
    """Sorted integer versions found as numeric sub-directories of ``model_dir``."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    out = []
    for p in model_dir.iterdir():
        if p.is_dir() and _VERSION_DIR_RE.match(p.name):
            out.append(int(p.name))
    return sorted(out)


def next_version(model_dir: str | os.PathLike) -> int:
    """1 + highest existing numeric version (1 when there is none)."""
    versions = existing_versions(model_dir)
    return (versions[-1] + 1) if versions else 1


def validate_model_name(name: str) -> str:
    if not isinstance(name, str) or not MODEL_NAME_RE.match(name):
        raise ValueError(
            f"invalid model name {name!r}: use 1-128 characters from "
            "[A-Za-z0-9_.-], starting with a letter or digit")
    return name


# --------------------------------------------------------------------------
# Building the serving module
# --------------------------------------------------------------------------

def _input_geometry(encoder) -> tuple[int, int, int]:
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


def decode_image_bytes(data, height: int, width: int, channels: int):
    """Decode one encoded image (scalar string) to float32 [H, W, C] in [0, 1].

    Decodes PNG/JPEG/GIF/BMP (first frame only), converts to ``channels``
    (1: luminance of RGB; 3: grayscale replicated; 4: RGBA with opaque alpha
    when the file has none), resizes bilinearly to H x W when the size
    differs. Corrupt data raises InvalidArgumentError (a 400 in TF Serving).
    """
    import tensorflow as tf

    if channels not in (1, 3, 4):
        raise ValueError(f"image_bytes supports models with 1, 3 or 4 channels, not {channels}")
    # channels=0 keeps the file's own channel count (1 gray, 2 gray+alpha,
    # 3 RGB, 4 RGBA), so a grayscale PNG reaches a grayscale model unchanged.
    img = tf.io.decode_image(data, channels=0, dtype=tf.float32, expand_animations=False)
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


def _build_archive(encoder, taps: Sequence[str]):
    import keras
    import tensorflow as tf

    h, w, c = _input_geometry(encoder)
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


# --------------------------------------------------------------------------
# assets.extra
# --------------------------------------------------------------------------

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


def _preprocessing_contract(model_name, version, geometry, outputs_shapes, with_bytes, taps):
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
                                     "formats": ["png", "jpeg", "gif", "bmp", "webp"]}},
            "preprocessing": [
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


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

def export_encoder(encoder, base_path, model_name: str, *, config: dict | None = None,
                   taps: Iterable[str] = (), version: int | None = None) -> Path:
    """Export ``encoder`` to ``<base_path>/<model_name>/<version>/`` and return that path.

    ``version``: None picks 1 + the highest existing numeric version (1 if
    none); an explicit version that already exists raises :class:`ExportError`.
    ``taps``: encoder layer names exported as extra outputs (flattened to
    float32 [-1, N]); an unknown name raises ValueError listing the layers.
    ``config``: the resolved training config (a JSON-able dict, or an
    ``ExperimentConfig``), saved to ``assets.extra/config.json``.
    """
    taps = tuple(taps or ())
    validate_model_name(model_name)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        raise ValueError(f"version must be a non-negative integer, got {version!r}")
    model_dir = Path(base_path) / model_name
    if version is not None and (model_dir / str(version)).exists():
        raise ExportError(f"version {version} already exists at {model_dir / str(version)}; "
                          "versions are never overwritten")
    if config is not None:
        if not isinstance(config, dict):  # an ExperimentConfig: store its resolved dict
            from keras_ssl.config import to_dict

            config = to_dict(config)
        try:
            config_text = json.dumps(config, indent=2) + "\n"  # fail before any file is written
        except (TypeError, ValueError) as e:
            raise ValueError(f"config is not JSON-serialisable: {e}") from None

    archive, taps, geometry = _build_archive(encoder, taps)
    h, w, c = geometry
    with_bytes = c in (1, 3, 4)
    outputs_shapes = {FEATURES_OUTPUT: tuple(int(d) for d in encoder.outputs[0].shape[1:])}
    for tap in taps:
        outputs_shapes[tap] = tuple(int(d) for d in encoder.get_layer(tap).output.shape[1:])

    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=model_dir))
    try:
        target_version = version if version is not None else next_version(model_dir)
        # Silence ExportArchive's variable listing; keep stdout clean for CLIs.
        archive.write_out(str(tmp), verbose=False)
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        if config is not None:
            (extra / CONFIG_FILE).write_text(config_text)
        write_warmup_requests(extra / WARMUP_FILE, model_name, h, w, c, with_bytes)
        while True:
            contract = _preprocessing_contract(model_name, target_version, geometry,
                                               outputs_shapes, with_bytes, taps)
            (extra / PREPROCESSING_FILE).write_text(json.dumps(contract, indent=2) + "\n")
            final = model_dir / str(target_version)
            if final.exists():
                if version is not None:
                    raise ExportError(f"version {version} already exists at {final}")
                target_version = next_version(model_dir)  # a concurrent export took it
                continue
            try:
                os.rename(tmp, final)  # atomic on one filesystem
            except OSError:
                if version is not None:
                    raise ExportError(f"version {version} appeared at {final} during export") from None
                target_version = next_version(model_dir)
                continue
            return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_run(run_dir: str | os.PathLike):
    """(encoder, config dict) of a finished run directory; raises ExportError with a clear message."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"run directory not found: {run_dir}")
    enc_path = run_dir / "encoder.keras"
    if not enc_path.is_file():
        raise ExportError(f"no trained encoder at {enc_path} (did training finish?)")
    try:
        config = read_json_object(run_dir / CONFIG_FILE, "resolved config")
    except ConfigError as e:
        raise ExportError(str(e)) from None
    import keras

    try:  # registers the project's custom layers (package "keras_ssl")
        import keras_ssl.encoders  # noqa: F401
    except ImportError:
        pass
    try:
        encoder = keras.models.load_model(enc_path, compile=False)
    except Exception as e:  # noqa: BLE001 - report any load failure plainly
        raise ExportError(f"cannot load encoder {enc_path}: {type(e).__name__}: {e}") from None
    return encoder, config


def _check_config_geometry(encoder, config: dict) -> None:
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    h, w, c = _input_geometry(encoder)
    size, ch = data.get("image_size"), data.get("channels")
    if size is not None and (size != h or size != w):
        raise ExportError(f"config data.image_size={size} but the encoder takes {h}x{w} images")
    if ch is not None and ch != c:
        raise ExportError(f"config data.channels={ch} but the encoder takes {c} channels")


def export_run(run_dir, model_name: str | None = None, base_path=None,
               taps: Sequence[str] | None = None, version: int | None = None) -> Path:
    """Export a finished run (``RUN/encoder.keras`` + ``RUN/config.json``)."""
    encoder, config = load_run(run_dir)
    export_cfg = config.get("export") if isinstance(config.get("export"), dict) else {}
    name = model_name or export_cfg.get("model_name") or config.get("name")
    if not name:
        raise ExportError("no model name: pass --model-name or set export.model_name in the config")
    if taps is None:
        taps = tuple(export_cfg.get("taps") or ())
    _check_config_geometry(encoder, config)
    base = Path(base_path) if base_path is not None else Path(run_dir) / "export"
    return export_encoder(encoder, base, name, config=config, taps=taps, version=version)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m keras_ssl.export",
        description="Export a trained encoder as a TF Serving SavedModel "
                    "(<base>/<name>/<next version>/).")
    p.add_argument("--run-dir", required=True, help="finished training run (encoder.keras, config.json)")
    p.add_argument("--model-name", help="default: config export.model_name, else config name")
    p.add_argument("--base-path", help="default: RUN/export")
    p.add_argument("--taps", nargs="*", help="encoder layer names to add as outputs (default: config export.taps)")
    p.add_argument("--version", type=int, help="explicit version (must not exist); default: next integer")
    args = p.parse_args(argv)
    try:
        path = export_run(args.run_dir, args.model_name, args.base_path,
                          taps=args.taps, version=args.version)
    except (ExportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
