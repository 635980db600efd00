"""Errors of the local server, named by TF status code.

:class:`ServingError` carries a TF status code name (``INVALID_ARGUMENT``,
``NOT_FOUND``...) and a message meant for the client. The REST front end maps
the code to an HTTP status with :data:`HTTP_STATUS`, the gRPC front end to a
``grpc.StatusCode`` of the same name. :func:`tf_error_to_serving` turns an
error raised while a model runs into one: client mistakes (bad values, a
corrupt image) become ``INVALID_ARGUMENT``, never ``INTERNAL``.
"""
from __future__ import annotations

#: HTTP status TF Serving answers for each code; an unlisted code is 500.
HTTP_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
    "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429, "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "INTERNAL": 500, "UNKNOWN": 500,
}


class ServingError(Exception):
    """An error with a TF status code name (``INVALID_ARGUMENT``, ``NOT_FOUND``...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


def invalid(msg: str) -> ServingError:
    """An ``INVALID_ARGUMENT`` error (HTTP 400)."""
    return ServingError("INVALID_ARGUMENT", msg)


def not_found(msg: str) -> ServingError:
    """A ``NOT_FOUND`` error (HTTP 404)."""
    return ServingError("NOT_FOUND", msg)


def _tf_message(e: Exception) -> str:
    """The useful line of a TF op error (drops 'Graph execution error', node traces)."""
    text = str(getattr(e, "message", None) or e)
    keep = [ln.strip() for ln in text.splitlines()
            if ln.strip() and not ln.strip().startswith(("[[", "Graph execution error",
                                                          "Detected at node", "<stack traces",
                                                          "File \""))]
    msg = "; ".join(keep) or type(e).__name__
    return msg[:2000]


def tf_error_to_serving(e: Exception) -> ServingError:
    """Map a TensorFlow op error raised while running a model."""
    import tensorflow as tf

    msg = _tf_message(e)
    if isinstance(e, (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError,
                      tf.errors.FailedPreconditionError)):
        return invalid(msg)
    if isinstance(e, tf.errors.ResourceExhaustedError):
        return ServingError("RESOURCE_EXHAUSTED", msg)
    if isinstance(e, (ValueError, TypeError)):
        return invalid(msg)
    return ServingError("INTERNAL", msg)
