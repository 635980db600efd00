"""Writing a version: built in a hidden temporary directory beside its final
place and renamed into place, so a server polling ``base_path`` never sees a
half-written version; existing versions are never overwritten."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from keras_ssl.export.assets import preprocessing_contract, write_warmup_requests
from keras_ssl.export.contract import (ASSETS_EXTRA, CONFIG_FILE, FEATURES_OUTPUT, PREPROCESSING_FILE,
                                       WARMUP_FILE, validate_model_name, version_dirs)
from keras_ssl.export.signatures import build_archive


class ExportError(RuntimeError):
    """An export that cannot be written (bad target, existing version...)."""

def existing_versions(model_dir: str | os.PathLike) -> list[int]:
    """Sorted integer versions found as numeric sub-directories of ``model_dir``."""
    return version_dirs(model_dir)

def next_version(model_dir: str | os.PathLike) -> int:
    """1 + highest existing numeric version (1 when there is none)."""
    versions = existing_versions(model_dir)
    return (versions[-1] + 1) if versions else 1

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

    archive, taps, geometry = build_archive(encoder, taps)
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
        extra = tmp / ASSETS_EXTRA
        extra.mkdir(exist_ok=True)
        if config is not None:
            (extra / CONFIG_FILE).write_text(config_text)
        write_warmup_requests(extra / WARMUP_FILE, model_name, h, w, c, with_bytes)
        while True:
            contract = preprocessing_contract(model_name, target_version, geometry,
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
