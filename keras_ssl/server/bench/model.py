"""The model the benchmark serves, and its SavedModel signature for the in-process baseline.

:func:`prepare_model` picks or writes the export (``--export-dir``,
``--run-dir`` exported into a temporary directory, or a demo encoder with
random weights); :func:`serving_signature` loads its latest version's
``serving_default`` and reads the image shape from it. Directory and
signature names come from :mod:`keras_ssl.export.contract`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from keras_ssl.export.contract import IMAGES_INPUT, SAVED_MODEL_FILE, SERVING_SIGNATURE, version_dirs


def _demo_encoder():
    """The thesis BCNN (random weights) if the project's encoder is importable, else a small CNN."""
    import keras

    try:
        from keras_ssl.encoders.bcnn import BCNNParams, build_bcnn

        return build_bcnn(BCNNParams(), (28, 28, 1)), "bcnn (random weights)"
    except Exception:  # noqa: BLE001 - fall back to a self-contained encoder
        inp = keras.Input((28, 28, 1), name=IMAGES_INPUT)
        x = keras.layers.Conv2D(32, 3, activation="relu", name="conv1")(inp)
        x = keras.layers.MaxPooling2D(name="pool1")(x)
        x = keras.layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
        x = keras.layers.MaxPooling2D(name="pool2")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        return keras.Model(inp, keras.layers.Dense(128, name="fc")(x)), "small CNN (random weights)"


def prepare_model(export_dir: Optional[str], run_dir: Optional[str],
                  tmp: Path) -> tuple[Path, str, Any, str]:
    """(model_base_path, model_name, keras encoder or None, description); exports go under ``tmp``."""
    from keras_ssl import export as ex

    if export_dir:
        d = Path(export_dir).resolve()
        if (d / SAVED_MODEL_FILE).is_file():  # a version directory
            return d.parent, d.parent.name, None, f"export {d}"
        if not ex.existing_versions(d):
            raise SystemExit(f"error: no version directories under {d}")
        return d, d.name, None, f"export {d}"
    if run_dir:
        encoder, config = ex.load_run(run_dir)
        name = (config.get("export") or {}).get("model_name") or config.get("name") or "model"
        ex.export_encoder(encoder, tmp, name, config=config)
        return tmp / name, name, encoder, f"run {run_dir}"
    encoder, desc = _demo_encoder()
    ex.export_encoder(encoder, tmp, "bench")
    return tmp / "bench", "bench", encoder, desc


@dataclass
class ServingSignature:
    """A loaded version's ``serving_default``; ``loaded`` keeps its variables alive."""
    loaded: Any
    fn: Any
    image_shape: tuple[int, int, int]     # (h, w, c)

    def __call__(self, images):
        return self.fn(**{IMAGES_INPUT: images})


def serving_signature(base: Path) -> ServingSignature:
    """The latest version's ``serving_default`` under ``base``, with its image shape."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(base / str(version_dirs(base)[-1])))
    fn = loaded.signatures[SERVING_SIGNATURE]
    h, w, c = fn.structured_input_signature[1][IMAGES_INPUT].shape[1:]
    return ServingSignature(loaded, fn, (h, w, c))
