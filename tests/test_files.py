"""keras_ssl.files: run files are the old whole version or the new whole version."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_ssl.files import atomic_path, write_json_atomic, write_text_atomic
from support import ROOT, SUBPROCESS_ENV

#: A writer that rewrites one 4 MB JSON file forever, alternating two versions.
WRITER = """
import sys
from keras_ssl.files import write_json_atomic
path = sys.argv[1]
docs = [{"version": v, "payload": str(v) * 4_000_000} for v in (0, 1)]
i = 0
while True:
    write_json_atomic(path, docs[i % 2])
    i += 1
"""


def test_killed_writers_leave_the_old_or_the_new_whole_file(tmp_path):
    path = tmp_path / "summary.json"
    rng = np.random.default_rng(0)
    for kill in range(6):
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=ROOT, env=SUBPROCESS_ENV)
        try:
            deadline = time.monotonic() + 30
            while not path.exists():
                assert time.monotonic() < deadline and p.poll() is None, "the writer never wrote"
                time.sleep(0.01)
            time.sleep(float(rng.uniform(0.0, 0.4)))   # a random point of a write
            p.send_signal(signal.SIGKILL)
            p.wait(10)
        finally:
            if p.poll() is None:
                p.kill()
        doc = json.loads(path.read_text())            # whole: parses...
        assert doc["payload"] == str(doc["version"]) * 4_000_000, f"kill {kill}: torn file"
    # a kill between write and rename may leave a hidden temporary beside it, never the file itself
    assert {q.name for q in tmp_path.iterdir() if not q.name.startswith(".")} == {"summary.json"}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.md"
    write_text_atomic(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert path.read_text() == "old\n"
    assert [q.name for q in tmp_path.iterdir()] == ["results.md"]
    with pytest.raises(TypeError):                    # unencodable: nothing written at all
        write_json_atomic(path, {"x": object()})
    assert path.read_text() == "old\n"


def test_the_temporary_keeps_the_suffix_that_keras_needs(tmp_path):
    with atomic_path(tmp_path / "encoder.keras") as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_bytes(b"zip")
    assert (tmp_path / "encoder.keras").read_bytes() == b"zip"


def test_a_write_that_fails_with_an_oserror_names_the_file_not_its_temporary(tmp_path):
    import errno
    import os

    path = tmp_path / "summary.json"
    write_text_atomic(path, "old\n")
    with pytest.raises(OSError) as failed:
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))   # as a full disk says
    assert failed.value.errno == errno.ENOSPC and failed.value.filename == str(path)
    assert path.read_text() == "old\n" and [q.name for q in tmp_path.iterdir()] == ["summary.json"]
