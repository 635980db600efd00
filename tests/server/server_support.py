"""Helpers of the server tests: REST / gRPC calls to a running server, b64 values, ports.

Test modules import this as ``server_support`` (pytest puts tests/server/ on
sys.path); the ``server`` and ``channel`` fixtures are in conftest.py; images,
PNGs and the tiny encoder come from tests/support.py.
"""
from __future__ import annotations

import base64
import http.client
import json
import socket
import time

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

#: The module server's REST body / gRPC message limit and image pixel limit.
MAX_BODY = 1 << 20
MAX_PIXELS = 64 * 64


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode("ascii")}


def rest(h, method, path, body=None, raw: bytes | None = None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", h.rest_port, timeout=30)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers=headers or {})
    r = conn.getresponse()
    payload = r.read()
    conn.close()
    return r.status, json.loads(payload) if payload else None


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_status_ok(port: int, model: str = "tiny", seconds: float = 10.0) -> int:
    """GET /v1/models/MODEL until it answers 200 or ``seconds`` pass; the last status."""
    deadline, status = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", f"/v1/models/{model}")
        status = conn.getresponse().status
        conn.close()
        if status == 200:
            break
        time.sleep(0.1)
    return status

