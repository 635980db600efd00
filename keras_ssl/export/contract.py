"""The contract between the exporter and every server that loads its output.

TF Serving's model directory convention and the names our SavedModels use.
:mod:`keras_ssl.export` writes by it; :mod:`keras_ssl.server` reads by it
(names and versions that clients send are checked with the same patterns).
Nothing here imports TensorFlow.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

#: Model names (directory names and URL parts) and version labels.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LABEL_RE = NAME_RE
#: A version directory: a non-negative integer of at most 18 digits (fits int64).
VERSION_DIR_RE = re.compile(r"^[0-9]{1,18}$")
INT64_MAX = 2 ** 63 - 1

SERVING_SIGNATURE = "serving_default"     # TF Serving's default signature
BYTES_SIGNATURE = "image_bytes"
INIT_OP_SIGNATURE = "__saved_model_init_op"  # not a signature a client may call
IMAGES_INPUT = "images"
BYTES_INPUT = "image_bytes"
FEATURES_OUTPUT = "features"

SAVED_MODEL_FILE = "saved_model.pb"
ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
PREPROCESSING_FILE = "preprocessing.json"
CONFIG_FILE = "config.json"

#: The most pixels an encoded image sent to the ``image_bytes`` signature may
#: declare (width x height; a GIF: also all its frames together, every frame
#: being decoded). The signature reads the size from the header with TF ops
#: and refuses a larger image with InvalidArgumentError before decoding it, so
#: a small file declaring e.g. 30000x30000 pixels cannot force a multi-GB
#: allocation, in this project's server or in TF Serving. Recorded in
#: ``preprocessing.json``; a change applies to versions exported after it.
MAX_IMAGE_PIXELS = 2048 * 2048


def validate_model_name(name: str) -> str:
    """``name`` if it is a valid model name; ValueError saying what is allowed otherwise."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(
            f"invalid model name {name!r}: use 1-128 characters from "
            "[A-Za-z0-9_.-], starting with a letter or digit")
    return name


def version_dirs(model_dir: str | os.PathLike, *, complete: bool = False) -> list[int]:
    """Sorted integer versions under ``model_dir`` (none when it does not exist).

    ``complete``: only versions holding ``saved_model.pb`` (what a server may
    load); otherwise every numeric directory (what an exporter must not reuse).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    out = []
    for p in model_dir.iterdir():
        if not (p.is_dir() and VERSION_DIR_RE.match(p.name)):
            continue
        if complete and not (p / SAVED_MODEL_FILE).is_file():
            continue
        out.append(int(p.name))
    return sorted(v for v in out if v <= INT64_MAX)
