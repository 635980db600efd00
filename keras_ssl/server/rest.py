"""TF Serving's REST API on the standard library (``http.server``).

Routes (as TF Serving)::

    GET  /v1/models/NAME[/versions/N | /labels/L]            status
    GET  /v1/models/NAME[/versions/N | /labels/L]/metadata   signature metadata
    POST /v1/models/NAME[/versions/N | /labels/L]:predict    row or columnar predict

Every error is ``{"error": "..."}`` with TF Serving's HTTP status for its
code; client mistakes are 4xx, never 500. The path is matched by a strict
regex and the name / version / label are checked before the model manager
looks them up in memory. JSON <-> tensors is :mod:`.rest_codec`.

Limits against careless or hostile clients (each answered; 413, 408 and
503 also close the connection): a body over ``max_body_bytes`` -> 413 (read
from Content-Length, the body is not buffered); a request (request line, headers
and body) not fully received within ``timeout_seconds`` of its first byte ->
408, however the client splits it into packets (the deadline is per request,
not per socket read; an idle keep-alive connection is closed after the same
time); JSON nested deeper than ``max_json_depth`` -> 400 before it is parsed;
more than ``max_connections`` open connections -> 503 for the extra ones
(the kernel's accept backlog is ``request_queue_size``).
"""
from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from keras_ssl.export.contract import INT64_MAX, LABEL_RE, NAME_RE, SERVING_SIGNATURE
from keras_ssl.server.errors import ServingError, invalid, not_found
from keras_ssl.server.manager import ModelManager
from keras_ssl.server.rest_codec import (DEFAULT_MAX_JSON_DEPTH, columns_to_inputs,
                                         decode_predict_body, encode_predict_response,
                                         metadata_json, rows_to_inputs, status_json)

log = logging.getLogger("keras_ssl.serve")

_PATH_RE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?/?$")


def parse_path(path: str) -> dict:
    """Split and validate a REST path; raises ServingError (404 / 400)."""
    path = path.split("?", 1)[0]
    m = _PATH_RE.match(path)
    if not m:
        raise not_found(f"Malformed request: unknown path {path[:200]!r}; expected "
                        "/v1/models/NAME[/versions/N|/labels/L][/metadata|:predict]")
    name, version, label = m.group("name"), m.group("version"), m.group("label")
    if not NAME_RE.match(name):
        raise invalid(f"invalid model name {name[:130]!r}: expected [A-Za-z0-9][A-Za-z0-9_.-]*")
    v = None
    if version is not None:
        if not re.fullmatch(r"[0-9]{1,19}", version) or int(version) > INT64_MAX:
            raise invalid(f"invalid version {version[:40]!r}: must be a non-negative 64-bit integer")
        v = int(version)
    if label is not None and not LABEL_RE.match(label):
        raise invalid(f"invalid version label {label[:130]!r}: expected [A-Za-z0-9][A-Za-z0-9_.-]*")
    return {"name": name, "version": v, "label": label,
            "metadata": bool(m.group("metadata")), "verb": m.group("verb")}


# --------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------

class _DeadlineReader(io.RawIOBase):
    """A connection's reads under one deadline per request (wrapped in a BufferedReader).

    Until a request's first byte arrives each read may wait ``timeout``
    seconds (a keep-alive connection waiting for its next request); from that
    byte on the whole request must arrive within ``timeout`` seconds in total,
    so a client trickling one byte at a time cannot hold its connection slot
    longer. Past the deadline a read raises TimeoutError and sets ``expired``.
    """

    def __init__(self, sock: socket.socket, timeout: float):
        super().__init__()
        self.sock, self.timeout = sock, timeout
        self.deadline: Optional[float] = None
        self.expired = False

    def readable(self) -> bool:
        return True

    def start_request(self) -> None:
        self.deadline, self.expired = None, False

    def readinto(self, b) -> int:
        if self.deadline is None:
            wait = self.timeout
        else:
            wait = self.deadline - time.monotonic()
            if wait <= 0:
                self.expired = True
                raise TimeoutError("request not received before its deadline")
        self.sock.settimeout(wait)
        try:
            n = self.sock.recv_into(b)
        except TimeoutError:
            self.expired = self.deadline is not None  # an idle connection just closes
            raise
        if n and self.deadline is None:
            self.deadline = time.monotonic() + self.timeout
        return n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keras_ssl-serving"
    timeout = 60  # seconds a client has to send a whole request (and to read our answer)

    manager: ModelManager
    max_body_bytes: int
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH

    def log_message(self, fmt, *args):  # route to logging, quiet by default
        log.debug("%s - %s", self.address_string(), fmt % args)

    def setup(self):
        super().setup()
        # One small response per request: disable Nagle so it is not held
        # back waiting for the client's delayed ACK (40 ms per request).
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        # Reads go through the per-request deadline instead of a per-read timeout.
        plain, self._reader = self.rfile, _DeadlineReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._reader)
        plain.close()  # drops its reference on the socket so close() really closes it
        self._responded = False

    def handle_one_request(self):
        """One request; one that missed its deadline before we answered gets a 408."""
        self._reader.start_request()
        self._responded = False
        # what send_response needs if the request line itself timed out
        self.requestline, self.request_version = "", "HTTP/1.0"
        super().handle_one_request()  # a TimeoutError there closes the connection
        if self._reader.expired and not self._responded:
            try:
                self._send(408, {"error": self._timeout_message()}, close=True)
            except OSError:
                self.close_connection = True

    def _timeout_message(self) -> str:
        return (f"request not received within {self.timeout * 1000:.0f} ms of its first byte "
                "(--rest_api_timeout_in_ms)")

    def _send(self, status: int, obj: Any, close: bool = False):
        self._responded = True
        # the reader left the socket with what remained of the request's deadline
        self.connection.settimeout(self.timeout)
        try:
            body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        except (TypeError, ValueError) as e:
            status, body = 500, json.dumps({"error": f"cannot encode response: {e}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        # headers and body in one write (end_headers would flush the headers alone)
        self._headers_buffer.append(b"\r\n")
        self.wfile.write(b"".join(self._headers_buffer) + body)
        self._headers_buffer = []

    def _error(self, e: ServingError, close: bool = False):
        self._send(e.http_status, {"error": e.message}, close=close)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            self.close_connection = True
            raise ServingError("INVALID_ARGUMENT", "chunked bodies are not supported; send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            self.close_connection = True
            raise invalid("missing Content-Length header")
        try:
            n = int(raw)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise invalid(f"invalid Content-Length {raw[:40]!r}") from None
        try:
            if n > self.max_body_bytes:
                self.close_connection = True
                # Drain a moderately oversized body so the client reads our 413
                # instead of a broken pipe; a huge one is not read at all.
                if n <= max(2 * self.max_body_bytes, 8 << 20):
                    left = n
                    while left > 0:
                        chunk = self.rfile.read(min(left, 1 << 16))
                        if not chunk:
                            break
                        left -= len(chunk)
                raise ServingError("PAYLOAD_TOO_LARGE",
                                   f"request body of {n} bytes exceeds the limit of "
                                   f"{self.max_body_bytes} bytes (--max_body_bytes)")
            return self.rfile.read(n)
        except TimeoutError:
            self.close_connection = True
            raise ServingError("REQUEST_TIMEOUT", self._timeout_message()) from None

    def _dispatch(self, method: str):
        """Answer one GET or POST; every error becomes a JSON error response."""
        try:
            if method == "POST":
                body = self._read_body()
            else:
                body = b""
                if self.headers.get("Content-Length", "0").strip() not in ("", "0"):
                    self.close_connection = True  # unread body: do not reuse the connection
            route = parse_path(self.path)
            if method == "GET":
                self._get(route)
            else:
                self._post(route, body)
        except ServingError as e:
            status = {"PAYLOAD_TOO_LARGE": 413, "METHOD_NOT_ALLOWED": 405,
                      "REQUEST_TIMEOUT": 408}.get(e.code, e.http_status)
            self._send(status, {"error": e.message}, close=self.close_connection)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - a bug must not kill the server thread silently
            log.exception("internal error on %s %s", method, self.path[:200])
            try:
                self._send(500, {"error": f"internal error: {type(e).__name__}: {e}"})
            except OSError:
                self.close_connection = True

    def _get(self, route: dict):
        """Status or metadata."""
        if route["verb"] is not None:
            raise ServingError("METHOD_NOT_ALLOWED", f":{route['verb']} needs POST")
        if route["metadata"]:
            lv = self.manager.resolve(route["name"], route["version"], route["label"])
            self._send(200, metadata_json(lv, route["name"]))
        else:
            st = self.manager.status(route["name"], route["version"], route["label"])
            self._send(200, status_json(st))

    def _post(self, route: dict, body: bytes):
        """:predict (the only POST verb these models answer)."""
        if route["metadata"] or route["verb"] is None:
            raise ServingError("METHOD_NOT_ALLOWED", "status and metadata need GET")
        if route["verb"] in ("classify", "regress"):
            raise ServingError("UNIMPLEMENTED", f":{route['verb']} is not supported by these "
                               "feature-extraction models; use :predict")
        if route["verb"] != "predict":
            raise not_found(f"Malformed request: unknown verb ':{route['verb']}'")
        lv = self.manager.resolve(route["name"], route["version"], route["label"])
        sig_name, payload, fmt = decode_predict_body(body, self.max_json_depth)
        sig_key = sig_name or SERVING_SIGNATURE
        names = sorted(lv.inputs.get(sig_key, {}))
        if sig_key not in lv.fns:
            lv.predict(sig_key, {})  # raises the standard unknown-signature error
        inputs = rows_to_inputs(payload, names) if fmt == "row" else columns_to_inputs(payload, names)
        _, out = lv.predict(sig_key, inputs)
        self._send(200, encode_predict_response(out, fmt))

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def _unsupported(self):
        self._send(405, {"error": f"method {self.command} not allowed"}, close=True)

    do_PUT = do_DELETE = do_PATCH = _unsupported  # noqa: N815

    def send_error(self, code, message=None, explain=None):
        """Malformed HTTP (bad request line, headers too long...): JSON error, then close."""
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # unparseable request line: still send a status line
        try:
            self._send(code if 400 <= code < 600 else 400,
                       {"error": message or HTTPStatus(code).phrase}, close=True)
        except Exception:  # noqa: BLE001
            self.close_connection = True


class _HTTPServer(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` at once (then 503 + close)."""

    daemon_threads = True
    request_queue_size = 128
    max_connections = 256

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)  # this thread accepts for everyone: never block on one client
                body = b'{"error":"too many open connections; retry later"}'
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\nContent-Length: " + str(len(body)).encode()
                                + b"\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class RestServer:
    """REST front end bound to (host, port); ``port=0`` picks a free port."""

    def __init__(self, manager: ModelManager, host: str = "127.0.0.1", port: int = 8501,
                 max_body_bytes: int = 64 * 1024 * 1024, max_connections: int = 256,
                 timeout_seconds: float = 60.0, max_json_depth: int = DEFAULT_MAX_JSON_DEPTH):
        handler = type("Handler", (_Handler,), {"manager": manager, "max_body_bytes": max_body_bytes,
                                                 "timeout": timeout_seconds,
                                                 "max_json_depth": max_json_depth})
        server_cls = type("HTTPServer", (_HTTPServer,), {"max_connections": max_connections})
        self.httpd = server_cls((host, port), handler)
        self.host, self.port = self.httpd.server_address[:2]
        self.thread: Optional[threading.Thread] = None

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="rest", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
