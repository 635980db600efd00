"""KerasTuner's chief/worker mode: this process's role and the environment it needs.

KerasTuner itself reads ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT``. keras_ssl sets them (never reads them) around
each stage with :func:`environ`, stage ``i`` on ``port + i`` so that a worker
that finished a stage cannot reach the previous stage's oracle. The command
line's ``--oracle-address`` is parsed by :func:`parse_oracle_address`.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

from keras_ssl.config import ConfigError


@dataclass(frozen=True)
class Distributed:
    """KerasTuner chief/worker settings for this process.

    ``tuner_id``: ``"chief"`` or a worker id; ``host`` / ``port``: the chief's
    address for stage 0 (stage ``i`` uses ``port + i``).
    """
    tuner_id: str
    host: str
    port: int

    @property
    def is_chief(self) -> bool:
        return self.tuner_id == "chief"

    def environ(self, stage_index: int) -> dict[str, str]:
        """The KERASTUNER_* variables for stage ``stage_index``."""
        return {"KERASTUNER_TUNER_ID": self.tuner_id, "KERASTUNER_ORACLE_IP": self.host,
                "KERASTUNER_ORACLE_PORT": str(self.port + stage_index)}


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, restoring the old ones after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def parse_oracle_address(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; ConfigError naming the flag otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--oracle-address must be HOST:PORT (e.g. 127.0.0.1:8000), got {text!r}")
    return host, int(port)
