"""The resume guard: a tune run directory holds one sweep, of one tune and base config.

``tune_config.json`` records what a resumed sweep must share: the resolved
tune config (without its ``path``, ``description`` and ``cost``: not the
file's location or its prose), the base experiment config and ``--smoke``.
A run directory whose stages have begun under another record is refused
(ConfigError naming the directory and the file); otherwise the record is
(re)written through a per-process temporary file and a rename, since a chief
and its workers start in the same directory.
"""
from __future__ import annotations

import json

from keras_ssl.config import ConfigError
from keras_ssl.files import write_json_atomic
from keras_ssl.tuning.config import TuneConfig, tune_to_dict
from keras_ssl.tuning.layout import Layout

#: Tune config keys a resumed sweep may change.
NOT_COMPARED = ("path", "description", "cost")


def _compared(tune_doc: dict) -> dict:
    return {k: v for k, v in tune_doc.items() if k not in NOT_COMPARED}


def _recorded(layout: Layout):
    """The record in ``tune_config.json`` (compared keys only); None if unreadable."""
    try:
        old = json.loads(layout.tune_config.read_text())
        old["tune"] = _compared(old["tune"])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    return old


def check_run_dir(layout: Layout, tune: TuneConfig, base_raw: dict, smoke: bool) -> None:
    """Create the run directory, or refuse to resume a sweep made with another config."""
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    # Through JSON, so that tuples compare equal to the lists a reread file holds.
    doc = json.loads(json.dumps({"tune": _compared(tune_to_dict(tune)), "base": base_raw,
                                 "smoke": smoke}))
    path = layout.tune_config
    if path.is_file():
        old = _recorded(layout)
        if old != doc and layout.started():
            raise ConfigError(
                f"{layout.run_dir} holds a sweep made with a different tune or base config (see "
                f"{path}); pass another --run-dir or remove that directory")
        if old == doc:
            return
    write_json_atomic(path, doc)
