"""What the report reads from a finished run directory, and the one error it raises.

Contract: :func:`check_run` reads only JSON and looks for files (no TensorFlow),
so every run given on the command line is checked in well under a second
before any slow work starts; it raises :class:`ReportError`, whose message is
one line naming the file and what is wrong. The rest (:func:`experiment_config`,
:func:`load_encoder`) is read when the run's turn comes.

A run directory (``python -m keras_ssl.train``) holds ``config.json``,
``results.json`` (scored on the test set), maybe ``results_validation.json``
(the same schema scored on the validation split; its top-level ``split`` says
which), ``encoder.keras``, ``checkpoints/`` and ``tb/``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from keras_ssl.evaluation.compare import CompareError, load_run
from keras_ssl.evaluation.results import RESULTS_NAMES

#: The order of the splits in tables and plots.
SPLITS = tuple(RESULTS_NAMES)           # ("test", "validation")


class ReportError(ValueError):
    """A run directory the report cannot use; the message names the file."""


@dataclass
class RunInputs:
    """One run as the report sees it.

    ``name``: its subfolder under ``--out`` (the directory's name, made unique);
    ``config``: config.json as written; ``results``: split -> the results document;
    ``compare_runs``: split -> the run as :func:`keras_ssl.evaluation.compare.load_run`
    returns it (rows and protocol of that split), for compare's table code.
    """
    dir: Path
    name: str
    config: dict
    results: dict = field(default_factory=dict)
    compare_runs: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The run's config name (what compare names its row)."""
        return self.compare_runs["test"]["name"]


def read_json(path: Path, what: str) -> dict:
    """The JSON object in ``path`` (``what``: what the file should be, for the message)."""
    if not path.is_file():
        raise ReportError(f"{path}: not found ({what})")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{path}: unreadable ({e})") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: invalid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(doc, dict):
        raise ReportError(f"{path}: not a JSON object ({what})")
    return doc


def _results(run_dir: Path) -> dict:
    """split -> results document, for every results file present (results.json required)."""
    out = {}
    for default_split, stem in RESULTS_NAMES.items():
        path = run_dir / f"{stem}.json"
        if default_split != "test" and not path.is_file():
            continue
        doc = read_json(path, "the few-label results that python -m keras_ssl.train writes")
        if not isinstance(doc.get("rows"), list):
            raise ReportError(f"{path}: no 'rows' list: not a results file written by keras_ssl.train")
        split = doc.get("split", default_split)
        if split not in RESULTS_NAMES:
            raise ReportError(f"{path}: 'split' is {split!r}, expected one of {list(RESULTS_NAMES)}")
        if split in out:
            raise ReportError(f"{path}: says split {split!r}, as another results file of {run_dir} does")
        out[split] = doc
    return out


def check_run(run_dir, name: str) -> RunInputs:
    """The run's JSON files, read and checked; ReportError naming the first bad file."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a directory (expected a run directory of python -m keras_ssl.train)")
    if not (run_dir / "config.json").is_file():
        raise ReportError(f"{run_dir / 'config.json'}: not found, so {run_dir} is not a run directory "
                          f"(python -m keras_ssl.train writes a config.json in every one)")
    config = read_json(run_dir / "config.json", "the resolved config of the run")
    if not (run_dir / "results.json").is_file():
        raise ReportError(f"{run_dir / 'results.json'}: not found (the run has not finished its "
                          f"evaluation, or ran with --skip-eval)")
    results = _results(run_dir)
    if not (run_dir / "encoder.keras").is_file():
        raise ReportError(f"{run_dir / 'encoder.keras'}: not found (pretraining did not finish)")
    compare_runs = {}
    for split in results:
        try:
            compare_runs[split] = load_run(run_dir, split)
        except CompareError as e:
            raise ReportError(str(e)) from None
    return RunInputs(run_dir, name, config, results, compare_runs)


def unique_names(run_dirs, reserved=()) -> list[str]:
    """A subfolder name per run directory: its name, ``_2``, ``_3``... on repeats (and for
    the ``reserved`` names)."""
    names, seen = [], {r: 1 for r in reserved}
    for d in run_dirs:
        base = Path(d).resolve().name or "run"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return names


def experiment_config(run: RunInputs):
    """The run's config.json parsed as :class:`keras_ssl.config.ExperimentConfig`."""
    from keras_ssl.config import ConfigError, config_from_dict

    path = run.dir / "config.json"
    try:
        return config_from_dict(run.config, str(path))
    except ConfigError as e:
        raise ReportError(str(e)) from None      # names the file and the key already


def load_encoder(run: RunInputs):
    """The trained encoder, ``encoder.keras``."""
    import keras

    import keras_ssl.encoders  # noqa: F401  (registers the custom layers)

    path = run.dir / "encoder.keras"
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - any load failure is a bad input, said plainly
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ReportError(f"{path}: cannot load the encoder ({type(e).__name__}: {first})") from None


def load_labeled_sets(cfg):
    """(train, test) of the run's evaluation dataset (``data.eval_dataset``)."""
    from keras_ssl.data import DataError, load_labeled

    d = cfg.data
    try:
        from keras_ssl.data.core import eval_options
        return load_labeled(d.eval_dataset, d.image_size, d.channels, d.tfds_data_dir, **eval_options(d))
    except DataError as e:
        raise ReportError(f"data.eval_dataset {d.eval_dataset!r}: {e}") from None
