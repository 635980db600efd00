"""Exporting a finished run directory (``RUN/encoder.keras`` + ``RUN/config.json``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from keras_ssl.config import ConfigError, read_json_object
from keras_ssl.export.contract import CONFIG_FILE
from keras_ssl.export.signatures import input_geometry
from keras_ssl.export.writer import ExportError, export_encoder


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
    h, w, c = input_geometry(encoder)
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
