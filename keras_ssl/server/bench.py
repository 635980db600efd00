"""Throughput benchmark of the local server against in-process inference.

    python -m keras_ssl.serve_bench [--export-dir DIR | --run-dir RUN] \\
        [--seconds 10] [--concurrency 1 8 32] [--protocols grpc rest] \\
        [--images-per-request 1] [--batching-config serving/batching.config | --no-batching]

Starts ``python -m keras_ssl.serve`` as a subprocess on free ports of
127.0.0.1, then for each protocol and concurrency level runs that many
client threads, each sending the same pre-encoded request in a loop for a
fixed time (REST: persistent HTTP/1.1 connections, JSON row format; gRPC:
one channel, tensorflow-serving-api stubs). Prints one JSON line per
measurement (requests/s, images/s, p50/p99 latency in ms, errors, server RSS
at start and end of the level) and a table; the baseline is in-process
inference on the same machine, measured before the server starts:
``encoder(batch, training=False)`` on the Keras encoder (when there is one)
and the SavedModel's ``serving_default`` called directly, both on batches of
the server's ``max_batch_size``. The SavedModel baseline is measured again
(3 s, server idle) right before every level and ``ratio_vs_adjacent`` uses
that figure, so uneven background load does not skew the ratio.

Model: ``--export-dir`` (``<base>/<name>`` holding versions, or one version
directory), ``--run-dir`` (exports ``RUN/encoder.keras`` into a temporary
directory), or neither: the BCNN encoder of the thesis (random weights) is
built and exported.
"""
from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> Optional[float]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[i]


# --------------------------------------------------------------------------
# Model preparation
# --------------------------------------------------------------------------

def _demo_encoder():
    """The thesis BCNN (random weights) if the project's encoder is importable, else a small CNN."""
    import keras

    try:
        from keras_ssl.encoders.bcnn import BCNNParams, build_bcnn

        return build_bcnn(BCNNParams(), (28, 28, 1)), "bcnn (random weights)"
    except Exception:  # noqa: BLE001 - fall back to a self-contained encoder
        inp = keras.Input((28, 28, 1), name="images")
        x = keras.layers.Conv2D(32, 3, activation="relu", name="conv1")(inp)
        x = keras.layers.MaxPooling2D(name="pool1")(x)
        x = keras.layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
        x = keras.layers.MaxPooling2D(name="pool2")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        return keras.Model(inp, keras.layers.Dense(128, name="fc")(x)), "small CNN (random weights)"


def prepare_model(args, tmp: Path):
    """(model_base_path, model_name, keras encoder or None, description)."""
    from keras_ssl import export as ex

    if args.export_dir:
        d = Path(args.export_dir).resolve()
        if (d / "saved_model.pb").is_file():  # a version directory
            return d.parent, d.parent.name, None, f"export {d}"
        if not ex.existing_versions(d):
            raise SystemExit(f"error: no version directories under {d}")
        return d, d.name, None, f"export {d}"
    if args.run_dir:
        encoder, config = ex.load_run(args.run_dir)
        name = (config.get("export") or {}).get("model_name") or config.get("name") or "model"
        ex.export_encoder(encoder, tmp, name, config=config)
        return tmp / name, name, encoder, f"run {args.run_dir}"
    encoder, desc = _demo_encoder()
    ex.export_encoder(encoder, tmp, "bench")
    return tmp / "bench", "bench", encoder, desc


# --------------------------------------------------------------------------
# In-process baseline
# --------------------------------------------------------------------------

def in_process(fn, x: np.ndarray, seconds: float) -> dict:
    fn(x)  # warm up / trace
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        fn(x)
        n += 1
    dt = time.perf_counter() - t0
    return {"batches": n, "batch_size": len(x), "images_per_s": round(n * len(x) / dt, 1)}


# --------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------

def _run_level(worker, concurrency: int, seconds: float) -> dict:
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    first_error: list[str] = []
    deadline = time.perf_counter() + seconds
    start = threading.Barrier(concurrency + 1)

    def loop(i):
        call = worker()
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
    all_lat = sorted(v for lat in latencies for v in lat)
    return {"requests": len(all_lat), "duration_s": round(dt, 2), "errors": sum(errors),
            "requests_per_s": round(len(all_lat) / dt, 1),
            "p50_ms": round(1e3 * _percentile(all_lat, 0.50), 2) if all_lat else None,
            "p99_ms": round(1e3 * _percentile(all_lat, 0.99), 2) if all_lat else None,
            **({"first_error": first_error[0]} if first_error else {})}


def run_grpc_level(channel, request, concurrency: int, seconds: float) -> dict:
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
    lat = sorted(latencies)
    return {"requests": len(lat), "duration_s": round(dt, 2), "errors": errors[0],
            "requests_per_s": round(len(lat) / dt, 1),
            "p50_ms": round(1e3 * _percentile(lat, 0.50), 2) if lat else None,
            "p99_ms": round(1e3 * _percentile(lat, 0.99), 2) if lat else None,
            **({"first_error": first_error[0]} if first_error else {})}


def rest_worker(port: int, name: str, body: bytes):
    def make():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json"}

        def call():
            conn.request("POST", f"/v1/models/{name}:predict", body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {data[:200]!r}")
        return call
    return make


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def _wait_ready(proc, port: int, name: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", f"/v1/models/{name}")
            r = conn.getresponse()
            body = json.loads(r.read())
            if r.status == 200 and any(v["state"] == "AVAILABLE" for v in body["model_version_status"]):
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    raise SystemExit("error: server not ready in time")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m keras_ssl.serve_bench", description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--export-dir", help="<base>/<name> with version dirs, or one version dir")
    src.add_argument("--run-dir", help="finished run (encoder.keras + config.json)")
    ap.add_argument("--seconds", type=float, default=10.0, help="per protocol and concurrency level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--protocols", nargs="+", choices=["grpc", "rest"], default=["grpc", "rest"])
    ap.add_argument("--images-per-request", type=int, nargs="+", default=[1],
                    help="images in each request (several values: one sweep each)")
    ap.add_argument("--batching-config", default=str(REPO / "serving" / "batching.config"))
    ap.add_argument("--no-batching", action="store_true")
    ap.add_argument("--json-out", help="also write the JSON lines to this file")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.seconds > 3600 or min(args.concurrency) < 1 or max(args.concurrency) > 256:
        ap.error("--seconds must be in (0, 3600], --concurrency in [1, 256]")
    if not all(1 <= n <= 1024 for n in args.images_per_request):
        ap.error("--images-per-request must be in [1, 1024]")

    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from keras_ssl.server.models import BatchingConfig, parse_batching_config

    batching = None if args.no_batching else parse_batching_config(
        Path(args.batching_config).read_text(), args.batching_config)
    batch = (batching or BatchingConfig()).max_batch_size
    lines = []

    def emit(rec):
        lines.append(rec)
        print(json.dumps(rec), flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="serve_bench-"))
    proc = None
    try:
        base, name, encoder, desc = prepare_model(args, tmp)
        loaded = tf.saved_model.load(str(base / str(max(int(p.name) for p in base.iterdir() if p.name.isdigit()))))
        sig = loaded.signatures["serving_default"]
        spec = sig.structured_input_signature[1]["images"]
        h, w, c = spec.shape[1:]
        rng = np.random.default_rng(0)
        xb = rng.random((batch, h, w, c), dtype=np.float32)
        emit({"kind": "setup", "model": desc, "input": [h, w, c], "cpu_count": os.cpu_count(),
              "batching": None if batching is None else vars(batching),
              "images_per_request": args.images_per_request, "seconds": args.seconds,
              "tensorflow": tf.__version__, "loadavg_1m": round(os.getloadavg()[0], 2)})
        base_secs = min(args.seconds, 10.0)
        ref = {}
        if encoder is not None:
            r = in_process(lambda x: encoder(x, training=False), xb, base_secs)
            ref["keras"] = r["images_per_s"]
            emit({"kind": "in_process", "call": "encoder(batch, training=False)", **r})
            r = in_process(encoder.predict_on_batch, xb, base_secs)
            ref["keras_predict"] = r["images_per_s"]
            emit({"kind": "in_process", "call": "encoder.predict_on_batch(batch)", **r})
        xt = tf.constant(xb)
        r = in_process(lambda x: sig(images=x), xt, base_secs)
        ref["savedmodel"] = r["images_per_s"]
        emit({"kind": "in_process", "call": "SavedModel serving_default(images=batch)", **r})

        grpc_port, rest_port = _free_port(), _free_port()
        cmd = [sys.executable, "-m", "keras_ssl.serve", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
               f"--model_name={name}", f"--model_base_path={base}", "--file_system_poll_wait_seconds=0"]
        if batching is not None:
            cmd += ["--enable_batching", f"--batching_parameters_file={Path(args.batching_config).resolve()}"]
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        log_path = tmp / "server.log"
        with open(log_path, "wb") as logf:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=logf, stderr=subprocess.STDOUT)
        _wait_ready(proc, rest_port, name)
        emit({"kind": "server", "pid": proc.pid, "rss_mb_ready": rss_mb(proc.pid), "cmd": " ".join(cmd)})

        gc.collect()
        gc.freeze()  # keep client-side full collections (TF heap) out of the latencies
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}",
                                        options=[("grpc.max_receive_message_length", -1)])
        results = []
        levels = [(ipr, proto, conc) for ipr in args.images_per_request
                  for proto in args.protocols for conc in args.concurrency]
        for ipr, proto, conc in levels:
            x = rng.random((ipr, h, w, c), dtype=np.float32)
            # In-process SavedModel images/s measured right before this level
            # (server idle): the ratio stays meaningful when other jobs load
            # the machine unevenly over the run.
            adjacent = in_process(lambda b: sig(images=b), xt, min(args.seconds, 3.0))["images_per_s"]
            rss0 = rss_mb(proc.pid)
            if proto == "grpc":
                req = predict_pb2.PredictRequest()
                req.model_spec.name = name
                req.model_spec.signature_name = "serving_default"
                req.inputs["images"].CopyFrom(tf.make_tensor_proto(x))
                r = run_grpc_level(channel, req, conc, args.seconds)
            else:
                rest_body = json.dumps({"instances": x.tolist()}).encode()
                r = _run_level(rest_worker(rest_port, name, rest_body), conc, args.seconds)
            rec = {"kind": "load", "protocol": proto, "concurrency": conc,
                   "images_per_request": ipr, "batching": batching is not None, **r,
                   "images_per_s": round(r["requests_per_s"] * ipr, 1),
                   "rss_mb_start": rss0, "rss_mb_end": rss_mb(proc.pid),
                   "loadavg_1m": round(os.getloadavg()[0], 2),
                   "in_process_adjacent_images_per_s": adjacent,
                   "ratio_vs_adjacent": round(r["requests_per_s"] * ipr / adjacent, 3) if adjacent else None}
            for k, v in ref.items():
                rec[f"ratio_vs_{k}"] = round(rec["images_per_s"] / v, 3) if v else None
            emit(rec)
            results.append(rec)
        channel.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    # readable table
    print()
    print(f"{'protocol':<8} {'img/req':>7} {'conc':>4} {'req/s':>9} {'img/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'RSS MB start->end':>18} {'x adjacent':>10} "
          + " ".join(f"{'x ' + k:>12}" for k in ref))
    for r in results:
        print(f"{r['protocol']:<8} {r['images_per_request']:>7} {r['concurrency']:>4} {r['requests_per_s']:>9.1f} {r['images_per_s']:>9.1f} "
              f"{r['p50_ms'] or 0:>8.2f} {r['p99_ms'] or 0:>8.2f} {r['errors']:>6} "
              f"{str(r['rss_mb_start']) + ' -> ' + str(r['rss_mb_end']):>18} {r['ratio_vs_adjacent']:>10.3f} "
              + " ".join(f"{r['ratio_vs_' + k]:>12.3f}" for k in ref))
    print("in-process images/s: " + ", ".join(f"{k} {v:.1f}" for k, v in ref.items())
          + f" (batch {batch})")
    if args.json_out:
        Path(args.json_out).write_text("".join(json.dumps(r) + "\n" for r in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
