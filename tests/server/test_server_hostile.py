"""Hostile clients: refused cheaply (4xx / INVALID_ARGUMENT / RESOURCE_EXHAUSTED), server up after.

gRPC: a TensorProto must carry as many values as its shape declares (the
one-value shorthand only for small shapes) and strings count their real
bytes, before anything is allocated; a message with too many field
occurrences is refused before protobuf parses it; calls beyond
``max_concurrent_rpcs`` get RESOURCE_EXHAUSTED. REST: a whole-request
deadline (not per read), the connection cap, and a JSON nesting limit.
Memory is read from this process's /proc/self/status (the servers run in it).
"""
from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

from keras_ssl.server.grpc_api import GrpcServer
from keras_ssl.server.grpc_tensor import MAX_BROADCAST_ELEMENTS, tensor_proto_to_array
from keras_ssl.server.manager import VersionState
from keras_ssl.server.rest import RestServer
from keras_ssl.server.rest_codec import json_too_deep
from keras_ssl.server.errors import ServingError
from server_support import grpc_predict, rest, wait_status_ok
from support import images, png

DEFAULT_TENSOR_BYTES = 256 << 20  # the server's default max_tensor_bytes (4 x 64 MiB)


def _status_mb(key: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _reset_peak() -> str:
    """Reset VmHWM to the current RSS (Linux >= 4.0); the key to read afterwards."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "VmHWM"
    except OSError:
        return "VmRSS"  # no peak reset: compare resident sizes (a weaker check)


def _strings_proto(dims, values) -> "tf.TensorProto":
    t = tf.make_tensor_proto(np.array([b""], dtype=object))
    t.tensor_shape.Clear()
    for d in dims:
        t.tensor_shape.dim.add(size=d)
    del t.string_val[:]
    t.string_val.extend(values)
    return t


def _request(name, sig, key, proto):
    req = predict_pb2.PredictRequest()
    req.model_spec.name, req.model_spec.signature_name = name, sig
    req.inputs[key].CopyFrom(proto)
    return req


@pytest.fixture()
def wide_grpc(server):
    """A gRPC front end over the fixture's models with the default (large) tensor limit."""
    g = GrpcServer(server.manager, "127.0.0.1", 0, max_tensor_bytes=DEFAULT_TENSOR_BYTES).start()
    ch = grpc.insecure_channel(f"127.0.0.1:{g.port}")
    yield ch
    ch.close()
    g.stop()


def test_grpc_declared_3m_strings_refused_without_allocation(server, wide_grpc):
    req = _request("tiny", "image_bytes", "image_bytes", _strings_proto([3_000_000], [b"x" * 40]))
    assert req.ByteSize() < 200
    stub = prediction_service_pb2_grpc.PredictionServiceStub(wide_grpc)
    key = _reset_peak()
    before, t0 = _status_mb(key), time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(req, timeout=30)
    elapsed, grown = time.monotonic() - t0, _status_mb(key) - before
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'image_bytes'" in e.value.details() and "3000000" in e.value.details()
    assert elapsed < 2.0 and grown < 100, (elapsed, grown)
    x = images(2)
    resp = grpc_predict(wide_grpc, "tiny", {"image_bytes": np.array([png(i) for i in x], dtype=object)},
                        signature="image_bytes")
    assert tf.make_ndarray(resp.outputs["features"]).shape == (2, 8)


def test_grpc_value_count_and_size_checks():
    f = tf.make_tensor_proto(np.zeros((2, 28, 28, 1), np.float32))
    f.tensor_content = b""
    f.float_val.extend([0.5] * 5)
    with pytest.raises(ServingError, match=r"input 'images': float_val has 5 values, shape \[2, 28, 28, 1\] "
                                           r"declares 1568"):
        tensor_proto_to_array("images", f, DEFAULT_TENSOR_BYTES)
    big = tf.make_tensor_proto(np.zeros(1, np.float32))
    big.tensor_shape.dim[0].size = MAX_BROADCAST_ELEMENTS + 1
    with pytest.raises(ServingError, match="broadcast only to at most"):
        tensor_proto_to_array("x", big, DEFAULT_TENSOR_BYTES)
    bad_content = tf.make_tensor_proto(np.zeros((2, 3), np.float32))
    bad_content.tensor_content = bad_content.tensor_content[:-4]
    stray = tf.make_tensor_proto(np.zeros((2,), np.float32))
    stray.int_val.extend([1, 2])
    both = tf.make_tensor_proto(np.zeros((2,), np.float32))
    both.float_val.extend([1, 2])
    int8 = tf.make_tensor_proto(np.zeros((2,), np.int8))
    int8.tensor_content = b""
    int8.int_val.extend([1, 300])
    str_content = _strings_proto([2], [])
    str_content.tensor_content = b"ab"
    complex_ = tf.make_tensor_proto(np.zeros((2,), np.complex64))
    deep = tf.make_tensor_proto(np.zeros(1, np.float32))
    for _ in range(40):
        deep.tensor_shape.dim.add(size=1)
    for proto, needle in [(bad_content, "tensor_content has 20 bytes"), (stray, "cannot carry values in int_val"),
                          (both, "both tensor_content and float_val"), (int8, "outside the range"),
                          (str_content, "not tensor_content"), (complex_, "unsupported dtype DT_COMPLEX64"),
                          (deep, "more than 32")]:
        with pytest.raises(ServingError, match=needle) as e:
            tensor_proto_to_array("x", proto, DEFAULT_TENSOR_BYTES)
        assert e.value.code == "INVALID_ARGUMENT" and "input 'x'" in e.value.message
    # strings count their real bytes (plus a per-element charge), not 8 bytes each
    with pytest.raises(ServingError, match="over the size limit"):
        tensor_proto_to_array("x", _strings_proto([3], [b"a" * 400] * 3), 1000)
    assert tensor_proto_to_array("x", _strings_proto([3], [b"a" * 100] * 3), 1000).shape == (3,)


def test_grpc_value_fields_decode_like_tf():
    cases = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1.5, -2.0], np.float64),
             np.array([0.5, 65504.0], np.float16), np.array([-128, 127], np.int8), np.array([0, 65535], np.uint16),
             np.array([-(2 ** 63), 2 ** 63 - 1], np.int64), np.array([2 ** 64 - 1, 0], np.uint64),
             np.array([True, False, True]), np.array([b"a", b"", b"\xff"], dtype=object)]
    for arr in cases:
        proto = tf.make_tensor_proto(arr)
        if proto.tensor_content:  # move the values to the dtype's *_val field, as other clients send them
            values = tf.make_ndarray(proto)
            proto.tensor_content = b""
            field = {np.float32: "float_val", np.float64: "double_val", np.int8: "int_val",
                     np.uint16: "int_val", np.int64: "int64_val", np.uint64: "uint64_val"}.get(arr.dtype.type)
            if arr.dtype == np.float16:
                proto.half_val.extend(values.view(np.uint16).ravel().tolist())
            else:
                getattr(proto, field).extend(values.ravel().tolist())
        got = tensor_proto_to_array("x", proto, DEFAULT_TENSOR_BYTES)
        assert got.dtype == tf.make_ndarray(proto).dtype and got.shape == arr.shape, arr.dtype
        assert got.tolist() == tf.make_ndarray(proto).tolist() == arr.tolist()
    # TF's own one-value shorthand for a small shape still works: tf.make_tensor_proto(0.5, shape=...)
    small = tensor_proto_to_array("x", tf.make_tensor_proto(0.5, shape=[2, 3]), DEFAULT_TENSOR_BYTES)
    assert small.shape == (2, 3) and np.all(small == 0.5)


def test_grpc_request_field_budget_and_unimplemented(server, channel):
    # 300k empty strings: ~600 KB on the wire, ~10 MB once parsed; over the 262,144 field budget
    many = _request("tiny", "image_bytes", "image_bytes", _strings_proto([300_000], [b""] * 300_000))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as e:
        stub.Predict(many, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "more than 262144" in e.value.details()
    raw = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                              request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as e:
        raw(b"\x12\xff\xff\x7f", timeout=30)  # an inputs entry claiming 2 MB that is not there
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        stub.Classify(classification_pb2.ClassificationRequest(), timeout=30)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert grpc_predict(channel, "tiny", {"images": images(1)}).model_spec.version.value == 2


class _SlowStatus:
    """A manager whose status() blocks until released: RPCs that stay in flight."""

    def __init__(self):
        self.inside = threading.Semaphore(0)
        self.release = threading.Event()

    def status(self, name, version=None, label=None):
        self.inside.release()
        self.release.wait(10)
        return [(1, VersionState("AVAILABLE"))]


def test_grpc_concurrent_rpcs_beyond_limit_are_resource_exhausted():
    slow = _SlowStatus()
    g = GrpcServer(slow, "127.0.0.1", 0, max_workers=2, max_concurrent_rpcs=2).start()
    ch = grpc.insecure_channel(f"127.0.0.1:{g.port}")
    stub = model_service_pb2_grpc.ModelServiceStub(ch)
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "m"
    try:
        held = [stub.GetModelStatus.future(req, timeout=20) for _ in range(2)]
        for _ in range(2):
            assert slow.inside.acquire(timeout=10)  # both admitted calls are running
        extra = [stub.GetModelStatus.future(req, timeout=20) for _ in range(4)]
        codes = [f.exception().code() if f.exception() else grpc.StatusCode.OK for f in extra]
        assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 4, codes
        slow.release.set()
        assert [f.result().model_version_status[0].version for f in held] == [1, 1]
        assert stub.GetModelStatus(req, timeout=10).model_version_status[0].version == 1
    finally:
        slow.release.set()
        ch.close()
        g.stop()


@pytest.fixture()
def strict_rest(server):
    """A REST front end with a 1 s request deadline, 2 connections and JSON depth 8."""
    rs = RestServer(server.manager, "127.0.0.1", 0, max_connections=2, timeout_seconds=1.0,
                    max_json_depth=8).start()
    rs.rest_port = rs.port  # what server_support.rest() reads
    yield rs
    rs.stop()


def _trickle(port: int, head: bytes, drip: bytes, seconds: float = 5.0) -> tuple[bytes, float]:
    """Send ``head``, then ``drip`` one byte per 100 ms until the server answers or closes;
    (what it sent back, seconds from the first byte)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    t0 = time.monotonic()
    sock.sendall(head)
    data = b""
    try:
        for i in range(int(seconds / 0.1)):
            if select.select([sock], [], [], 0.1)[0]:
                break
            sock.send(drip[i % len(drip):i % len(drip) + 1])
        while select.select([sock], [], [], 2.0)[0]:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass  # reset by the server: it closed the connection
    finally:
        sock.close()
    return data, time.monotonic() - t0


def test_rest_trickled_request_cut_at_deadline(strict_rest):
    port = strict_rest.port
    head = b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    data, took = _trickle(port, head, b" ")
    assert data.split(b"\r\n")[0].endswith(b"408 Request Timeout"), data[:200]
    assert b"rest_api_timeout_in_ms" in data and took < 1.0 + 1.5, took
    # headers trickled as well: 408 (or closed) within the deadline too
    data, took = _trickle(port, b"GET /v1/models/tiny HTTP/1.1\r\n", b"X-Slow: aaaaaaaaaa\r\n")
    assert (not data or b" 408 " in data.split(b"\r\n")[0]) and took < 1.0 + 1.5, (data[:200], took)
    # the deadline is per request: a keep-alive connection serves request after request
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(3):
        conn.request("POST", "/v1/models/tiny:predict", body=json.dumps({"instances": images(1).tolist()}))
        r = conn.getresponse()
        assert r.status == 200 and len(json.loads(r.read())["predictions"]) == 1
        time.sleep(0.4)  # 1.2 s in all on one connection, over the 1 s budget of one request
    conn.close()


def test_rest_stalled_connections_capped_then_freed(strict_rest):
    port = strict_rest.port
    stalled = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
    for s in stalled:
        s.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nContent-Length: 50\r\n\r\n{")
    time.sleep(0.2)
    extra = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert b" 503 " in extra.recv(4096).split(b"\r\n")[0]
    extra.close()
    for s in stalled:  # each is answered 408 at its deadline, and its slot comes back
        assert b" 408 " in s.recv(4096).split(b"\r\n")[0]
        s.close()
    assert wait_status_ok(port, seconds=5) == 200


def _nested(depth: int) -> bytes:
    return b'{"instances": ' + b"[" * (depth - 1) + b"0" + b"]" * (depth - 1) + b"}"


def test_rest_json_nesting_limit(server, strict_rest):
    for body in (_nested(100), _nested(200_000)):
        s, resp = rest(server, "POST", "/v1/models/tiny:predict", raw=body)
        assert s == 400 and "nested too deeply" in resp["error"] and "64" in resp["error"]
    # brackets inside strings do not count; a limit of 8 still takes a rank-4 tensor (depth 6)
    s, resp = rest(strict_rest, "POST", "/v1/models/tiny:predict", raw=_nested(9))
    assert s == 400 and "more than 8 levels" in resp["error"]
    s, resp = rest(strict_rest, "POST", "/v1/models/tiny:predict",
                   {"signature_name": "[[[[[[[[[[", "inputs": {"images": images(1).tolist()}})
    assert s == 400 and "not found" in resp["error"]
    s, resp = rest(strict_rest, "POST", "/v1/models/tiny:predict", {"inputs": {"images": images(2).tolist()}})
    assert s == 200 and len(resp["outputs"]["features"]) == 2
    assert not json_too_deep(b'["\\\\", "\\"[[[[[[[[[[[["]', 3) and json_too_deep(b'["\\\\"' + b"[" * 4, 3)


def test_serve_flags_for_limits():
    from keras_ssl.server.app import _check_positive_flags, _UsageError, build_parser

    args = build_parser().parse_args(["--grpc_max_concurrent_rpcs=5", "--rest_api_max_json_depth=16",
                                      "--rest_api_timeout_in_ms=2500"])
    assert (args.grpc_max_concurrent_rpcs, args.rest_api_max_json_depth, args.rest_api_timeout_in_ms) == (5, 16, 2500)
    _check_positive_flags(args)
    for bad in (["--grpc_max_concurrent_rpcs=-1"], ["--rest_api_max_json_depth=0"]):
        with pytest.raises(_UsageError):
            _check_positive_flags(build_parser().parse_args(bad))
