"""Soak (slow): REST and gRPC under a mix of good and hostile requests from 32 clients.

``python -m keras_ssl.serve`` runs as a subprocess (its RSS is its own) with
batching and a 1 MiB body / message limit. :data:`CLIENTS` threads (half
REST, half gRPC, each with its own channel) send, for :data:`WARMUP_SECONDS`
and then :data:`SOAK_SECONDS`, good requests and bad ones (malformed JSON,
wrong dtype, unknown model, oversized body / message, bad base64, JSON nested
too deeply, huge declared shapes, value-count mismatches, too many fields,
corrupt images). Pass: no good request fails, every bad one is answered 4xx
/ INVALID_ARGUMENT / NOT_FOUND / RESOURCE_EXHAUSTED, the server's RSS at the
end is within 10 % of its RSS after the warm-up, and it still answers.
Every client loop stops by itself (deadline and request cap).

    python -m pytest -q -s -m slow tests/server -k soak
"""
from __future__ import annotations

import http.client
import json
import random
import struct
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from keras_ssl.export import export_encoder
from keras_ssl.server.bench.process import LOOPBACK, REPO, serve_subprocess
from server_support import b64
from support import images, png, tiny_encoder

SOAK_SECONDS = 120
WARMUP_SECONDS = 20
CLIENTS = 32
MAX_BODY = 1 << 20
MAX_REQUESTS_PER_CLIENT = 200_000
RSS_TOLERANCE = 0.10

_OK_REST = {200}
_BAD_GRPC = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def _png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))


def _tensor(dtype, dims, **values):
    t = tensor_pb2.TensorProto(dtype=dtype)
    for d in dims:
        t.tensor_shape.dim.add(size=d)
    for field, vals in values.items():
        getattr(t, field).extend(vals)
    return t


def _rest_cases():
    x = images(2).tolist()
    good_png = b64(png(images(1)[0]))
    good = {
        "rest_rows": ("POST", "/v1/models/soak:predict", json.dumps({"instances": x}).encode()),
        "rest_b64": ("POST", "/v1/models/soak:predict",
                     json.dumps({"signature_name": "image_bytes", "instances": [good_png]}).encode()),
        "rest_status": ("GET", "/v1/models/soak", None),
    }
    bad = {
        "rest_malformed_json": ("POST", "/v1/models/soak:predict", b'{"instances": [1, 2'),
        "rest_wrong_dtype": ("POST", "/v1/models/soak:predict",
                             json.dumps({"instances": [[[["a"]] * 28] * 28]}).encode()),
        "rest_unknown_model": ("POST", "/v1/models/nope:predict", json.dumps({"instances": x}).encode()),
        "rest_oversized_body": ("POST", "/v1/models/soak:predict", b" " * (2 * MAX_BODY)),
        "rest_bad_base64": ("POST", "/v1/models/soak:predict",
                            json.dumps({"signature_name": "image_bytes", "instances": [{"b64": "@@"}]}).encode()),
        "rest_deep_json": ("POST", "/v1/models/soak:predict", b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        "rest_huge_image_header": ("POST", "/v1/models/soak:predict", json.dumps(
            {"signature_name": "image_bytes", "instances": [b64(_png_header(30000, 30000))]}).encode()),
        "rest_huge_content_length": ("POST", "/v1/models/soak:predict", "10000000000000"),
    }
    return good, bad


def _grpc_cases():
    def req(sig, key, proto, name="soak"):
        r = predict_pb2.PredictRequest()
        r.model_spec.name, r.model_spec.signature_name = name, sig
        r.inputs[key].CopyFrom(proto)
        return r
    x = images(2)
    good = {
        "grpc_images": req("", "images", tf.make_tensor_proto(x)),
        "grpc_png": req("image_bytes", "image_bytes", tf.make_tensor_proto(np.array([png(x[0])], dtype=object))),
    }
    bad = {
        "grpc_wrong_dtype": req("", "images", tf.make_tensor_proto(np.array([b"x"], dtype=object))),
        "grpc_declared_3m_strings": req("image_bytes", "image_bytes",
                                        _tensor(types_pb2.DT_STRING, [3_000_000], string_val=[b"x" * 40])),
        "grpc_declared_huge_floats": req("", "images", _tensor(types_pb2.DT_FLOAT, [100000, 28, 28, 1],
                                                                float_val=[0.0])),
        "grpc_count_mismatch": req("", "images", _tensor(types_pb2.DT_FLOAT, [2, 28, 28, 1], float_val=[0.5] * 7)),
        "grpc_unknown_model": req("", "images", tf.make_tensor_proto(x), name="nope"),
        "grpc_corrupt_image": req("image_bytes", "image_bytes",
                                  tf.make_tensor_proto(np.array([b"\x89PNG\r\n\x1a\nbroken"], dtype=object))),
        "grpc_oversized_message": req("", "images", tf.make_tensor_proto(np.zeros((400, 28, 28, 1), np.float32))),
        "grpc_too_many_fields": req("image_bytes", "image_bytes",
                                    _tensor(types_pb2.DT_STRING, [300_000], string_val=[b""] * 300_000)),
    }
    return good, bad


class _Tally:
    """Thread-safe counts per request kind and the first failures."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: Counter = Counter()
        self.failures: list[str] = []

    def add(self, kind: str, good: bool, ok: bool, detail: str):
        with self.lock:
            self.counts[("good" if good else "bad", ok)] += 1
            self.counts[kind] += 1
            if not ok and len(self.failures) < 20:
                self.failures.append(f"{kind}: {detail}")


def _rest_call(port: int, method: str, path: str, body) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        if isinstance(body, str):  # a declared Content-Length with no body behind it
            conn.putrequest(method, path)
            conn.putheader("Content-Length", body)
            conn.endheaders()
        else:
            conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _rest_client(port, deadline, seed, tally):
    good, bad = _rest_cases()
    rng = random.Random(seed)
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        if time.monotonic() >= deadline:
            return
        is_good = rng.random() < 0.5
        kind = rng.choice(sorted(good if is_good else bad))
        method, path, body = (good if is_good else bad)[kind]
        try:
            status, payload = _rest_call(port, method, path, body)
            ok = status in _OK_REST if is_good else 400 <= status < 500
            detail = f"{status} {payload[:150]!r}"
        except OSError as e:
            ok, detail = False, f"{type(e).__name__}: {e}"
        tally.add(kind, is_good, ok, detail)


def _grpc_client(port, deadline, seed, tally):
    good, bad = _grpc_cases()
    rng = random.Random(seed)
    ch = grpc.insecure_channel(f"{LOOPBACK}:{port}", options=[("grpc.max_send_message_length", -1)])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
    try:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= deadline:
                return
            is_good = rng.random() < 0.5
            kind = rng.choice(sorted(good if is_good else bad))
            try:
                resp = stub.Predict((good if is_good else bad)[kind], timeout=30)
                ok, detail = is_good and "features" in resp.outputs, "OK"
            except grpc.RpcError as e:
                ok, detail = (not is_good and e.code() in _BAD_GRPC), f"{e.code().name}: {e.details()[:150]}"
            tally.add(kind, is_good, ok, detail)
    finally:
        ch.close()


@pytest.mark.slow
def test_soak_mixed_hostile_load(tmp_path):
    export_encoder(tiny_encoder(), tmp_path / "export", "soak")
    extra = [f"--max_body_bytes={MAX_BODY}"]
    with serve_subprocess("soak", tmp_path / "export" / "soak", REPO / "serving" / "batching.config",
                          tmp_path / "server.log", extra_args=extra) as srv:
        tally, t0 = _Tally(), time.monotonic()
        ready_rss = srv.rss_mb()
        deadline = t0 + WARMUP_SECONDS + SOAK_SECONDS
        threads = [threading.Thread(target=_rest_client if i % 2 == 0 else _grpc_client,
                                    args=(srv.rest_port if i % 2 == 0 else srv.grpc_port, deadline, i, tally),
                                    daemon=True) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(WARMUP_SECONDS)
        warm_rss, samples = srv.rss_mb(), []
        while time.monotonic() < deadline:
            time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
            samples.append(srv.rss_mb())
        for t in threads:
            t.join(60)
        end_rss, peak_rss = srv.rss_mb(), _status_mb(srv.pid, "VmHWM")
        after = _rest_call(srv.rest_port, "POST", "/v1/models/soak:predict",
                           json.dumps({"instances": images(1).tolist()}).encode())[0]
        alive = srv.proc.poll() is None
    c = tally.counts
    summary = {"seconds": WARMUP_SECONDS + SOAK_SECONDS, "clients": CLIENTS,
               "good": c[("good", True)] + c[("good", False)], "good_failed": c[("good", False)],
               "bad": c[("bad", True)] + c[("bad", False)], "bad_not_refused_cleanly": c[("bad", False)],
               "rss_mb": {"ready": ready_rss, "after_warmup": warm_rss, "end": end_rss, "peak": peak_rss,
                          "every_10s": samples},
               "per_kind": dict(sorted((k, v) for k, v in c.items() if isinstance(k, str))),
               "failures": tally.failures}
    print("\nSOAK " + json.dumps(summary, indent=1))
    assert not any(t.is_alive() for t in threads)
    assert alive and after == 200
    assert summary["good_failed"] == 0 and summary["bad_not_refused_cleanly"] == 0, tally.failures
    assert summary["good"] > 0 and summary["bad"] > 0
    assert abs(end_rss - warm_rss) <= RSS_TOLERANCE * warm_rss, summary["rss_mb"]
