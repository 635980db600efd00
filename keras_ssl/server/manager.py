"""The model manager of the local server: which versions are loaded, and lookups.

:class:`ModelManager` holds the models of a ``models.config`` (or one
``--model_name`` / ``--model_base_path``), polls each base path for integer
version directories (:func:`keras_ssl.export.contract.version_dirs`), loads
new versions (running their warm-up requests) before unloading the ones the
version policy no longer wants, so a model never goes without a version while
one is on disk. REST and gRPC look versions up with :meth:`ModelManager.resolve`
and :meth:`ModelManager.status`. Each version's state follows TF Serving's
``ModelVersionStatus.State`` names (START ... END).

Safety: model names, versions and labels that come from clients are only
ever looked up in in-memory dicts (after a regex / integer check); nothing a
client sends reaches the filesystem, and nothing is unpickled. Thread-safe.
"""
from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from keras_ssl.export.contract import LABEL_RE, NAME_RE, version_dirs
from keras_ssl.server.errors import invalid, not_found
from keras_ssl.server.loaded import LoadedVersion
from keras_ssl.server.model_config import BatchingConfig, ModelConfig
from keras_ssl.server.validation import Limits

log = logging.getLogger("keras_ssl.serve")


# Model version states (tensorflow.serving.ModelVersionStatus.State names).
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass
class VersionState:
    """A version's state and, for a version that failed to load, why (error_code UNKNOWN)."""
    state: str
    error_code: str = "OK"
    error_message: str = ""


class _Model:
    """One configured model: its config, loaded versions, states, and versions that failed."""

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.loaded: dict[int, LoadedVersion] = {}
        self.states: dict[int, VersionState] = {}
        self.failed: set[int] = set()


def _refreeze_gc():
    """Move the long-lived heap (TensorFlow, loaded models) out of the cyclic GC.

    With TF imported the heap holds ~10^6 objects; a full collection, which
    request parsing (JSON lists) triggers now and then, stalls every thread
    for ~0.2 s (measured: REST p99 of 235 ms without this, 9 ms with it).
    Unfreeze first so unloaded versions can still be collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _wanted(cfg: ModelConfig, on_disk: list[int]) -> list[int]:
    """The versions of ``on_disk`` (sorted) that ``cfg``'s version policy serves."""
    if cfg.policy == "all":
        return on_disk
    if cfg.policy == "specific":
        return [v for v in on_disk if v in cfg.specific]
    return on_disk[-cfg.num_latest:]


class ModelManager:
    """Loads, serves and unloads model versions; thread-safe."""

    def __init__(self, models: list[ModelConfig], batching: Optional[BatchingConfig] = None,
                 poll_wait_seconds: float = 1.0, limits: Optional[Limits] = None):
        self.models = {m.name: _Model(m) for m in models}
        self.batching = batching
        self.poll_wait_seconds = poll_wait_seconds
        self.limits = limits or Limits()
        self.lock = threading.RLock()
        self._poll_lock = threading.Lock()  # one poll (load/unload pass) at a time
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # ---- polling / loading ------------------------------------------------
    def start(self) -> "ModelManager":
        """Poll once (blocking: the first versions are loaded on return), then keep polling."""
        self.poll_once()
        if self.poll_wait_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="version-poller", daemon=True)
            self._thread.start()
        return self

    def reload_config(self, models: list[ModelConfig]):
        """Serve exactly ``models`` from now on: add new ones (loaded before
        return), drop removed ones (their versions unloaded), update policies
        and labels of the others. A model whose base_path changed is reloaded."""
        new = {m.name: m for m in models}
        removed = []
        with self.lock:
            for name in list(self.models):
                old = self.models[name]
                if name not in new or new[name].base_path != old.cfg.base_path:
                    removed.append(self.models.pop(name))
                else:
                    old.cfg = new[name]
            for name, cfg in new.items():
                if name not in self.models:
                    self.models[name] = _Model(cfg)
        for model in removed:
            with self._poll_lock:
                for v in sorted(model.loaded):
                    self._unload(model, v)
        self.poll_once()

    def stop(self):
        """Stop polling and the loaded versions' batchers (a config watcher is stopped by its owner)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self.lock:
            for m in self.models.values():
                for lv in m.loaded.values():
                    lv.close()
        gc.unfreeze()  # let the process collect what this server held

    def _poll_loop(self):
        while not self._stop.wait(self.poll_wait_seconds):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the poller must survive anything
                log.exception("version poll failed")

    def poll_once(self):
        """Load the versions each policy wants that are on disk, then unload the others."""
        with self._poll_lock:
            self._poll_once()

    def _poll_once(self):
        changed = False
        with self.lock:
            models = list(self.models.items())
        for name, model in models:
            base = Path(model.cfg.base_path)
            on_disk = version_dirs(base, complete=True)
            if not on_disk and not model.loaded:
                log.warning("No versions of servable %s found under base path %s", name, base)
            wanted = [v for v in _wanted(model.cfg, on_disk) if v not in model.failed]
            for v in wanted:
                if v not in model.loaded:
                    self._load(model, v, base / str(v))
                    changed = True
            # Availability-preserving: unload only after the wanted ones are in.
            keep = set(wanted) if any(v in model.loaded for v in wanted) else set(model.loaded)
            for v in sorted(set(model.loaded) - keep):
                self._unload(model, v)
                changed = True
        if changed:
            _refreeze_gc()

    def _load(self, model: _Model, version: int, path: Path):
        name = model.cfg.name
        with self.lock:
            model.states[version] = VersionState(LOADING)
        log.info("Loading servable version {name: %s version: %d}", name, version)
        try:
            lv = LoadedVersion(name, version, path, self.batching, self.limits)
            n = lv.warmup()
        except Exception as e:  # noqa: BLE001 - a bad export must not stop the server
            log.error("Failed to load %s version %d: %s", name, version, e)
            with self.lock:
                model.states[version] = VersionState(END, "UNKNOWN", f"{type(e).__name__}: {e}"[:500])
                model.failed.add(version)
            return
        with self.lock:
            model.loaded[version] = lv
            model.states[version] = VersionState(AVAILABLE)
        log.info("Successfully loaded servable version {name: %s version: %d} (%d warm-up requests)",
                 name, version, n)

    def _unload(self, model: _Model, version: int):
        with self.lock:
            lv = model.loaded.pop(version)
            model.states[version] = VersionState(UNLOADING)
        # Requests already holding `lv` finish normally; its batcher drains its queue.
        lv.close()
        with self.lock:
            model.states[version] = VersionState(END)
        log.info("Unloaded servable version {name: %s version: %d}", model.cfg.name, version)

    # ---- lookup ------------------------------------------------------------
    def _model(self, name: str) -> _Model:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise invalid(f"invalid model name {name!r}: expected [A-Za-z0-9][A-Za-z0-9_.-]*")
        model = self.models.get(name)
        if model is None:
            raise not_found(f"Servable not found for request: Latest({name}) (unknown model '{name}')")
        return model

    def _requested(self, name: str, version: Optional[int],
                   label: Optional[str]) -> tuple[_Model, Optional[int]]:
        """The model a request names and the version it asks for (a label resolved; None: any).
        Call with ``self.lock`` held, so the answer is read from one config."""
        model = self._model(name)
        if label is not None:
            version = _label_version(model, name, label)
        return model, version

    def resolve(self, name: str, version: Optional[int] = None,
                label: Optional[str] = None) -> LoadedVersion:
        """The loaded version for a request (latest when neither version nor label)."""
        with self.lock:
            model, version = self._requested(name, version, label)
            if version is None:
                if not model.loaded:
                    raise not_found(f"Servable not found for request: Latest({name}) (no version loaded)")
                version = max(model.loaded)
            elif version not in model.loaded:
                raise not_found(f"Servable not found for request: Specific({name}, {version})")
            return model.loaded[version]

    def status(self, name: str, version: Optional[int] = None,
               label: Optional[str] = None) -> list[tuple[int, VersionState]]:
        """(version, state) of the requested version, or of every known version, newest first."""
        with self.lock:
            model, version = self._requested(name, version, label)
            if version is not None:
                st = model.states.get(version)
                if st is None:
                    raise not_found(f"Could not find version {version} of model {name}")
                return [(version, st)]
            if not model.states:
                raise not_found(f"Could not find any versions of model {name}")
            return sorted(model.states.items(), reverse=True)

    def predict(self, name, version=None, label=None, signature_name="", inputs=None,
                output_filter=()):
        """(loaded version, signature name, outputs) of one request."""
        lv = self.resolve(name, version, label)
        sig, out = lv.predict(signature_name, inputs or {}, output_filter)
        return lv, sig, out


def _label_version(model: _Model, name: str, label) -> int:
    """The version a label points to; 400 for a malformed label, 404 for an unknown one."""
    if not isinstance(label, str) or not LABEL_RE.match(label):
        raise invalid(f"invalid version label {label!r}")
    if label not in model.cfg.labels:
        raise not_found(f"Unrecognized servable version label: {label} "
                        f"(model '{name}' labels: {sorted(model.cfg.labels)})")
    return model.cfg.labels[label]
