"""Input checks shared by the REST and gRPC front ends, before a model runs.

:class:`TensorSpecInfo` is what a signature declares for one input (read
from the SavedModel's ``TensorInfo`` by :func:`spec_from_tensor_info`);
:func:`check_input` holds an array a client sent against it and returns it
in the declared dtype, or raises ``INVALID_ARGUMENT`` (:func:`invalid`) with a
message naming the input. :class:`Limits` are the server's size and value
limits: encoded images are sized from their header
(:func:`image_dimensions`) so that an oversized image is refused before the
graph decodes it.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np

from keras_ssl.export.contract import MAX_IMAGE_PIXELS
from keras_ssl.server.errors import invalid


@dataclass(frozen=True)
class TensorSpecInfo:
    """One signature input: its name, dtype and shape (None dimensions: any size)."""
    name: str
    dtype: str          # numpy dtype name or "string"
    dtype_enum: str     # DT_FLOAT...
    shape: Optional[tuple[Optional[int], ...]]   # None: unknown rank


#: TF DataType names -> numpy dtype names ("string" for DT_STRING); any other
#: DataType is "unsupported" and refused by check_input.
_DT_TO_NP = {
    "DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_HALF": "float16",
    "DT_INT8": "int8", "DT_INT16": "int16", "DT_INT32": "int32", "DT_INT64": "int64",
    "DT_UINT8": "uint8", "DT_UINT16": "uint16", "DT_UINT32": "uint32", "DT_UINT64": "uint64",
    "DT_BOOL": "bool", "DT_STRING": "string",
}


def spec_from_tensor_info(name: str, info) -> TensorSpecInfo:
    """The :class:`TensorSpecInfo` of a SignatureDef's ``TensorInfo``."""
    from tensorflow.core.framework import types_pb2

    dt = types_pb2.DataType.Name(info.dtype)
    if info.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
    return TensorSpecInfo(name, _DT_TO_NP.get(dt, "unsupported"), dt, shape)


def _fmt_shape(shape) -> str:
    if shape is None:
        return "<unknown rank>"
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape) + "]"


# Image header sniffing, to refuse oversized images before the graph decodes them.
def image_dimensions(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) from a PNG/GIF/BMP/JPEG/WebP header, None if not recognised."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
            return _webp_dimensions(data)
        if data[:2] == b"BM" and len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:2] == b"\xff\xd8":
            return _jpeg_dimensions(data)
    except struct.error:
        return None
    return None


def _webp_dimensions(data: bytes) -> Optional[tuple[int, int]]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return (int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    return None


def _jpeg_dimensions(data: bytes) -> Optional[tuple[int, int]]:
    """Walk the JPEG segments to the first start-of-frame marker."""
    i = 2
    n = len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg_len = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + seg_len
    return None


@dataclass
class Limits:
    """Per-input limits: pixels of an encoded image, bytes of a tensor, and
    whether NaN / Infinity are accepted in float inputs."""
    max_image_pixels: int = MAX_IMAGE_PIXELS   # the exported graph's own limit
    max_tensor_bytes: int = 256 * 1024 * 1024
    allow_nonfinite: bool = False


def check_input(spec: TensorSpecInfo, arr: np.ndarray, limits: Limits) -> np.ndarray:
    """Validate ``arr`` against the signature's input ``spec``; return it in the spec's dtype."""
    if spec.dtype == "unsupported":
        raise invalid(f"input '{spec.name}' has dtype {spec.dtype_enum}, which this server cannot feed")
    if spec.dtype == "string":
        arr = _as_strings(spec, arr)
    else:
        arr = _as_numbers(spec, arr, limits)
    _check_shape(spec, arr)
    if spec.dtype == "string":
        _check_images(spec.name, arr, limits)
    return arr


def _as_strings(spec: TensorSpecInfo, arr: np.ndarray) -> np.ndarray:
    """``arr`` as an object array of bytes (str encoded as UTF-8), else INVALID_ARGUMENT."""
    name = spec.name
    if arr.dtype.kind in ("U", "S"):
        arr = np.vectorize(lambda s: s.encode("utf-8") if isinstance(s, str) else s,
                           otypes=[object])(arr) if arr.size else arr.astype(object)
    if arr.dtype != object:
        raise invalid(f"input '{name}' expects strings (DT_STRING; binary as {{\"b64\": ...}}), "
                      f"got {arr.dtype} values")
    for v in arr.flat:
        if not isinstance(v, bytes):
            raise invalid(f"input '{name}' expects strings (binary as {{\"b64\": ...}}), "
                          f"got a {type(v).__name__}")
    return arr


def _as_numbers(spec: TensorSpecInfo, arr: np.ndarray, limits: Limits) -> np.ndarray:
    """``arr`` converted to the spec's numeric dtype without silent truncation or NaN."""
    name = spec.name
    target = np.dtype(spec.dtype)
    if arr.dtype == object or arr.dtype.kind in ("U", "S"):
        raise invalid(f"input '{name}' expects {spec.dtype_enum} numbers, got non-numeric values")
    if arr.dtype == bool and target != bool:
        raise invalid(f"input '{name}' expects {spec.dtype_enum} numbers, got booleans")
    if target.kind in "iu" and arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(np.equal(np.mod(arr, 1), 0)):
            raise invalid(f"input '{name}' expects integers ({spec.dtype_enum})")
    if arr.dtype != target:
        with np.errstate(all="ignore"):
            try:
                arr = arr.astype(target)
            except (TypeError, ValueError) as e:
                raise invalid(f"input '{name}' cannot be converted to {spec.dtype_enum}: {e}") from None
    if target.kind == "f" and not limits.allow_nonfinite and arr.size and not np.all(np.isfinite(arr)):
        raise invalid(f"input '{name}' contains NaN or Infinity (or null); "
                      "only finite numbers are accepted")
    return arr


def _check_shape(spec: TensorSpecInfo, arr: np.ndarray) -> None:
    """The declared shape (when known), and a non-empty batch dimension."""
    name = spec.name
    if spec.shape is not None:
        ok = arr.ndim == len(spec.shape) and all(
            d is None or d == a for d, a in zip(spec.shape, arr.shape))
        if not ok:
            raise invalid(f"input '{name}' has shape {list(arr.shape)}, the signature expects "
                          f"{_fmt_shape(spec.shape)} (-1 = any size)")
    if arr.ndim == 0:
        raise invalid(f"input '{name}' must have a batch dimension")
    if arr.shape[0] == 0:
        raise invalid(f"input '{name}' is empty (batch size 0)")


def _check_images(name: str, arr: np.ndarray, limits: Limits) -> None:
    """Refuse encoded images whose size cannot be checked, or is over the pixel limit."""
    for v in arr.flat:
        if v[:2] == b"\xff\x0a" or v[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
            raise invalid(f"input '{name}': JPEG XL images are not accepted (their size cannot be "
                          "checked before decoding); send PNG, JPEG, GIF, BMP or WebP")
        dims = image_dimensions(v)
        if dims is not None and dims[0] * dims[1] > limits.max_image_pixels:
            raise invalid(f"input '{name}': image of {dims[0]}x{dims[1]} pixels exceeds the "
                          f"limit of {limits.max_image_pixels} pixels")
