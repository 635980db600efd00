"""keras_ssl.serve: a TF Serving client works against the local server unchanged.

The server runs in-process on free ports of 127.0.0.1 (one CLI subprocess
test); clients are plain HTTP JSON and the tensorflow-serving-api stubs.
"""
from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
grpc = pytest.importorskip("grpc")
apis = pytest.importorskip("tensorflow_serving.apis")

from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,  # noqa: E402
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from keras_ssl.export import export_encoder  # noqa: E402
from keras_ssl.server.app import start_server  # noqa: E402
from keras_ssl.server.models import (Batcher, BatchingConfig, Limits, ModelConfig,  # noqa: E402
                                      ServingError, image_dimensions, parse_models_config)

from support import ROOT as REPO  # noqa: E402
MAX_BODY = 1 << 20
MAX_PIXELS = 64 * 64


def tiny_encoder(seed: int = 0, channels: int = 1):
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(28, 28, channels), name="images")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(8, name="fc")(x)
    return keras.Model(inp, out, name="tiny_encoder")


def images(n=2, seed=1):
    return np.random.default_rng(seed).random((n, 28, 28, 1), dtype=np.float32)


def png(arr01) -> bytes:
    return tf.io.encode_png(np.round(arr01 * 255).astype(np.uint8)).numpy()


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode("ascii")}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    enc = tiny_encoder()
    export_encoder(enc, base, "tiny")                       # version 1: features only
    export_encoder(enc, base, "tiny", taps=("conv1",))      # version 2: features + conv1
    enc3 = tiny_encoder(seed=3, channels=3)
    export_encoder(enc3, base, "rgb")
    models = [ModelConfig("tiny", str(base / "tiny"), policy="all", labels={"stable": 1, "canary": 2}),
              ModelConfig("rgb", str(base / "rgb"))]
    h = start_server(models, batching=BatchingConfig(max_batch_size=8, batch_timeout_micros=20000),
                     poll_wait_seconds=0, max_body_bytes=MAX_BODY,
                     limits=Limits(max_image_pixels=MAX_PIXELS, max_tensor_bytes=4 * MAX_BODY))
    h.enc = enc
    yield h
    h.stop()


def rest(h, method, path, body=None, raw: bytes | None = None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", h.rest_port, timeout=30)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers=headers or {})
    r = conn.getresponse()
    payload = r.read()
    conn.close()
    return r.status, json.loads(payload) if payload else None


@pytest.fixture(scope="module")
def channel(server):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield ch
    ch.close()


def grpc_predict(channel, name, inputs, signature="", version=None, label=None, output_filter=()):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = version
    if label:
        req.model_spec.version_label = label
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(v if isinstance(v, type(req.inputs[k])) else tf.make_tensor_proto(v))
    req.output_filter.extend(output_filter)
    return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(req, timeout=30)


# --------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------

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
        deadline = time.time() + 10
        while time.time() < deadline:  # slots come back once the idle connections close
            conn = http.client.HTTPConnection("127.0.0.1", rs.port, timeout=10)
            conn.request("GET", "/v1/models/tiny")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
    finally:
        rs.stop()


# --------------------------------------------------------------------------
# gRPC
# --------------------------------------------------------------------------

def test_grpc_predict_metadata_status(server, channel):
    x = images(3)
    expect = server.enc(x, training=False).numpy()
    resp = grpc_predict(channel, "tiny", {"images": x})
    assert resp.model_spec.name == "tiny" and resp.model_spec.version.value == 2
    assert resp.model_spec.signature_name == "serving_default"
    assert set(resp.outputs) == {"features", "conv1"}
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["features"]), expect, rtol=1e-5, atol=1e-5)
    resp = grpc_predict(channel, "tiny", {"images": x}, output_filter=["features"], label="stable")
    assert set(resp.outputs) == {"features"} and resp.model_spec.version.value == 1
    resp = grpc_predict(channel, "tiny", {"image_bytes": np.array([png(x[0])], dtype=object)},
                        signature="image_bytes", version=1)
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["features"])[0],
                               server.enc(np.round(x[:1] * 255) / 255, training=False).numpy()[0], atol=1e-4)

    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "tiny"
    meta = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(req, timeout=30)
    sdm = get_model_metadata_pb2.SignatureDefMap()
    assert meta.metadata["signature_def"].Unpack(sdm)
    assert {"serving_default", "image_bytes"} <= set(sdm.signature_def)
    assert meta.model_spec.version.value == 2

    sreq = get_model_status_pb2.GetModelStatusRequest()
    sreq.model_spec.name = "tiny"
    st = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(sreq, timeout=30)
    assert [(s.version, s.state) for s in st.model_version_status] == [
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    assert st.model_version_status[0].status.error_code == 0


def test_grpc_errors(server, channel):
    x = images(1)
    cases = [
        (dict(name="nope", inputs={"images": x}), grpc.StatusCode.NOT_FOUND),
        (dict(name="tiny", inputs={"images": x}, version=7), grpc.StatusCode.NOT_FOUND),
        (dict(name="tiny", inputs={"images": x}, signature="nope"), grpc.StatusCode.INVALID_ARGUMENT),
        (dict(name="tiny", inputs={"images": x.astype(np.int32)[:, :3]}), grpc.StatusCode.INVALID_ARGUMENT),
        (dict(name="tiny", inputs={"images": np.array([b"x"], dtype=object)}), grpc.StatusCode.INVALID_ARGUMENT),
        (dict(name="tiny", inputs={"images": x}, output_filter=["nope"]), grpc.StatusCode.INVALID_ARGUMENT),
        (dict(name="tiny", inputs={"image_bytes": np.array([b"junk"], dtype=object)}, signature="image_bytes"),
         grpc.StatusCode.INVALID_ARGUMENT),
        (dict(name="../x", inputs={"images": x}), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    # a TensorProto declaring a huge shape with one value (would broadcast to GBs)
    huge = tf.make_tensor_proto(np.zeros([1], np.float32))
    huge.tensor_shape.Clear()
    for d in (100000, 28, 28, 1000):
        huge.tensor_shape.dim.add(size=d)
    del huge.float_val[:]
    huge.tensor_content = b""
    huge.float_val.append(0.0)
    cases.append((dict(name="tiny", inputs={"images": huge}), grpc.StatusCode.INVALID_ARGUMENT))
    for kwargs, code in cases:
        with pytest.raises(grpc.RpcError) as e:
            grpc_predict(channel, **kwargs)
        assert e.value.code() == code, (kwargs.get("signature"), e.value.details())
        assert e.value.details()
    assert grpc_predict(channel, "tiny", {"images": x}).model_spec.version.value == 2


# --------------------------------------------------------------------------
# Batching and versions
# --------------------------------------------------------------------------

def test_concurrent_requests_are_batched(server, channel):
    import dataclasses

    lv = server.manager.resolve("tiny", 1)
    batcher = lv.batchers["serving_default"]
    before = batcher.batches_run
    saved_cfg = batcher.cfg  # a wide window so a loaded CI machine still merges requests
    batcher.cfg = dataclasses.replace(saved_cfg, batch_timeout_micros=300000)
    xs = [images(1, seed=s) for s in range(16)]

    def one(i):
        if i % 2:
            r = grpc_predict(channel, "tiny", {"images": xs[i]}, version=1)
            return tf.make_ndarray(r.outputs["features"])
        s, body = rest(server, "POST", "/v1/models/tiny/versions/1:predict", {"instances": xs[i].tolist()})
        assert s == 200
        return np.array(body["predictions"])

    try:
        with ThreadPoolExecutor(16) as pool:
            outs = list(pool.map(one, range(16)))
    finally:
        batcher.cfg = saved_cfg
    for x, o in zip(xs, outs):
        np.testing.assert_allclose(o, server.enc(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
    assert batcher.batches_run > before
    assert batcher.max_batch_seen > 1


def test_batcher_merges_and_isolates_bad_requests():
    calls = []

    def run(inputs):
        x = inputs["x"]
        calls.append(len(x))
        if np.any(x < 0):
            raise ServingError("INVALID_ARGUMENT", "negative value")
        return {"y": x * 2}

    b = Batcher(run, BatchingConfig(max_batch_size=8, batch_timeout_micros=3000000, num_batch_threads=1))
    vals = [np.array([[float(i)]]) for i in range(8)]
    vals[3] = np.array([[-1.0]])

    def submit(v):
        try:
            return b.submit({"x": v}, 1)["y"]
        except ServingError as e:
            return e

    with ThreadPoolExecutor(8) as pool:
        res = list(pool.map(submit, vals))
    b.stop()
    assert calls[0] == 8  # one merged batch of 8 ...
    assert isinstance(res[3], ServingError)  # ... only the bad request fails
    for i, r in enumerate(res):
        if i != 3:
            np.testing.assert_array_equal(r, vals[i] * 2)
    # allowed_batch_sizes pads; oversized requests run alone
    b = Batcher(lambda inp: {"y": inp["x"]}, BatchingConfig(
        max_batch_size=4, batch_timeout_micros=1000, allowed_batch_sizes=(2, 4)))
    assert b.submit({"x": np.ones((3, 1))}, 3)["y"].shape == (3, 1)
    assert b.submit({"x": np.ones((9, 1))}, 9)["y"].shape == (9, 1)
    b.stop()


def test_hot_version_pickup(tmp_path):
    base = tmp_path / "m"
    enc1, enc2 = tiny_encoder(seed=1), tiny_encoder(seed=2)
    export_encoder(enc1, tmp_path, "m")
    h = start_server([ModelConfig("m", str(base))], poll_wait_seconds=0.2,
                     batching=BatchingConfig(max_batch_size=4, batch_timeout_micros=1000))
    try:
        x = images(1)
        stop = threading.Event()
        errors, versions = [], set()

        def hammer():
            ch = grpc.insecure_channel(f"127.0.0.1:{h.grpc_port}")
            while not stop.is_set():
                try:
                    versions.add(grpc_predict(ch, "m", {"images": x}).model_spec.version.value)
                except grpc.RpcError as e:  # any failure during the swap is a bug
                    errors.append(e.details())
            ch.close()

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.time() + 30
        while 1 not in versions and time.time() < deadline:
            time.sleep(0.05)
        export_encoder(enc2, tmp_path, "m")  # atomic: a polling server never sees it half-written
        deadline = time.time() + 30
        while time.time() < deadline:
            s, body = rest(h, "GET", "/v1/models/m")
            states = {v["version"]: v["state"] for v in body["model_version_status"]}
            if states.get("2") == "AVAILABLE" and states.get("1") == "END":
                break
            time.sleep(0.1)
        deadline = time.time() + 30
        while 2 not in versions and time.time() < deadline:
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        assert states == {"2": "AVAILABLE", "1": "END"}
        assert errors == [] and versions == {1, 2}
        s, body = rest(h, "POST", "/v1/models/m:predict", {"instances": x.tolist()})
        np.testing.assert_allclose(np.array(body["predictions"]), enc2(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
        assert rest(h, "POST", "/v1/models/m/versions/1:predict", {"instances": x.tolist()})[0] == 404
    finally:
        h.stop()


def test_model_config_file_reload(tmp_path):
    """--model_config_file_poll_wait_seconds: models added / removed / relabelled while serving."""
    enc = tiny_encoder()
    export_encoder(enc, tmp_path / "m", "a")
    export_encoder(enc, tmp_path / "m", "b")
    cfg = tmp_path / "models.config"

    def write(*names, label=None):
        blocks = "".join(
            f"config {{ name: '{n}' base_path: '{tmp_path / 'm' / n}' model_platform: 'tensorflow' "
            + (f"version_labels {{ key: '{label}' value: 1 }} " if label else "") + "}\n" for n in names)
        cfg.write_text("model_config_list {\n" + blocks + "}\n")

    write("a")
    h = start_server(parse_models_config(cfg.read_text()), poll_wait_seconds=0, grpc_port=None,
                     model_config_file=str(cfg), model_config_poll_seconds=0.2)
    try:
        def status(path):
            return rest(h, "GET", path)[0]

        def wait_for(path, code):
            deadline = time.time() + 30
            while time.time() < deadline and status(path) != code:
                time.sleep(0.1)
            return status(path)

        assert status("/v1/models/a") == 200 and status("/v1/models/b") == 404
        write("a", "b", label="stable")
        assert wait_for("/v1/models/b/labels/stable", 200) == 200
        cfg.write_text("model_config_list { config { name: 'a/b' } }")  # bad file: old config kept
        time.sleep(0.6)
        assert status("/v1/models/b") == 200
        write("b")
        assert wait_for("/v1/models/a", 404) == 404
        s, body = rest(h, "POST", "/v1/models/b:predict", {"instances": images(1).tolist()})
        assert s == 200
    finally:
        h.stop()


# --------------------------------------------------------------------------
# Config parsing, helpers, CLI and the example clients
# --------------------------------------------------------------------------

def test_models_config_parsing():
    cfgs = parse_models_config("""
        model_config_list {
          config { name: 'a' base_path: '/m/a' model_platform: 'tensorflow'
                   model_version_policy { specific { versions: 1 versions: 3 } }
                   version_labels { key: 'stable' value: 1 } }
          config { name: 'b' base_path: '/m/b' model_version_policy { all {} } }
        }""")
    assert [(c.name, c.policy, c.specific, c.labels) for c in cfgs] == [
        ("a", "specific", (1, 3), {"stable": 1}), ("b", "all", (), {})]
    for bad in ("model_config_list { config { name: 'a/../b' base_path: '/x' } }",
                "model_config_list { config { name: 'a' } }", "nonsense {"):
        with pytest.raises(ValueError):
            parse_models_config(bad)


def test_image_dimensions_sniffing():
    x = images(1)[0]
    assert image_dimensions(png(x)) == (28, 28)
    jpeg = tf.io.encode_jpeg(np.zeros((30, 40, 3), np.uint8)).numpy()
    assert image_dimensions(jpeg) == (40, 30)
    assert image_dimensions(b"junk") is None and image_dimensions(b"\xff\xd8\xff") is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_subprocess_and_clients(server, tmp_path):
    # the example clients from serving/, against the in-process server
    def load(name):
        spec = importlib.util.spec_from_file_location(name, REPO / "serving" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    img = tmp_path / "digit.png"
    img.write_bytes(png(images(1)[0]))
    client_rest, client_grpc = load("client_rest"), load("client_grpc")
    assert client_rest.main(["--server", f"127.0.0.1:{server.rest_port}", "--model", "tiny", str(img)]) == 0
    assert client_rest.main(["--server", f"127.0.0.1:{server.rest_port}", "--model", "tiny", "--random", "2"]) == 0
    assert client_grpc.main(["--server", f"127.0.0.1:{server.grpc_port}", "--model", "tiny", str(img)]) == 0
    assert client_grpc.main(["--server", f"127.0.0.1:{server.grpc_port}", "--model", "tiny", "--random", "2"]) == 0

    # the CLI with TF Serving's flags, as a subprocess
    export_encoder(tiny_encoder(), tmp_path / "export", "cli_model")
    rest_port, grpc_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "keras_ssl.serve", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         "--model_name=cli_model", f"--model_base_path={tmp_path / 'export' / 'cli_model'}",
         "--enable_batching", f"--batching_parameters_file={REPO / 'serving' / 'batching.config'}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, body = time.time() + 90, None
        while time.time() < deadline and proc.poll() is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=5)
                conn.request("GET", "/v1/models/cli_model")
                body = json.loads(conn.getresponse().read())
                break
            except OSError:
                time.sleep(0.3)
        assert body and body["model_version_status"][0]["state"] == "AVAILABLE", proc.poll()
        ch = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        r = grpc_predict(ch, "cli_model", {"images": images(2)})
        assert tf.make_ndarray(r.outputs["features"]).shape == (2, 8)
        ch.close()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert proc.returncode == 0, out[-3000:]
    assert "Running gRPC ModelServer" in out and "Exporting HTTP/REST API" in out

    bad = subprocess.run([sys.executable, "-m", "keras_ssl.serve", "--model_config_file=/nonexistent"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not found" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_serve_bench_smoke(tmp_path):
    """The benchmark runs end to end (subprocess server, both protocols) with zero errors."""
    base = tmp_path / "export"
    export_encoder(tiny_encoder(), base, "tiny")
    out = tmp_path / "bench.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    p = subprocess.run([sys.executable, "-m", "keras_ssl.serve_bench", "--export-dir", str(base / "tiny"),
                        "--seconds", "1", "--concurrency", "1", "4", "--json-out", str(out)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    loads = [r for r in recs if r["kind"] == "load"]
    assert {(r["protocol"], r["concurrency"]) for r in loads} == {("grpc", 1), ("grpc", 4), ("rest", 1), ("rest", 4)}
    assert all(r["errors"] == 0 and r["requests"] > 0 for r in loads)
    assert any(r["kind"] == "in_process" for r in recs)
