"""Re-reading ``models.config`` while serving (TF Serving's ``--model_config_file_poll_wait_seconds``).

:class:`ConfigFileWatcher` checks the file every ``poll_wait_seconds`` on a
daemon thread and, when its bytes changed, hands the parsed models to
:meth:`ModelManager.reload_config`. A file that fails to parse (or a reload
that fails) is logged and the running config kept; the next change is tried
again. Whoever starts a watcher stops it (:class:`ServerHandle.stop` does).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Optional

from keras_ssl.server.manager import ModelManager
from keras_ssl.server.model_config import parse_models_config

log = logging.getLogger("keras_ssl.serve")


class ConfigFileWatcher:
    """Reloads ``manager``'s models when the content of ``path`` changes."""

    def __init__(self, manager: ModelManager, path: str | os.PathLike, poll_wait_seconds: float):
        self.manager = manager
        self.path = Path(path)
        self.poll_wait_seconds = poll_wait_seconds
        # The content being served: the file as it is now, read when the watcher is made.
        self._last = self.path.read_bytes() if self.path.is_file() else b""
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "ConfigFileWatcher":
        self._thread = threading.Thread(target=self._loop, name="config-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self):
        while not self._stop.wait(self.poll_wait_seconds):
            self.check_once()

    def check_once(self):
        """Reload if the file changed since the last look; never raises."""
        try:
            data = self.path.read_bytes()
            if data == self._last:
                return
            self._last = data
            self.manager.reload_config(parse_models_config(data.decode("utf-8"), str(self.path)))
            log.info("Reloaded model config %s", self.path)
        except Exception as e:  # noqa: BLE001 - keep serving the old config
            log.error("Model config %s not reloaded: %s", self.path, e)
