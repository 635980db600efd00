"""``python -m keras_ssl.serve_bench``: the flags and the order of the benchmark's steps.

:func:`main` parses the flags, prepares the model, measures the in-process
baselines, starts the server subprocess, measures every (images per
request, protocol, concurrency) level and prints the report; see
:mod:`keras_ssl.server.bench` for what is measured. Exit status 0, or
argparse's 2 for invalid flags.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from keras_ssl.server.bench.measure import grpc_level, in_process, rest_level
from keras_ssl.server.bench.model import ServingSignature, prepare_model, serving_signature
from keras_ssl.server.bench.process import LOOPBACK, REPO, ServerProcess, serve_subprocess
from keras_ssl.server.bench.report import Report

DESCRIPTION = "Throughput benchmark of the local server against in-process inference."
#: In-process baselines run at most this long; the one before each level (server idle) this long.
BASELINE_SECONDS, ADJACENT_SECONDS = 10.0, 3.0


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m keras_ssl.serve_bench", description=DESCRIPTION)
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
    return args


def _baselines(report: Report, encoder, sig: ServingSignature, xb: np.ndarray,
               seconds: float) -> dict[str, float]:
    """In-process images/s of each way to run the model (emitted), keyed for ``ratio_vs_<key>``."""
    import tensorflow as tf

    calls = []
    if encoder is not None:
        calls += [("keras", "encoder(batch, training=False)", lambda x: encoder(x, training=False), xb),
                  ("keras_predict", "encoder.predict_on_batch(batch)", encoder.predict_on_batch, xb)]
    calls.append(("savedmodel", "SavedModel serving_default(images=batch)", sig, tf.constant(xb)))
    ref = {}
    for key, call, fn, x in calls:
        r = in_process(fn, x, seconds)
        ref[key] = r["images_per_s"]
        report.emit({"kind": "in_process", "call": call, **r})
    return ref


def _load_record(proto: str, conc: int, ipr: int, batching_on: bool, r: dict, rss0, rss1,
                 adjacent: float, ref: dict[str, float]) -> dict:
    """The ``"kind": "load"`` record of one level, with its ratios to the baselines."""
    rec = {"kind": "load", "protocol": proto, "concurrency": conc,
           "images_per_request": ipr, "batching": batching_on, **r,
           "images_per_s": round(r["requests_per_s"] * ipr, 1),
           "rss_mb_start": rss0, "rss_mb_end": rss1,
           "loadavg_1m": round(os.getloadavg()[0], 2),  # right after the level
           "in_process_adjacent_images_per_s": adjacent,
           "ratio_vs_adjacent": round(r["requests_per_s"] * ipr / adjacent, 3) if adjacent else None}
    for k, v in ref.items():
        rec[f"ratio_vs_{k}"] = round(rec["images_per_s"] / v, 3) if v else None
    return rec


def _load_levels(args: argparse.Namespace, report: Report, server: ServerProcess, name: str,
                 sig: ServingSignature, xb: np.ndarray, rng: np.random.Generator,
                 ref: dict[str, float], batching_on: bool) -> list[dict]:
    """Every (images per request, protocol, concurrency) level against ``server``; records emitted."""
    import grpc
    import tensorflow as tf

    gc.collect()
    gc.freeze()  # keep client-side full collections (TF heap) out of the latencies
    xt = tf.constant(xb)
    results = []
    with grpc.insecure_channel(f"{LOOPBACK}:{server.grpc_port}",
                               options=[("grpc.max_receive_message_length", -1)]) as channel:
        for ipr, proto, conc in itertools.product(args.images_per_request, args.protocols,
                                                  args.concurrency):
            x = rng.random((ipr, *sig.image_shape), dtype=np.float32)
            # In-process SavedModel images/s measured right before this level
            # (server idle): the ratio stays meaningful when other jobs load
            # the machine unevenly over the run.
            adjacent = in_process(sig, xt, min(args.seconds, ADJACENT_SECONDS))["images_per_s"]
            rss0 = server.rss_mb()
            if proto == "grpc":
                r = grpc_level(channel, name, x, conc, args.seconds)
            else:
                r = rest_level(server.rest_port, name, x, conc, args.seconds)
            rec = _load_record(proto, conc, ipr, batching_on, r, rss0, server.rss_mb(), adjacent, ref)
            results.append(report.emit(rec))
    return results


def _setup_record(args: argparse.Namespace, desc: str, sig: ServingSignature, batching) -> dict[str, Any]:
    import tensorflow as tf

    return {"kind": "setup", "model": desc, "input": list(sig.image_shape), "cpu_count": os.cpu_count(),
            "batching": None if batching is None else vars(batching),
            "images_per_request": args.images_per_request, "seconds": args.seconds,
            "tensorflow": tf.__version__, "loadavg_1m": round(os.getloadavg()[0], 2)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from keras_ssl.server.model_config import BatchingConfig, parse_batching_config

    batching = None if args.no_batching else parse_batching_config(
        Path(args.batching_config).read_text(), args.batching_config)
    batch = (batching or BatchingConfig()).max_batch_size
    report = Report()
    with tempfile.TemporaryDirectory(prefix="serve_bench-", ignore_cleanup_errors=True) as tmp_dir:
        tmp = Path(tmp_dir)
        base, name, encoder, desc = prepare_model(args.export_dir, args.run_dir, tmp)
        sig = serving_signature(base)
        rng = np.random.default_rng(0)
        xb = rng.random((batch, *sig.image_shape), dtype=np.float32)
        report.emit(_setup_record(args, desc, sig, batching))
        ref = _baselines(report, encoder, sig, xb, min(args.seconds, BASELINE_SECONDS))
        batching_file = None if batching is None else Path(args.batching_config).resolve()
        with serve_subprocess(name, base, batching_file, tmp / "server.log") as server:
            report.emit({"kind": "server", "pid": server.pid, "rss_mb_ready": server.rss_mb(),
                         "cmd": " ".join(server.cmd)})
            results = _load_levels(args, report, server, name, sig, xb, rng, ref, batching is not None)
    report.table(results, ref, batch)
    if args.json_out:
        report.write(args.json_out)
    return 0
