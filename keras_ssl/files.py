"""Run files written whole or not at all.

Every file a run, a sweep or a comparison writes (config.json, summary.json,
results.json / .md, encoder.keras, tables) goes to a hidden temporary file in
the same directory, is flushed to disk and then renamed over its final name:
``os.replace`` is atomic on one filesystem, so a reader, or a run started
again after ``kill -9``, sees the old whole file or the new whole file, never
a half-written one. A kill between the write and the rename leaves only the
temporary file (``.<name>.tmp-*``) behind, which nothing reads.
"""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that infer
    the format from it, such as ``keras.Model.save``, still work); when the block
    ends without an exception the file there replaces ``path``, otherwise it is
    removed and ``path`` is left as it was. An OSError of the write (disk full, no
    permission) names ``path``, not the temporary."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:   # the bytes on disk before the name points at them
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None or str(e.filename) == str(tmp):
            e.filename = str(path)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any, **dumps_kwargs) -> None:
    """``json.dumps(obj, indent=2, **dumps_kwargs)`` plus a newline, written whole or not at all.
    The document is encoded before anything is written, so an unencodable one leaves ``path`` as is."""
    write_text_atomic(path, json.dumps(obj, indent=2, **dumps_kwargs) + "\n")
