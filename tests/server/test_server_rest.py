"""REST front end of keras_ssl.serve: TF Serving's routes, formats and error answers.

Plain HTTP JSON against the in-process ``server`` fixture (conftest.py).
"""
from __future__ import annotations

import http.client
import json
import socket
import time

import numpy as np
import pytest

from server_support import MAX_BODY, b64, rest, wait_status_ok
from support import images, png


def test_rest_status_and_metadata(server):
    s, body = rest(server, "GET", "/v1/models/tiny")
    assert s == 200
    assert [v["version"] for v in body["model_version_status"]] == ["2", "1"]
    assert body["model_version_status"][0] == {"version": "2", "state": "AVAILABLE",
                                               "status": {"error_code": "OK", "error_message": ""}}
    s, body = rest(server, "GET", "/v1/models/tiny/versions/1")
    assert s == 200 and [v["version"] for v in body["model_version_status"]] == ["1"]
    s, body = rest(server, "GET", "/v1/models/tiny/labels/canary")
    assert s == 200 and body["model_version_status"][0]["version"] == "2"
    s, meta = rest(server, "GET", "/v1/models/tiny/versions/1/metadata")
    assert s == 200
    assert meta["model_spec"] == {"name": "tiny", "signature_name": "", "version": "1"}
    sd = meta["metadata"]["signature_def"]["signature_def"]
    assert sd["serving_default"]["method_name"] == "tensorflow/serving/predict"
    inp = sd["serving_default"]["inputs"]["images"]
    assert inp["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in inp["tensor_shape"]["dim"]] == ["-1", "28", "28", "1"]
    assert sd["image_bytes"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert set(sd["serving_default"]["outputs"]) == {"features"}
    s, meta = rest(server, "GET", "/v1/models/tiny/labels/stable/metadata")
    assert s == 200 and meta["model_spec"]["version"] == "1"


def test_rest_predict_row_and_columnar(server):
    x = images(3)
    expect = server.enc(x, training=False).numpy()
    # version 1: single output -> name dropped
    s, body = rest(server, "POST", "/v1/models/tiny/versions/1:predict", {"instances": x.tolist()})
    assert s == 200, body
    np.testing.assert_allclose(np.array(body["predictions"]), expect, rtol=1e-5, atol=1e-5)
    s, body = rest(server, "POST", "/v1/models/tiny/labels/stable:predict", {"inputs": {"images": x.tolist()}})
    assert s == 200
    np.testing.assert_allclose(np.array(body["outputs"]), expect, rtol=1e-5, atol=1e-5)
    # latest (version 2): two outputs -> row objects / columnar object
    s, body = rest(server, "POST", "/v1/models/tiny:predict",
                   {"signature_name": "serving_default", "instances": [{"images": v} for v in x.tolist()]})
    assert s == 200
    assert set(body["predictions"][0]) == {"features", "conv1"} and len(body["predictions"]) == 3
    np.testing.assert_allclose(np.array([p["features"] for p in body["predictions"]]), expect, rtol=1e-5, atol=1e-5)
    s, body = rest(server, "POST", "/v1/models/tiny:predict", {"inputs": x.tolist()})
    assert s == 200 and np.array(body["outputs"]["conv1"]).shape == (3, 26 * 26 * 4)
    # same request twice -> same features
    s2, body2 = rest(server, "POST", "/v1/models/tiny:predict", {"inputs": x.tolist()})
    assert body2 == body


def test_rest_b64_image_bytes(server):
    x = images(2)
    expect = server.enc(np.round(x * 255) / 255, training=False).numpy()
    s, body = rest(server, "POST", "/v1/models/tiny/versions/1:predict",
                   {"signature_name": "image_bytes", "instances": [b64(png(x[0])), b64(png(x[1]))]})
    assert s == 200, body
    np.testing.assert_allclose(np.array(body["predictions"]), expect, rtol=1e-4, atol=1e-4)
    s, body = rest(server, "POST", "/v1/models/tiny/versions/1:predict",
                   {"signature_name": "image_bytes", "inputs": {"image_bytes": [b64(png(x[0]))]}})
    assert s == 200 and np.allclose(body["outputs"][0], expect[0], atol=1e-4)
    # grayscale PNG into the RGB model
    s, body = rest(server, "POST", "/v1/models/rgb:predict",
                   {"signature_name": "image_bytes", "instances": [b64(png(x[0]))]})
    assert s == 200 and len(body["predictions"][0]) == 8


def _huge_png_header() -> bytes:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 32


BAD_REQUESTS = {
    "malformed_json": ("/v1/models/tiny:predict", b'{"instances": [1, 2', 400, "malformed JSON"),
    "not_object": ("/v1/models/tiny:predict", b"[1, 2]", 400, "JSON object"),
    "no_instances": ("/v1/models/tiny:predict", {"foo": 1}, 400, "instances"),
    "both_formats": ("/v1/models/tiny:predict", {"instances": [], "inputs": []}, 400, "exactly one"),
    "empty_instances": ("/v1/models/tiny:predict", {"instances": []}, 400, "empty"),
    "wrong_shape": ("/v1/models/tiny:predict", {"instances": [[0.5] * 10]}, 400, "shape"),
    "ragged": ("/v1/models/tiny:predict", {"inputs": [[[0.1]], [[0.1, 0.2]]]}, 400, "ragged"),
    "wrong_dtype": ("/v1/models/tiny:predict", {"instances": [[[["a"]] * 28] * 28]}, 400, "DT_FLOAT"),
    "nan": ("/v1/models/tiny:predict", b'{"instances": [' + json.dumps([[[0.5]] * 28] * 27)[:-1].encode()
            + b', [' + b", ".join([b"[NaN]"] * 28) + b"]]]}", 400, "NaN"),
    "booleans": ("/v1/models/tiny:predict", {"instances": [[[[True]] * 28] * 28]}, 400, "boolean"),
    "deep_nesting": ("/v1/models/tiny:predict", b'{"instances": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}",
                     400, "dimensions"),
    "null": ("/v1/models/tiny:predict", {"instances": [[[[None]] * 28] * 28]}, 400, "null"),
    "bad_base64": ("/v1/models/tiny:predict",
                   {"signature_name": "image_bytes", "instances": [{"b64": "@@not base64@@"}]}, 400, "base64"),
    "corrupt_image": ("/v1/models/tiny:predict",
                      {"signature_name": "image_bytes", "instances": [b64(b"\x89PNG\r\n\x1a\nbroken")]},
                      400, "PNG"),
    "not_an_image": ("/v1/models/tiny:predict",
                     {"signature_name": "image_bytes", "instances": [b64(b"hello")]}, 400, "image"),
    "oversized_image": ("/v1/models/tiny:predict",
                        {"signature_name": "image_bytes", "instances": [b64(_huge_png_header())]}, 400, "exceeds"),
    "oversized_webp": ("/v1/models/tiny:predict",
                       {"signature_name": "image_bytes", "instances": [b64(
                           b"RIFF\x1e\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00"
                           + (16000).to_bytes(3, "little") + (16000).to_bytes(3, "little"))]}, 400, "exceeds"),
    "jpeg_xl": ("/v1/models/tiny:predict",
                {"signature_name": "image_bytes", "instances": [b64(b"\xff\x0a" + b"\x00" * 30)]}, 400, "JPEG XL"),
    "unknown_signature": ("/v1/models/tiny:predict", {"signature_name": "nope", "instances": [[0]]}, 400, "nope"),
    "unknown_input": ("/v1/models/tiny:predict", {"inputs": {"imagez": [[0]]}}, 400, "imagez"),
    "unknown_model": ("/v1/models/nope:predict", {"instances": [[0]]}, 404, "nope"),
    "unknown_version": ("/v1/models/tiny/versions/9:predict", {"instances": [[0]]}, 404, "9"),
    "unknown_label": ("/v1/models/tiny/labels/beta:predict", {"instances": [[0]]}, 404, "beta"),
    "bad_version": ("/v1/models/tiny/versions/1x:predict", {"instances": [[0]]}, 400, "version"),
    "huge_version": ("/v1/models/tiny/versions/99999999999999999999:predict", {"instances": [[0]]}, 400, "version"),
    "traversal_name": ("/v1/models/..%2F..%2Fetc:predict", {"instances": [[0]]}, 400, "model name"),
    "dotdot_name": ("/v1/models/..:predict", {"instances": [[0]]}, 400, "model name"),
    "bad_path": ("/v2/whatever", {"instances": [[0]]}, 404, "Malformed"),
    "unknown_verb": ("/v1/models/tiny:explode", {"instances": [[0]]}, 404, "explode"),
    "classify": ("/v1/models/tiny:classify", {"examples": []}, 501, "predict"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_rest_bad_input_is_4xx(server, case):
    path, body, status, needle = BAD_REQUESTS[case]
    raw = body if isinstance(body, bytes) else None
    s, resp = rest(server, "POST", path, None if raw else body, raw=raw)
    assert s == status, (case, resp)
    assert set(resp) == {"error"} and needle.lower() in resp["error"].lower(), resp
    # the server is still up and answering
    s, _ = rest(server, "GET", "/v1/models/tiny")
    assert s == 200


def test_rest_body_limits_and_bad_routes(server):
    s, resp = rest(server, "POST", "/v1/models/tiny:predict", raw=b" " * (MAX_BODY + 1))
    assert s == 413 and "exceeds the limit" in resp["error"]
    assert rest(server, "GET", "/v1/models/tiny")[0] == 200
    # a huge declared body is refused from the header alone (never read)
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    conn.putrequest("POST", "/v1/models/tiny:predict")
    conn.putheader("Content-Length", str(10 ** 12))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 413 and "exceeds the limit" in json.loads(r.read())["error"]
    conn.close()
    assert rest(server, "GET", "/v1/models/tiny")[0] == 200
    s, resp = rest(server, "GET", "/v1/models/tiny:predict")
    assert s == 405 and "error" in resp
    s, resp = rest(server, "GET", "/v1/models/tiny/versions/5/metadata")
    assert s == 404
    s, resp = rest(server, "PUT", "/v1/models/tiny", raw=b"")
    assert s == 405
    # garbage on the socket
    sock = socket.create_connection(("127.0.0.1", server.rest_port), timeout=10)
    sock.sendall(b"\x00\x01garbage\r\n\r\n")
    data = sock.recv(4096)
    sock.close()
    assert data.startswith(b"HTTP/1.") and b" 400 " in data.split(b"\r\n")[0]
    assert rest(server, "GET", "/v1/models/tiny")[0] == 200


def test_rest_connection_cap(server):
    from keras_ssl.server.rest import RestServer

    rs = RestServer(server.manager, "127.0.0.1", 0, max_connections=2, timeout_seconds=5).start()
    try:
        idle = [socket.create_connection(("127.0.0.1", rs.port), timeout=10) for _ in range(2)]
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", rs.port), timeout=10)
        data = extra.recv(4096)
        extra.close()
        assert b" 503 " in data.split(b"\r\n")[0] and b"too many open connections" in data
        for sock in idle:
            sock.close()
        # slots come back once the idle connections close
        assert wait_status_ok(rs.port) == 200
    finally:
        rs.stop()
