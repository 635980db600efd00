"""A local cluster of training workers on this machine: ``python -m keras_ssl.cluster``.

    python -m keras_ssl.cluster --workers 2 [--max-restarts 3] -- --config CFG --run-dir DIR [...]

Starts ``--workers`` processes of ``python -m keras_ssl.train`` (everything after
``--`` is passed to each) on 127.0.0.1, each with free ports and its own
``TF_CONFIG`` (worker 0 is the chief), so that MultiWorkerMirroredStrategy
trains one model across them exactly as it would across machines: the global
batch is ``train.batch_size``, split between the workers; only the chief writes
the run directory. Their output is streamed line by line with a ``[workerN]``
prefix. When a worker dies (killed, crashed) the others are stopped and the whole
cluster is started again, up to ``--max-restarts`` times, resuming from the
chief's last checkpoint; a worker that stops with exit code 2 (a bad config or
input, a run directory that cannot be written: starting again would not help)
stops the cluster without a restart. Ctrl-C or SIGTERM stops every worker (each
saves a checkpoint at its next step) and ends the command without a restart.
The exit code is the chief's (2 when any worker stopped clearly).

On a real cluster, set ``TF_CONFIG`` on every machine yourself and run the train
command there (README, "Several machines").
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO, Optional, Sequence

#: Exit code of a clear stop (bad config or input, unwritable run directory): no restart.
CLEAR_STOP = 2
#: Seconds a stopped worker has to exit after SIGTERM before it is killed.
GRACE_SECONDS = 30.0
#: What each worker runs, before the arguments after ``--``.
TRAIN = (sys.executable, "-m", "keras_ssl.train")


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free on ``host`` now (bound to port 0, then released)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(ports: Sequence[int], host: str = "127.0.0.1") -> list[str]:
    """The ``TF_CONFIG`` of each worker of a cluster on ``host``:``ports`` (worker 0 the chief)."""
    cluster = {"worker": [f"{host}:{p}" for p in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(len(ports))]


def _stream(pipe: IO[bytes], prefix: str, out: IO[str], lock: threading.Lock) -> None:
    """Copy ``pipe`` to ``out``, each line (ended by a newline or a carriage return, as a
    progress bar redraws) prefixed."""
    buf = b""
    while True:
        chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
        if not chunk:
            break
        buf += chunk
        while True:
            cut = min((i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0), default=-1)
            if cut < 0:
                break
            line, end, buf = buf[:cut], buf[cut:cut + 1], buf[cut + 1:]
            if not line and end == b"\r":
                continue      # a progress bar's redraw of nothing
            with lock:
                out.write(prefix + line.decode(errors="replace") + end.decode())
                out.flush()
    if buf:
        with lock:
            out.write(prefix + buf.decode(errors="replace") + "\n")
            out.flush()


class Cluster:
    """One start of the workers: :meth:`wait` returns every worker's exit code.
    ``command``: what each worker runs before ``train_args`` (default :data:`TRAIN`)."""

    def __init__(self, workers: int, train_args: Sequence[str], out: IO[str] = sys.stdout,
                 env: Optional[dict] = None, command: Sequence[str] = TRAIN):
        self.out, self.lock = out, threading.Lock()
        base = dict(os.environ if env is None else env)
        self.procs: list[subprocess.Popen] = []
        self.threads: list[threading.Thread] = []
        for i, tf_config in enumerate(tf_configs(free_ports(workers))):
            proc = subprocess.Popen([*command, *train_args],
                                    env={**base, "TF_CONFIG": tf_config}, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            t = threading.Thread(target=_stream, args=(proc.stdout, f"[worker{i}] ", out, self.lock),
                                 daemon=True)
            t.start()
            self.procs.append(proc)
            self.threads.append(t)

    def say(self, text: str) -> None:
        with self.lock:
            self.out.write(f"[cluster] {text}\n")
            self.out.flush()

    def poll(self) -> list[Optional[int]]:
        return [p.poll() for p in self.procs]

    def stop(self, signum: int = signal.SIGTERM, grace: float = GRACE_SECONDS) -> None:
        """Send ``signum`` to every worker still running; kill those alive after ``grace`` s."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signum)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def wait(self, stop_requested: threading.Event) -> list[int]:
        """Wait until every worker has exited; once one fails (or a stop is requested),
        stop the others. Every worker's exit code."""
        stopping = False
        while True:
            codes = self.poll()
            if all(c is not None for c in codes):
                break
            failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
            if not stopping and (failed or stop_requested.is_set()):
                stopping = True
                if failed:
                    self.say(f"worker{failed[0]} exited with {describe(codes[failed[0]])}: stopping the others")
                self.stop(signal.SIGTERM if stop_requested.is_set() else signal.SIGKILL)
            time.sleep(0.05)
        for t in self.threads:
            t.join(timeout=5)
        return [p.returncode for p in self.procs]


def describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def needs_restart(codes: Sequence[int]) -> bool:
    """Whether a start whose workers ended with ``codes`` should be started again: some
    worker died or crashed, and none stopped clearly (exit code 2)."""
    return any(c != 0 for c in codes) and CLEAR_STOP not in codes


def run_cluster(workers: int, train_args: Sequence[str], max_restarts: int = 0,
                out: IO[str] = sys.stdout, env: Optional[dict] = None,
                command: Sequence[str] = TRAIN) -> int:
    """Start the cluster, restart it after a failure up to ``max_restarts`` times; the
    chief's exit code (of the last start). ``command``: :class:`Cluster`'s."""
    stop_requested = threading.Event()

    def request_stop(signum, frame):
        stop_requested.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        starts = 0
        while True:
            cluster = Cluster(workers, train_args, out=out, env=env, command=command)
            cluster.say(f"start {starts + 1}: {workers} worker(s), chief worker0, pids "
                        f"{', '.join(str(p.pid) for p in cluster.procs)}")
            codes = cluster.wait(stop_requested)
            chief = codes[0]
            if stop_requested.is_set():
                cluster.say("stopped on request: run the same command again to resume")
                return chief if chief != 0 else 130
            if not needs_restart(codes):
                if CLEAR_STOP in codes:     # a bad config or input, on whichever worker saw it
                    cluster.say("a worker stopped clearly (exit code 2): fix what it named, then run again")
                    return CLEAR_STOP
                if chief != 0:
                    cluster.say(f"the chief exited with {describe(chief)}")
                return chief
            if starts >= max_restarts:
                cluster.say(f"a worker failed ({', '.join(describe(c) for c in codes)}) and "
                            f"--max-restarts {max_restarts} is used up")
                return chief if chief != 0 else 1
            starts += 1
            cluster.say(f"a worker failed: restart {starts} of {max_restarts}, from the chief's last checkpoint")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        cut = argv.index("--")
        own, train_args = argv[:cut], argv[cut + 1:]
    else:
        own, train_args = argv, []
    p = argparse.ArgumentParser(prog="python -m keras_ssl.cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--max-restarts", type=int, default=0,
                   help="start the whole cluster again this many times after a worker fails (default 0)")
    args = p.parse_args(own)
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if args.max_restarts < 0:
        p.error("--max-restarts must be 0 or more")
    if "--config" not in train_args:
        p.error("pass the train command's arguments after --, e.g. -- --config configs/mnist_egomotion.json")
    return run_cluster(args.workers, train_args, args.max_restarts)


if __name__ == "__main__":
    sys.exit(main())
