"""SIGINT and SIGTERM during pretraining: finish the step, save, stop.

A preemption notice (SIGTERM, as Kubernetes and batch schedulers send it) or
Ctrl-C (SIGINT) is remembered by :class:`StopRequests` and acted on by the
loop at the next step boundary: it saves a checkpoint there and raises
:class:`~keras_ssl.training.errors.Interrupted`, so the same command loses no
step. A second signal while stopping raises KeyboardInterrupt at once.
Handlers are installed only in the main thread (Python delivers signals
there) and the previous ones are put back on exit.
"""
from __future__ import annotations

import signal
import threading
from typing import Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """Context manager: ``signum`` is the first SIGINT/SIGTERM received inside it, or None."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._previous: dict = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
