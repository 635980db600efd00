"""Local server speaking TF Serving's REST and gRPC APIs.

For machines without TF Serving (it ships as a Docker image) and for our
tests. Takes the flags of ``tensorflow_model_server``::

    python -m keras_ssl.serve --model_name=mnist_egomotion \\
        --model_base_path=runs/RUN/export/mnist_egomotion \\
        [--port=8500] [--rest_api_port=8501] [--host=127.0.0.1] \\
        [--model_config_file=serving/models.config] \\
        [--enable_batching --batching_parameters_file=serving/batching.config] \\
        [--file_system_poll_wait_seconds=1] [--model_config_file_poll_wait_seconds=0] \\
        [--max_body_bytes=67108864]

A port of 0 disables that front end (as TF Serving's ``--rest_api_port=0``).
Extra flags (not in TF Serving): ``--host``, ``--max_body_bytes`` (REST body
and gRPC message limit, default 64 MiB), ``--max_image_pixels`` (encoded
images larger than this are refused before decoding), ``--allow_nonfinite``
(accept NaN/Infinity in float inputs; refused by default because an encoder
turns them into NaN features), ``--grpc_max_workers``,
``--grpc_max_concurrent_rpcs`` (RPCs admitted at once, RESOURCE_EXHAUSTED
beyond; default twice the workers), ``--rest_api_max_json_depth`` (400 for a
body nested deeper, default 64). Also TF Serving's ``--rest_api_num_threads``
(here: REST connections served at once, 503 beyond),
``--rest_api_timeout_in_ms`` (here: the time a client has to send one whole
request, counted from its first byte; 408 after it),
``--tensorflow_intra_op_parallelism`` and ``--tensorflow_inter_op_parallelism``.

Library use (tests, benchmarks): :func:`start_server` returns a
:class:`ServerHandle` with the bound ports (0 = pick a free port);
:meth:`ServerHandle.stop` stops everything it started (front ends, the
models.config watcher, the model manager). :func:`main` exits 2 with one
``error: ...`` line for a flag or config file it cannot run with.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, TypeVar

from keras_ssl.export.contract import MAX_IMAGE_PIXELS, NAME_RE
from keras_ssl.server.manager import ModelManager
from keras_ssl.server.model_config import (BatchingConfig, ModelConfig, parse_batching_config,
                                           parse_models_config)
from keras_ssl.server.rest_codec import DEFAULT_MAX_JSON_DEPTH
from keras_ssl.server.validation import Limits
from keras_ssl.server.watcher import ConfigFileWatcher

log = logging.getLogger("keras_ssl.serve")

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
T = TypeVar("T")


@dataclass
class ServerHandle:
    """A running server: its model manager, front ends (None: disabled) and config watcher."""
    manager: ModelManager
    rest: Optional[object]
    grpc: Optional[object]
    watcher: Optional[ConfigFileWatcher] = None

    @property
    def rest_port(self) -> Optional[int]:
        return self.rest.port if self.rest is not None else None

    @property
    def grpc_port(self) -> Optional[int]:
        return self.grpc.port if self.grpc is not None else None

    def stop(self):
        """Stop the front ends first (no new requests), then the watcher, then the models."""
        if self.rest is not None:
            self.rest.stop()
        if self.grpc is not None:
            self.grpc.stop()
        if self.watcher is not None:
            self.watcher.stop()
        self.manager.stop()


def start_server(models: Sequence[ModelConfig], *, host: str = "127.0.0.1",
                 grpc_port: Optional[int] = 0, rest_port: Optional[int] = 0,
                 batching: Optional[BatchingConfig] = None, poll_wait_seconds: float = 1.0,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, limits: Optional[Limits] = None,
                 grpc_max_workers: int = 64, rest_max_connections: int = 256,
                 rest_timeout_seconds: float = 60.0, model_config_file: Optional[str] = None,
                 model_config_poll_seconds: float = 0, grpc_max_concurrent_rpcs: Optional[int] = None,
                 rest_max_json_depth: int = DEFAULT_MAX_JSON_DEPTH) -> ServerHandle:
    """Load the models (blocking) and start the front ends; a port of None disables one.

    ``grpc_max_concurrent_rpcs`` None: twice ``grpc_max_workers``."""
    from keras_ssl.server.grpc_api import GrpcServer
    from keras_ssl.server.rest import RestServer

    limits = limits or Limits(max_tensor_bytes=4 * max_body_bytes)
    manager = ModelManager(list(models), batching=batching, poll_wait_seconds=poll_wait_seconds,
                           limits=limits).start()
    handle = ServerHandle(manager, None, None)
    if model_config_file and model_config_poll_seconds > 0:
        handle.watcher = ConfigFileWatcher(manager, model_config_file, model_config_poll_seconds).start()
    try:
        if grpc_port is not None:
            handle.grpc = GrpcServer(manager, host, grpc_port, max_message_bytes=max_body_bytes,
                                     max_workers=grpc_max_workers,
                                     max_tensor_bytes=limits.max_tensor_bytes,
                                     max_concurrent_rpcs=grpc_max_concurrent_rpcs).start()
        if rest_port is not None:
            handle.rest = RestServer(manager, host, rest_port, max_body_bytes=max_body_bytes,
                                     max_connections=rest_max_connections,
                                     timeout_seconds=rest_timeout_seconds,
                                     max_json_depth=rest_max_json_depth).start()
    except Exception:
        handle.stop()  # what started so far (a front end that failed to bind is None)
        raise
    return handle


def _bool_flag(v: Optional[str]) -> bool:
    if v is None:
        return True
    if v.lower() in ("true", "1", "yes"):
        return True
    if v.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {v!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m keras_ssl.serve",
        description="Local TF-Serving-compatible model server (REST + gRPC).")
    p.add_argument("--port", type=int, default=8500, help="gRPC port (0 disables)")
    p.add_argument("--rest_api_port", type=int, default=8501, help="REST port (0 disables)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--model_name", default="default")
    p.add_argument("--model_base_path", help="directory holding integer version directories")
    p.add_argument("--model_config_file", help="ModelServerConfig text proto (models.config)")
    p.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0,
                   help="re-read --model_config_file this often (0: never)")
    p.add_argument("--enable_batching", type=_bool_flag, nargs="?", const=True, default=False)
    p.add_argument("--batching_parameters_file", help="BatchingParameters text proto")
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                   help="seconds between version polls (0: poll once at start)")
    p.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES,
                   help="limit of a REST body / gRPC message (413 / RESOURCE_EXHAUSTED above)")
    p.add_argument("--max_image_pixels", type=int, default=MAX_IMAGE_PIXELS,
                   help="encoded images with more pixels are refused before decoding (default: the "
                        "limit the exported image_bytes signature applies itself, 2048x2048)")
    p.add_argument("--allow_nonfinite", type=_bool_flag, nargs="?", const=True, default=False,
                   help="accept NaN/Infinity in float inputs")
    p.add_argument("--grpc_max_workers", type=int, default=64, help="gRPC handler threads")
    p.add_argument("--grpc_max_concurrent_rpcs", type=int, default=0,
                   help="gRPC calls admitted at once, more get RESOURCE_EXHAUSTED "
                        "(0: twice --grpc_max_workers)")
    p.add_argument("--rest_api_num_threads", type=int, default=256,
                   help="REST connections served at once (more get 503)")
    p.add_argument("--rest_api_timeout_in_ms", type=int, default=60000,
                   help="time to send one whole REST request from its first byte (408 after); "
                        "also how long an idle connection stays open")
    p.add_argument("--rest_api_max_json_depth", type=int, default=DEFAULT_MAX_JSON_DEPTH,
                   help="REST bodies nested deeper get 400 before they are parsed")
    p.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0,
                   help="threads per TF op (0: TF default)")
    p.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0,
                   help="TF ops run in parallel (0: TF default)")
    p.add_argument("--verbose", action="store_true")
    return p


class _UsageError(Exception):
    """A flag or config file the command line cannot run with (exit status 2)."""


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _read_config_file(flag: str, value: str, parse: Callable[[str, str], T]) -> T:
    """``parse(text, path)`` of the file a flag names; _UsageError if missing or invalid."""
    path = Path(value)
    if not path.is_file():
        raise _UsageError(f"{flag} not found: {path}")
    try:
        return parse(path.read_text(), str(path))
    except ValueError as e:
        raise _UsageError(str(e)) from None


def _models_from_flags(args: argparse.Namespace) -> list[ModelConfig]:
    """--model_config_file, or else one model from --model_name / --model_base_path."""
    if args.model_config_file:
        return _read_config_file("--model_config_file", args.model_config_file, parse_models_config)
    if not args.model_base_path:
        raise _UsageError("give --model_base_path (with --model_name) or --model_config_file")
    if not NAME_RE.match(args.model_name):
        raise _UsageError(f"invalid --model_name {args.model_name!r}")
    return [ModelConfig(name=args.model_name, base_path=args.model_base_path)]


def _batching_from_flags(args: argparse.Namespace) -> Optional[BatchingConfig]:
    """None without --enable_batching; the --batching_parameters_file or the defaults with it."""
    if not args.enable_batching:
        return None
    if args.batching_parameters_file:
        return _read_config_file("--batching_parameters_file", args.batching_parameters_file,
                                 parse_batching_config)
    return BatchingConfig()


def _check_positive_flags(args: argparse.Namespace) -> None:
    for name, v in (("--max_body_bytes", args.max_body_bytes), ("--max_image_pixels", args.max_image_pixels),
                    ("--grpc_max_workers", args.grpc_max_workers),
                    ("--rest_api_num_threads", args.rest_api_num_threads),
                    ("--rest_api_timeout_in_ms", args.rest_api_timeout_in_ms),
                    ("--rest_api_max_json_depth", args.rest_api_max_json_depth)):
        if v < 1:
            raise _UsageError(f"{name} must be positive")
    if args.grpc_max_concurrent_rpcs < 0:
        raise _UsageError("--grpc_max_concurrent_rpcs must be positive (0: twice --grpc_max_workers)")


def _set_tf_threads(args: argparse.Namespace) -> None:
    """TF Serving's --tensorflow_{intra,inter}_op_parallelism (0: TensorFlow's default)."""
    if not (args.tensorflow_intra_op_parallelism or args.tensorflow_inter_op_parallelism):
        return  # do not import TensorFlow for nothing
    import tensorflow as tf

    if args.tensorflow_intra_op_parallelism:
        tf.config.threading.set_intra_op_parallelism_threads(args.tensorflow_intra_op_parallelism)
    if args.tensorflow_inter_op_parallelism:
        tf.config.threading.set_inter_op_parallelism_threads(args.tensorflow_inter_op_parallelism)


def _start_from_flags(args: argparse.Namespace, models: list[ModelConfig],
                      batching: Optional[BatchingConfig]) -> ServerHandle:
    limits = Limits(max_image_pixels=args.max_image_pixels,
                    max_tensor_bytes=4 * args.max_body_bytes, allow_nonfinite=args.allow_nonfinite)
    try:
        return start_server(
            models, host=args.host, grpc_port=args.port or None, rest_port=args.rest_api_port or None,
            batching=batching, poll_wait_seconds=args.file_system_poll_wait_seconds,
            max_body_bytes=args.max_body_bytes, limits=limits, grpc_max_workers=args.grpc_max_workers,
            rest_max_connections=args.rest_api_num_threads,
            rest_timeout_seconds=args.rest_api_timeout_in_ms / 1000,
            model_config_file=args.model_config_file,
            model_config_poll_seconds=args.model_config_file_poll_wait_seconds,
            grpc_max_concurrent_rpcs=args.grpc_max_concurrent_rpcs or None,
            rest_max_json_depth=args.rest_api_max_json_depth)
    except OSError as e:
        raise _UsageError(f"cannot bind: {e}") from None


def _stop_on_signal() -> threading.Event:
    """An event set by SIGINT or SIGTERM, its handlers installed now: before the models load
    and the servers start, so a signal during startup stops the server cleanly (exit 0)
    instead of killing it with the default action."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    return done


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    stop = _stop_on_signal()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        models = _models_from_flags(args)
        batching = _batching_from_flags(args)
        _check_positive_flags(args)
        _set_tf_threads(args)
        handle = _start_from_flags(args, models, batching)
    except _UsageError as e:
        return _fail(str(e))
    if handle.grpc_port:
        log.info("Running gRPC ModelServer at %s:%d ...", args.host, handle.grpc_port)
    if handle.rest_port:
        log.info("Exporting HTTP/REST API at:%s:%d ...", args.host, handle.rest_port)
    if batching is not None:
        log.info("Batching: %s", batching)
    stop.wait()
    log.info("Shutting down")
    handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
