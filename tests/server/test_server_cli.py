"""The command lines: python -m keras_ssl.serve with TF Serving's flags, the example
clients of serving/, and python -m keras_ssl.serve_bench (slow)."""
from __future__ import annotations

import http.client
import importlib.util
import json
import subprocess
import sys
import time

import grpc
import pytest
import tensorflow as tf

from keras_ssl.export import export_encoder
from server_support import free_port, grpc_predict
from support import ROOT as REPO
from support import SUBPROCESS_ENV, images, png, tiny_encoder


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
    rest_port, grpc_port = free_port(), free_port()
    env = SUBPROCESS_ENV
    proc = subprocess.Popen(
        [sys.executable, "-m", "keras_ssl.serve", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         "--model_name=cli_model", f"--model_base_path={tmp_path / 'export' / 'cli_model'}",
         "--enable_batching", f"--batching_parameters_file={REPO / 'serving' / 'batching.config'}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # Poll until the model is AVAILABLE (a loaded machine may answer before that).
        deadline, body = time.time() + 180, None
        while time.time() < deadline and proc.poll() is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=5)
                conn.request("GET", "/v1/models/cli_model")
                body = json.loads(conn.getresponse().read())
                if body.get("model_version_status", [{}])[0].get("state") == "AVAILABLE":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        assert body and body["model_version_status"][0]["state"] == "AVAILABLE", (proc.poll(), body)
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
    env = SUBPROCESS_ENV
    p = subprocess.run([sys.executable, "-m", "keras_ssl.serve_bench", "--export-dir", str(base / "tiny"),
                        "--seconds", "1", "--concurrency", "1", "4", "--json-out", str(out)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    loads = [r for r in recs if r["kind"] == "load"]
    assert {(r["protocol"], r["concurrency"]) for r in loads} == {("grpc", 1), ("grpc", 4), ("rest", 1), ("rest", 4)}
    assert all(r["errors"] == 0 and r["requests"] > 0 for r in loads)
    assert any(r["kind"] == "in_process" for r in recs)


def test_sigterm_during_startup_stops_cleanly():
    """The handlers are installed before anything loads: SIGTERM at that point sets the stop
    event (the server shuts down and exits 0) instead of killing the process."""
    import os
    import signal

    from keras_ssl.server.app import _stop_on_signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop = _stop_on_signal()
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
