"""The JSON of TF Serving's REST API, to and from arrays (no HTTP here).

Request side: :func:`decode_predict_body` reads a ``:predict`` body, and
:func:`rows_to_inputs` / :func:`columns_to_inputs` turn its row
(``"instances"``) or columnar (``"inputs"``) payload into ``{input:
ndarray}``; binary values are ``{"b64": ...}`` objects and become bytes.
Every malformed value raises ``INVALID_ARGUMENT`` naming where it is
(nothing is evaluated or unpickled). A body nested deeper than
``max_depth`` levels of ``[ ]`` / ``{ }`` is refused before ``json.loads``
recurses into it (:func:`json_too_deep`: a linear pre-scan in C-speed
``bytes`` operations and numpy; a tensor needs at most its rank + 2 levels). Response side:
:func:`encode_predict_response`, :func:`status_json`, :func:`metadata_json`
write what TF Serving writes.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import numpy as np

from keras_ssl.server.errors import ServingError, invalid


def _b64decode(s: Any, where: str) -> bytes:
    if not isinstance(s, str):
        raise invalid(f"{where}: \"b64\" must hold a base64 string, got {type(s).__name__}")
    t = s.strip().replace("-", "+").replace("_", "/")  # accept web-safe too
    t += "=" * (-len(t) % 4)
    try:
        return base64.b64decode(t, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{where}: invalid base64 data in {{\"b64\": ...}}") from None


def _is_b64(v) -> bool:
    return isinstance(v, dict) and len(v) == 1 and "b64" in v


def _has_b64(v) -> bool:
    """Whether a JSON value (nested lists) contains a {"b64": ...} leaf (checks the first leaf path)."""
    while isinstance(v, list) and v:
        v = v[0]
    return _is_b64(v) or isinstance(v, str)


def _to_bytes_tree(v, where: str):
    if _is_b64(v):
        return _b64decode(v["b64"], where)
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, list):
        return [_to_bytes_tree(x, where) for x in v]
    if isinstance(v, dict):
        raise invalid(f"{where}: unexpected object {sorted(v)[:5]}; binary values are {{\"b64\": ...}}")
    return v


def json_to_array(value, where: str) -> np.ndarray:
    """A JSON tensor (nested lists; b64 objects for bytes) -> ndarray (object for bytes)."""
    if _has_b64(value):
        tree = _to_bytes_tree(value, where)
        try:
            arr = np.array(tree, dtype=object)
        except ValueError:
            raise invalid(f"{where}: ragged tensor (lists of different lengths)") from None
        if arr.size and any(isinstance(e, list) for e in arr.flat):
            raise invalid(f"{where}: ragged tensor (lists of different lengths)")
        return arr
    if isinstance(value, dict):
        raise invalid(f"{where}: unexpected object with keys {sorted(value)[:5]}")
    try:
        arr = np.asarray(value)
    except ValueError:
        raise invalid(f"{where}: ragged tensor (lists of different lengths) or more than 32 "
                      "dimensions") from None
    if arr.dtype == object:
        if arr.size and any(isinstance(e, (list, dict)) for e in arr.flat):
            raise invalid(f"{where}: ragged tensor or mixed values")
        if any(e is None for e in arr.flat):
            raise invalid(f"{where}: null values are not allowed")
        if all(isinstance(e, int) for e in arr.flat):
            raise invalid(f"{where}: integer values out of the 64-bit range")
        raise invalid(f"{where}: mixed value types")
    return arr


#: Default of --rest_api_max_json_depth: nesting levels a :predict body may have.
DEFAULT_MAX_JSON_DEPTH = 64
# bytes.translate tables of json_too_deep: keep only the bytes that open or close
# arrays, objects and strings; then brackets -> +1 / -1 as int8.
_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b'[]{}"')
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_SCAN_CHUNK = 1 << 22  # brackets per numpy cumsum: bounds the scan's scratch memory (32 MB)


def json_too_deep(body: bytes, max_depth: int) -> bool:
    """Whether a JSON text nests more than ``max_depth`` arrays / objects (outside strings).

    Exact for valid JSON; for malformed JSON it only decides which 400 the
    client gets. Linear time whatever the input (no regex backtracking).
    """
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False  # the common small body: nothing to scan
    # Drop escaped backslashes, then escaped quotes (JSON reads escapes left to
    # right, as bytes.replace does): every quote left opens or closes a string.
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    text = text.translate(None, _NOT_STRUCTURAL)
    outside = b"".join(text.split(b'"')[0::2])  # even pieces lie outside strings
    if len(outside) <= max_depth:
        return False
    steps = np.frombuffer(outside.translate(_STEPS), dtype=np.int8)
    depth = 0
    for i in range(0, steps.size, _SCAN_CHUNK):
        levels = np.cumsum(steps[i:i + _SCAN_CHUNK], dtype=np.int64) + depth
        if int(levels.max()) > max_depth:
            return True
        depth = int(levels[-1])
    return False


def decode_predict_body(body: bytes, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> tuple[str, Any, str]:
    """Parse a :predict body -> (signature_name, {input: ndarray}, "row"|"columnar")."""
    if json_too_deep(body, max_depth):
        raise invalid(f"JSON nested too deeply: more than {max_depth} levels of arrays / objects "
                      "(--rest_api_max_json_depth; a tensor needs its rank + 2)")
    try:
        req = json.loads(body)
    except UnicodeDecodeError:
        raise invalid("request body is not UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise invalid(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise invalid("JSON nested too deeply") from None
    if not isinstance(req, dict):
        raise invalid("request body must be a JSON object with \"instances\" or \"inputs\"")
    sig = req.get("signature_name", "")
    if not isinstance(sig, str):
        raise invalid("\"signature_name\" must be a string")
    has_inst, has_inp = "instances" in req, "inputs" in req
    if has_inst and has_inp:
        raise invalid("request has both \"instances\" and \"inputs\"; use exactly one")
    if not has_inst and not has_inp:
        raise invalid("missing \"instances\" (row format) or \"inputs\" (columnar format)")
    return sig, req["instances"] if has_inst else req["inputs"], "row" if has_inst else "columnar"


def rows_to_inputs(instances, input_names: list[str]) -> dict:
    """The row format (``"instances"``: one entry per example) -> {input: ndarray}."""
    if not isinstance(instances, list):
        raise invalid("\"instances\" must be a list with one entry per example")
    if not instances:
        raise invalid("\"instances\" is empty")
    first = instances[0]
    named = isinstance(first, dict) and not _is_b64(first)
    if not named:
        if len(input_names) != 1:
            raise invalid(f"this signature has inputs {input_names}: each instance must be an "
                          "object keyed by input name")
        if any(isinstance(x, dict) and not _is_b64(x) for x in instances):
            raise invalid("instances mix objects and plain values")
        return {input_names[0]: json_to_array(instances, f"input '{input_names[0]}'")}
    cols: dict[str, list] = {}
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict) or _is_b64(inst):
            raise invalid(f"instance {i} is not an object keyed by input name")
        if set(inst) != set(first):
            raise invalid(f"instance {i} has keys {sorted(inst)}, instance 0 has {sorted(first)}")
        for k, v in inst.items():
            cols.setdefault(k, []).append(v)
    return {k: json_to_array(v, f"input '{k}'") for k, v in cols.items()}


def columns_to_inputs(inputs, input_names: list[str]) -> dict:
    """The columnar format (``"inputs"``: one tensor per input) -> {input: ndarray}."""
    if isinstance(inputs, dict) and not _is_b64(inputs):
        if not inputs:
            raise invalid("\"inputs\" is an empty object")
        return {k: json_to_array(v, f"input '{k}'") for k, v in inputs.items()}
    if len(input_names) != 1:
        raise invalid(f"this signature has inputs {input_names}: \"inputs\" must be an object "
                      "keyed by input name")
    return {input_names[0]: json_to_array(inputs, f"input '{input_names[0]}'")}


def _out_json(name: str, arr: np.ndarray):
    # Bytes outputs: base64 objects when the name says binary (TF Serving's "_bytes" rule), else text.
    if arr.dtype == object or arr.dtype.kind == "S":
        if name.endswith("_bytes"):
            f = lambda b: {"b64": base64.b64encode(b).decode("ascii")}  # noqa: E731
        else:
            f = lambda b: b.decode("utf-8", errors="replace")  # noqa: E731
        return np.vectorize(f, otypes=[object])(arr).tolist() if arr.size else arr.tolist()
    return arr.tolist()


def encode_predict_response(outputs: dict, fmt: str) -> dict:
    """Outputs -> ``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar); one output
    is written without its name, as TF Serving does."""
    names = sorted(outputs)
    if fmt == "columnar":
        if len(names) == 1:
            return {"outputs": _out_json(names[0], outputs[names[0]])}
        return {"outputs": {k: _out_json(k, outputs[k]) for k in names}}
    if len(names) == 1:
        return {"predictions": _out_json(names[0], outputs[names[0]])}
    cols = {k: _out_json(k, outputs[k]) for k in names}
    n = len(next(iter(cols.values())))
    if any(len(v) != n for v in cols.values()):
        raise ServingError("INVALID_ARGUMENT", "outputs have different batch sizes; use the "
                           "columnar format (\"inputs\")")
    return {"predictions": [{k: cols[k][i] for k in names} for i in range(n)]}


def status_json(states) -> dict:
    """The JSON of GET /v1/models/NAME: each (version, VersionState) as TF Serving writes it."""
    return {"model_version_status": [
        {"version": str(v), "state": st.state,
         "status": {"error_code": st.error_code, "error_message": st.error_message}}
        for v, st in states]}


def metadata_json(lv, name: str) -> dict:
    """The JSON of GET .../metadata: the model spec and the SignatureDefMap of ``lv``."""
    from google.protobuf import json_format

    sdm = lv.signature_def_map()
    return {"model_spec": {"name": name, "signature_name": "", "version": str(lv.version)},
            "metadata": {"signature_def": json_format.MessageToDict(
                sdm, preserving_proto_field_name=True)}}
