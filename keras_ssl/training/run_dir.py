"""The run directory: where a run is written, and whether it may be resumed.

Everything of a run goes under one directory (default ``runs/<config stem>``):
``config.json`` (resolved config), ``checkpoints/``, ``tb/`` (TensorBoard),
``encoder.keras``, ``results.json`` / ``results.md``, ``export/<name>/<v>/``
and ``summary.json`` (wall times).
"""
from __future__ import annotations

import json
from pathlib import Path

from keras_ssl.config import ConfigError, to_dict
from keras_ssl.files import write_json_atomic


def default_run_dir(config_path: str, smoke: bool) -> Path:
    return Path("runs") / (Path(config_path).stem + ("_smoke" if smoke else ""))


#: Config sections that do not change what the checkpoints hold: a run directory
#: may be run again with other values here (a finished run is then evaluated or
#: exported again without pretraining again). ``name`` (the config file's stem) is a
#: label: a variant a selection chose, written out as a config file of its own, scores
#: the selection's checkpoints on test without pretraining again.
AFTER_PRETRAINING = ("name", "eval", "export", "description", "cost", "smoke", "expected")
#: Pretraining settings that change how the run is carried out, not what it
#: learns (the batches and the updates stay the same): they may differ too.
HOW_NOT_WHAT = ("train.pipeline_threads", "train.log_every", "train.checkpoint_every",
                "train.monitor_every", "train.sample_examples",
                # One process or several workers: the same global batches and updates.
                "train.strategy", "train.collective_timeout_seconds",
                "train.sample_pairs",  # sample_pairs: the name before sample_examples
                # Frames decoded once and kept in memory, or as drawn: the same batches.
                "data.frame_cache_mb",
                # A run that trained with skip_unreadable off read every file, as it does
                # with it on; run directories from before the setting have no such key.
                "data.skip_unreadable",
                # What the pretext monitor scores on: read, never trained on.
                "data.validation_sequences", "data.validation_pairs",
                # The labeled evaluation data (and the validation split carved from it):
                # what a finished run's encoder is evaluated and monitored on, never what
                # it pretrains on (data.dataset, data.path). Another --set of these on a
                # finished run evaluates its encoder on other labeled data.
                "data.eval_dataset", "data.eval_path", "data.eval_train_crops",
                "data.eval_test_crops", "data.validation_images")


#: Pretraining settings added after run directories existed, with the value every run
#: from before them had: a config.json without the key is read as holding that value.
ADDED_LATER = {"train.precision": "float32", "data.sequences": [], "data.camera": "image_2",
               "data.frame_size": None,
               # the skimage and labeled-folder data settings (their defaults)
               "data.eval_path": None, "data.crop_seed": 0, "data.pretrain_crops": 10000,
               "data.eval_train_crops": 200, "data.eval_test_crops": 100}
#: The same for a parameter of one registry component: (section, component name, key) ->
#: the value runs of that component had before it (pretext ``augment``'s ``views``, added
#: for MoCo: every run before it drew one view; ``pirl``'s ``transforms``, empty: one
#: ``transform``).
COMPONENT_ADDED_LATER = {("pretext", "augment", "views"): 1,
                         # pirl's set of transforms (issue 17): every run before it had one
                         ("pretext", "pirl", "transforms"): [],
                         # odometry's binning: every run before it had balanced quantile bins
                         ("pretext", "odometry", "binning"): "quantile"}


def _pretraining_part(cfg_dict: dict) -> dict:
    part = {k: v for k, v in cfg_dict.items() if k not in AFTER_PRETRAINING}
    for dotted, earlier in ADDED_LATER.items():
        section, key = dotted.split(".")
        if isinstance(part.get(section), dict) and key not in part[section]:
            part[section] = {**part[section], key: earlier}
    for (section, name, key), earlier in COMPONENT_ADDED_LATER.items():
        sec = part.get(section)
        if isinstance(sec, dict) and sec.get("name") == name and key not in sec:
            part[section] = {**sec, key: earlier}
    for dotted in HOW_NOT_WHAT:
        section, key = dotted.split(".")
        if isinstance(part.get(section), dict) and key in part[section]:
            part[section] = {k: v for k, v in part[section].items() if k != key}
    return part


def prepare_run_dir(run_dir: Path, cfg) -> None:
    """Create ``run_dir``; refuse to resume checkpoints pretrained with a different config
    (:func:`check_run_dir`); write the resolved config as ``config.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    check_run_dir(run_dir, cfg)
    write_json_atomic(run_dir / "config.json", json.loads(json.dumps(to_dict(cfg))))


def check_run_dir(run_dir: Path, cfg) -> None:
    """ConfigError if ``run_dir`` holds checkpoints pretrained with a different config;
    reads only (a worker that is not the chief checks the chief's run directory so).

    Only the pretraining part of the config must match (see ``AFTER_PRETRAINING`` and
    ``HOW_NOT_WHAT``):
    ``--set eval.seeds=[0]`` on a finished run re-evaluates its encoder.
    """
    saved = run_dir / "config.json"
    if saved.is_file() and (run_dir / "checkpoints").is_dir():
        changed = pretraining_differences(run_dir, cfg)
        if changed:
            raise ConfigError(f"{run_dir} holds checkpoints of a run with a different pretraining "
                              f"config (differs in: {', '.join(changed)}; see {saved}); "
                              f"pass another --run-dir or remove that directory")


def pretraining_differences(run_dir: Path, cfg) -> list[str]:
    """The sections in which ``run_dir``'s ``config.json`` pretrains otherwise than ``cfg``
    (only what changes the checkpoints: ``AFTER_PRETRAINING`` and ``HOW_NOT_WHAT`` left
    out); ``["unreadable"]`` when there is no readable config.json; [] when the same."""
    try:
        old = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        old = None
    if not isinstance(old, dict):
        return ["unreadable"]
    before, now = _pretraining_part(old), _pretraining_part(json.loads(json.dumps(to_dict(cfg))))
    return sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))


def previous_pretrain(run_dir: Path) -> dict:
    """The ``pretrain`` entry of the run directory's ``summary.json``, if a finished run wrote one."""
    try:
        pre = json.loads((run_dir / "summary.json").read_text()).get("pretrain")
    except (OSError, ValueError, AttributeError):
        return {}
    return pre if isinstance(pre, dict) and pre.get("final") else {}


#: What :func:`seed_from_pretrained` leaves behind: the source's scores and exports are
#: its own evaluation's, not the new run's.
NOT_SEEDED = ("results*.json", "results*.md", "export", "report")


def seed_from_pretrained(source: Path, run_dir: Path, cfg) -> bool:
    """Copy ``source``'s finished pretraining (checkpoints, the pretext's files, logs) into
    ``run_dir`` when ``run_dir`` holds no checkpoints and ``source`` pretrained exactly as
    ``cfg`` does: a run of ``cfg`` there then evaluates without pretraining again (a
    selection between evaluation settings pretrains once). True if copied."""
    import shutil

    if (run_dir / "checkpoints").is_dir() or not previous_pretrain(source) or pretraining_differences(source, cfg):
        return False
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns(*NOT_SEEDED), dirs_exist_ok=True)
    return True
