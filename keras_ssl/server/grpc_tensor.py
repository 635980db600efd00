"""TensorProto <-> numpy for the gRPC front end, checked before anything is allocated.

:func:`tensor_proto_to_array` reads a client's ``TensorProto`` without
``tf.make_ndarray`` (which fills a short value list by repeating its last
value, so a ~100-byte request can declare gigabytes). Contract, all checked
from the proto's lengths before any array is built; every refusal is
``INVALID_ARGUMENT`` naming the input:

- the shape is known, has no negative dimension and at most
  :data:`MAX_RANK` dimensions;
- the dtype is one of :data:`NUMERIC_DTYPES` or ``DT_STRING``;
- values come either as ``tensor_content`` of exactly
  ``elements * itemsize`` bytes (numeric dtypes only), or in the dtype's own
  value field (``float_val``, ``double_val``, ``half_val``, ``int_val``,
  ``int64_val``, ``uint32_val``, ``uint64_val``, ``bool_val``, ``string_val``)
  holding exactly as many values as the shape declares; values in any other
  field are refused;
- TF's shorthand of ONE value for the whole shape (what
  ``tf.make_tensor_proto(0.0, shape=[2, 3])`` sends) is accepted only when
  the shape declares at most :data:`MAX_BROADCAST_ELEMENTS` elements;
- the decoded size is at most ``max_bytes``: numeric tensors count
  ``elements * itemsize``, string tensors the real length of every string
  plus :data:`STRING_OVERHEAD_BYTES` per element (a string costs a Python
  object and a ``tf.string`` cell however short it is).

Numeric value fields are decoded with ``numpy.fromiter``; integers outside
the dtype's range are refused rather than wrapped. :func:`fill_tensor_proto`
writes server outputs (raw ``tensor_content``, as TF does).
"""
from __future__ import annotations

import sys

import numpy as np
from tensorflow.core.framework import types_pb2

from keras_ssl.server.errors import invalid

#: Highest rank accepted (numpy's own limit is 64; no signature here needs more than 4).
MAX_RANK = 32
#: Largest element count a single value may be broadcast to (TF's one-value shorthand).
MAX_BROADCAST_ELEMENTS = 4096
#: Bytes charged per string element on top of its length (object pointer + bytes
#: object header + tf.string cell), so that millions of empty strings are not free.
STRING_OVERHEAD_BYTES = 64


def _dtype_tables() -> tuple[dict, dict, dict]:
    """(DataType -> numpy dtype, DataType -> value field, numpy dtype -> DataType)."""
    t = types_pb2
    numeric = {t.DT_FLOAT: "<f4", t.DT_DOUBLE: "<f8", t.DT_HALF: "<f2", t.DT_INT8: "i1",
               t.DT_INT16: "<i2", t.DT_INT32: "<i4", t.DT_INT64: "<i8", t.DT_UINT8: "u1",
               t.DT_UINT16: "<u2", t.DT_UINT32: "<u4", t.DT_UINT64: "<u8", t.DT_BOOL: "?"}
    # Where TensorProto keeps each dtype's values (tensorflow/core/framework/tensor.proto).
    fields = {t.DT_FLOAT: "float_val", t.DT_DOUBLE: "double_val", t.DT_HALF: "half_val",
              t.DT_INT8: "int_val", t.DT_INT16: "int_val", t.DT_INT32: "int_val",
              t.DT_UINT8: "int_val", t.DT_UINT16: "int_val", t.DT_INT64: "int64_val",
              t.DT_UINT32: "uint32_val", t.DT_UINT64: "uint64_val", t.DT_BOOL: "bool_val",
              t.DT_STRING: "string_val"}
    np_dtypes = {k: np.dtype(v) for k, v in numeric.items()}
    to_dt = {v.newbyteorder("=") if v.byteorder != "|" else v: k for k, v in np_dtypes.items()}
    return np_dtypes, fields, to_dt


NUMERIC_DTYPES, _VALUE_FIELD, _NP_TO_DT = _dtype_tables()
_DT_STRING = types_pb2.DT_STRING
#: Every repeated value field of TensorProto: values in a field that is not the dtype's are refused.
_ALL_VALUE_FIELDS = ("half_val", "float_val", "double_val", "int_val", "string_val", "scomplex_val",
                     "int64_val", "bool_val", "dcomplex_val", "resource_handle_val", "variant_val",
                     "uint32_val", "uint64_val", "float8_val")


def _dtype_name(dt: int) -> str:
    try:
        return types_pb2.DataType.Name(dt)
    except ValueError:
        return str(dt)


def _declared_shape(name: str, proto) -> tuple[list[int], int]:
    """(dims, element count) of the proto's shape, refused when unknown, negative or too deep."""
    if proto.tensor_shape.unknown_rank:
        raise invalid(f"input '{name}': tensor_shape has unknown rank; send a full shape")
    rank = len(proto.tensor_shape.dim)
    if rank > MAX_RANK:  # before reading the dims one by one
        raise invalid(f"input '{name}': tensor_shape has {rank} dimensions, more than {MAX_RANK}")
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise invalid(f"input '{name}': tensor_shape has a negative dimension {dims}")
    n = 1
    for d in dims:
        n *= d  # Python ints: no overflow however large the declared dimensions
    return dims, n


def _value_count(name: str, proto, field: str, n: int, dims: list[int]) -> int:
    """How many values the dtype's field holds (-1: they are in tensor_content); refuse
    values in other fields and counts that are neither the element count nor a small broadcast."""
    dtype = _dtype_name(proto.dtype)
    for other in _ALL_VALUE_FIELDS:
        if other != field and len(getattr(proto, other, ())):
            raise invalid(f"input '{name}': a {dtype} tensor cannot carry values in {other}")
    count = len(getattr(proto, field))
    if proto.tensor_content and count:
        raise invalid(f"input '{name}': both tensor_content and {field} are set; send one")
    if proto.tensor_content:
        return -1
    if count == n or (count == 1 and n <= MAX_BROADCAST_ELEMENTS):
        return count
    hint = (f" (one value is broadcast only to at most {MAX_BROADCAST_ELEMENTS} elements)"
            if count == 1 else "")
    values = "1 value" if count == 1 else f"{count} values"
    raise invalid(f"input '{name}': {field} has {values}, shape {dims} declares {n}{hint}; "
                  "send every value (tf.make_tensor_proto of the full array)")


def _strings(name: str, proto, dims: list[int], n: int, max_bytes: int) -> np.ndarray:
    """An object array of bytes, its real size checked against ``max_bytes`` first."""
    if proto.tensor_content:
        raise invalid(f"input '{name}': DT_STRING values go in string_val, not tensor_content")
    vals = proto.string_val
    if len(vals) == n:
        size = sum(map(len, vals)) + n * STRING_OVERHEAD_BYTES
    else:  # one value broadcast to n <= MAX_BROADCAST_ELEMENTS elements
        size = n * (len(vals[0]) + STRING_OVERHEAD_BYTES)
    if size > max_bytes:
        raise invalid(f"input '{name}': {n} strings of shape {dims} take {size} bytes, over the "
                      f"size limit of {max_bytes} bytes")
    arr = np.empty(n, dtype=object)
    if len(vals) == n:
        arr[:] = list(vals)
    elif n:
        arr[:] = [vals[0]] * n
    return arr.reshape(dims)


def _numbers(name: str, proto, field: str, np_dtype: np.dtype, count: int, n: int) -> np.ndarray:
    """A numeric value field decoded with numpy; integers out of the dtype's range refused."""
    vals = getattr(proto, field)
    if (np_dtype.kind == "f" and field != "half_val") or np_dtype.kind == "b":
        arr = np.fromiter(vals, dtype=np_dtype, count=count)
    else:
        # int_val holds int32 for int8/16/uint8/16; half_val holds float16 bit patterns.
        wide = np.uint64 if field == "uint64_val" else np.int64
        arr = np.fromiter(vals, dtype=wide, count=count)
        target = np.dtype(np.uint16) if field == "half_val" else np_dtype
        info = np.iinfo(target)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise invalid(f"input '{name}': {field} holds values outside the range of "
                          f"{_dtype_name(proto.dtype)}")
        arr = arr.astype(target)
        if field == "half_val":
            arr = arr.view(np.float16)
    if count != n:
        arr = np.full(n, arr[0], dtype=arr.dtype)
    return arr


def tensor_proto_to_array(name: str, proto, max_bytes: int) -> np.ndarray:
    """The ndarray of a client's TensorProto, under the contract of this module."""
    dims, n = _declared_shape(name, proto)
    np_dtype = NUMERIC_DTYPES.get(proto.dtype)
    if np_dtype is None and proto.dtype != _DT_STRING:
        raise invalid(f"input '{name}': unsupported dtype {_dtype_name(proto.dtype)}")
    if np_dtype is not None and n * np_dtype.itemsize > max_bytes:
        raise invalid(f"input '{name}': tensor of shape {dims} exceeds the size limit of {max_bytes} bytes")
    field = _VALUE_FIELD[proto.dtype]
    count = _value_count(name, proto, field, n, dims)
    if np_dtype is None:
        return _strings(name, proto, dims, n, max_bytes)
    if count < 0:
        # What tf.make_tensor_proto sends for numeric arrays: raw little-endian bytes.
        if len(proto.tensor_content) != n * np_dtype.itemsize:
            raise invalid(f"input '{name}': tensor_content has {len(proto.tensor_content)} bytes, "
                          f"shape {dims} of {np_dtype.name} needs {n * np_dtype.itemsize}")
        return np.frombuffer(proto.tensor_content, dtype=np_dtype).reshape(dims)
    return _numbers(name, proto, field, np_dtype, count, n).reshape(dims)


def fill_tensor_proto(proto, arr: np.ndarray) -> None:
    """Write ``arr`` into ``proto`` (raw tensor_content for numeric dtypes, as TF does)."""
    dt = _NP_TO_DT.get(arr.dtype)
    if dt is None or sys.byteorder != "little":
        import tensorflow as tf

        proto.CopyFrom(tf.make_tensor_proto(arr))
        return
    proto.dtype = dt
    for d in arr.shape:
        proto.tensor_shape.dim.add(size=d)
    proto.tensor_content = np.ascontiguousarray(arr).tobytes()
