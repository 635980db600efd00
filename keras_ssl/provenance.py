"""Where a result came from: the code version and the config's fingerprint.

Contract:

- :func:`code_version` is ``"git:<40 hex>"`` (``"+dirty"`` appended when tracked
  files differ from that commit) when keras_ssl runs from a git checkout with
  ``git`` on PATH, else ``"keras_ssl <version>"`` from the installed package's
  metadata, else ``"unknown"``. It never raises.
- :func:`config_sha256` is the SHA-256 of the resolved config's canonical JSON
  (sorted keys, no spaces): equal configs, equal hashes, whatever the file's layout.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(_PACKAGE_DIR), *args], capture_output=True, text=True,
                         timeout=10, check=True)
    return out.stdout.strip()


def code_version() -> str:
    """The commit keras_ssl runs from (with ``+dirty``), or the package version."""
    try:
        root = Path(_git("rev-parse", "--show-toplevel")).resolve()
        if _PACKAGE_DIR.parent == root:      # keras_ssl/ is this repository's package
            commit = _git("rev-parse", "HEAD")
            dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
            return f"git:{commit}" + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import PackageNotFoundError, version
        return f"keras_ssl {version('keras_ssl')}"
    except (ImportError, PackageNotFoundError):
        return "unknown"


def config_sha256(cfg_dict: dict) -> str:
    """SHA-256 hex digest of ``cfg_dict``'s canonical JSON."""
    text = json.dumps(cfg_dict, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
