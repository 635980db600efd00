"""A run's record: the few KB of a run directory that a comparison reads.

Contract: :func:`keep_records` copies :data:`RECORD_FILES` (those present) of each run
directory to ``dest/<run directory name>/``; a record directory is read by
:mod:`.compare` (tables, pairing, ``--check``) exactly as the run directory it came
from, so tables regenerate after the run directory (checkpoints, encoder) is gone.
``python -m keras_ssl.compare RUN... --keep DIR`` calls it.
"""
from __future__ import annotations

from pathlib import Path

from keras_ssl.evaluation.results import RESULTS_NAMES
from keras_ssl.files import write_text_atomic

#: What a run's comparison reads: its record (results.json names the commit that made it).
RECORD_FILES = ("config.json", "results.json", "results_validation.json", "summary.json", "pretext.json")


class RecordError(ValueError):
    """A run that cannot be kept (no results on any split, two runs of one name)."""


def keep_records(run_dirs, dest, log=print) -> list[Path]:
    """Copy each run's :data:`RECORD_FILES` to ``dest/<run directory name>/``, replacing an older
    record of that name; only runs with results on some split (RecordError otherwise, before
    anything is written). Returns the record directories written."""
    runs = [Path(d) for d in run_dirs]
    for d in runs:
        if not any((d / f"{name}.json").is_file() for name in RESULTS_NAMES.values()):
            raise RecordError(f"{d}: no {' or '.join(f'{n}.json' for n in RESULTS_NAMES.values())}: "
                              "nothing to keep (the run did not finish its evaluation)")
    names = [d.resolve().name for d in runs]
    if len(set(names)) < len(names):
        raise RecordError(f"two runs named alike would share one record: {sorted(names)}")
    written = []
    for d, name in zip(runs, names):
        target = Path(dest) / name
        target.mkdir(parents=True, exist_ok=True)
        for f in RECORD_FILES:
            if (d / f).is_file():
                write_text_atomic(target / f, (d / f).read_text())
            elif (target / f).is_file():
                (target / f).unlink()          # a stale file of an older record of that name
        log(f"kept {d} -> {target}")
        written.append(target)
    return written
