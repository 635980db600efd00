"""Measurements of the benchmark: the in-process baseline and one load level per protocol.

:func:`in_process` times a function on one batch for a fixed time.
:func:`rest_level` and :func:`grpc_level` keep ``concurrency`` predict
requests of the same pre-encoded input in flight against the server for
``seconds`` and return requests/s, p50/p99 latency in ms and the error count
(with the first error's text); a failed request is counted, never raised.
REST uses one persistent HTTP/1.1 connection per client thread (row
format); gRPC one channel with futures (no client thread per request).
"""
from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Callable, Optional

import numpy as np

from keras_ssl.export.contract import IMAGES_INPUT, SERVING_SIGNATURE
from keras_ssl.server.bench.process import LOOPBACK


def _percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


def in_process(fn, x, seconds: float) -> dict:
    """Batches of ``x`` per second through ``fn`` (after one warm-up / tracing call)."""
    fn(x)  # warm up / trace
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        fn(x)
        n += 1
    dt = time.perf_counter() - t0
    return {"batches": n, "batch_size": len(x), "images_per_s": round(n * len(x) / dt, 1)}


def _level_result(latencies: list[float], dt: float, errors: int, first_error: Optional[str]) -> dict:
    """The record of one level from its request latencies (seconds) and duration."""
    lat = sorted(latencies)
    return {"requests": len(lat), "duration_s": round(dt, 2), "errors": errors,
            "requests_per_s": round(len(lat) / dt, 1),
            "p50_ms": round(1e3 * _percentile(lat, 0.50), 2) if lat else None,
            "p99_ms": round(1e3 * _percentile(lat, 0.99), 2) if lat else None,
            **({"first_error": first_error} if first_error else {})}


def _threaded_level(make_call: Callable[[], Callable[[], None]], concurrency: int, seconds: float) -> dict:
    """``concurrency`` threads, each calling its own ``make_call()`` in a loop until the deadline."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    first_error: list[str] = []
    deadline = time.perf_counter() + seconds
    start = threading.Barrier(concurrency + 1)

    def loop(i):
        call = make_call()
        start.wait()
        lat = latencies[i]
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            try:
                call()
                lat.append(time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001 - counted, reported
                errors[i] += 1
                if not first_error:
                    first_error.append(f"{type(e).__name__}: {e}"[:300])
                time.sleep(0.01)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(seconds + 60)
    dt = time.perf_counter() - t0
    return _level_result([v for lat in latencies for v in lat], dt, sum(errors),
                         first_error[0] if first_error else None)


def _rest_caller(port: int, name: str, body: bytes) -> Callable[[], Callable[[], None]]:
    """Per thread: a persistent connection and a call that POSTs ``body`` to :predict."""
    def make():
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
        headers = {"Content-Type": "application/json"}

        def call():
            conn.request("POST", f"/v1/models/{name}:predict", body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {data[:200]!r}")
        return call
    return make


def rest_level(port: int, name: str, x: np.ndarray, concurrency: int, seconds: float) -> dict:
    """One REST level: ``x`` as a JSON row-format :predict body, ``concurrency`` client threads."""
    body = json.dumps({"instances": x.tolist()}).encode()
    return _threaded_level(_rest_caller(port, name, body), concurrency, seconds)


def _grpc_futures_level(channel, request, concurrency: int, seconds: float) -> dict:
    """``concurrency`` requests kept in flight with futures (no client thread per slot)."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    first_error: list[str] = []
    active = [concurrency]
    all_done = threading.Event()
    deadline = time.perf_counter() + seconds

    def issue():
        t = time.perf_counter()
        fut = stub.Predict.future(request, timeout=60)
        fut.add_done_callback(lambda f: done(f, t))

    def done(fut, t):
        now = time.perf_counter()
        exc = fut.exception()
        with lock:
            if exc is None:
                latencies.append(now - t)
            else:
                errors[0] += 1
                if not first_error:
                    first_error.append(f"{exc.code().name}: {exc.details()}"[:300])
        if now < deadline:
            issue()
        else:
            with lock:
                active[0] -= 1
                if active[0] == 0:
                    all_done.set()

    t0 = time.perf_counter()
    for _ in range(concurrency):
        issue()
    all_done.wait(seconds + 120)
    dt = time.perf_counter() - t0
    return _level_result(latencies, dt, errors[0], first_error[0] if first_error else None)


def grpc_level(channel, name: str, x: np.ndarray, concurrency: int, seconds: float) -> dict:
    """One gRPC level: ``x`` as a PredictRequest on ``serving_default``, ``concurrency`` in flight."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    req.model_spec.signature_name = SERVING_SIGNATURE
    req.inputs[IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(x))
    return _grpc_futures_level(channel, req, concurrency, seconds)
