"""The server under test: ``python -m keras_ssl.serve`` in a subprocess on 127.0.0.1.

:func:`serve_subprocess` is a context manager: it picks two free loopback
ports, starts the server (its output goes to a log file), waits until the
model has an AVAILABLE version, and on exit always stops it (SIGTERM, then
kill after 30 s). A server that exits or is not ready in time ends the
benchmark with ``SystemExit`` (the process is still cleaned up).
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

#: The repository root: the server runs from it, with it on PYTHONPATH.
REPO = Path(__file__).resolve().parents[3]
#: The only address the benchmark binds or connects to.
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> Optional[float]:
    """Resident memory of ``pid`` in MB (None where /proc is not readable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


@dataclass
class ServerProcess:
    """A running server subprocess: its process, command line and ports."""
    proc: subprocess.Popen
    cmd: list[str]
    grpc_port: int
    rest_port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> Optional[float]:
        return rss_mb(self.proc.pid)


def _server_command(name: str, base: Path, grpc_port: int, rest_port: int,
                    batching_file: Optional[Path], extra_args: Sequence[str] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "keras_ssl.serve", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
           f"--model_name={name}", f"--model_base_path={base}", "--file_system_poll_wait_seconds=0"]
    if batching_file is not None:
        cmd += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
    return cmd + list(extra_args)


def wait_ready(proc: subprocess.Popen, port: int, name: str, timeout: float = 180) -> None:
    """Until the REST status of ``name`` lists an AVAILABLE version; SystemExit otherwise."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
            conn.request("GET", f"/v1/models/{name}")
            r = conn.getresponse()
            body = json.loads(r.read())
            if r.status == 200 and any(v["state"] == "AVAILABLE" for v in body["model_version_status"]):
                return
        except (OSError, ValueError, KeyError):
            pass  # not listening yet, or not loaded yet
        time.sleep(0.3)
    raise SystemExit("error: server not ready in time")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def serve_subprocess(name: str, base: Path, batching_file: Optional[Path],
                     log_path: Path, extra_args: Sequence[str] = ()) -> Iterator[ServerProcess]:
    """A ready server of model ``name`` (versions under ``base``), stopped on exit.

    ``batching_file``: a BatchingParameters file (``--enable_batching``), or None;
    ``extra_args``: more ``python -m keras_ssl.serve`` flags (limits, threads).
    """
    grpc_port, rest_port = free_port(), free_port()
    cmd = _server_command(name, base, grpc_port, rest_port, batching_file, extra_args)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        wait_ready(proc, rest_port, name)
        yield ServerProcess(proc, cmd, grpc_port, rest_port)
    finally:
        _stop(proc)
