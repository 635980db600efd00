"""The tune run directory: every path a sweep reads or writes, named once.

Layout (the contract the resume guard, the trial runner, the reports and
docs/tuning.md share; a rerun of the same command finds everything here)::

    tune_config.json           resolved tune + base config (a rerun must match it)
    hparams/                   TensorBoard HParams experiment (all stages)
    <stage>/keras_tuner/       KerasTuner project (oracle state, trial.json)
    <stage>/trial_<id>/        the trial's run: config.json, checkpoints/, tb/,
                               encoder.keras, summary.json, trial_result.json
    <stage>/trials.md, .csv    ranked table of the stage's trials
    best_config.json           base config + the best values (runnable as is)
    summary.md, summary.json   both tables, the best trial, wall time

Stage ``i`` is addressed by its index in the tune config; its folder is the
stage's name. The baseline trial's id is ``base`` (folder ``trial_base``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """Paths under one tune run directory for the stages named ``stage_names``."""
    run_dir: Path
    stage_names: tuple[str, ...]

    @property
    def tune_config(self) -> Path:
        return self.run_dir / "tune_config.json"

    @property
    def hparams(self) -> Path:
        return self.run_dir / "hparams"

    @property
    def best_config(self) -> Path:
        return self.run_dir / "best_config.json"

    @property
    def summary_md(self) -> Path:
        return self.run_dir / "summary.md"

    @property
    def summary_json(self) -> Path:
        return self.run_dir / "summary.json"

    def stage_dir(self, i: int) -> Path:
        return self.run_dir / self.stage_names[i]

    def trial_dir(self, i: int, trial_id: str) -> Path:
        return self.stage_dir(i) / f"trial_{trial_id}"

    def trial_result(self, i: int, trial_id: str) -> Path:
        """Written once a trial is scored: its presence means the trial is done."""
        return self.trial_dir(i, trial_id) / "trial_result.json"

    def trials_table(self, i: int, suffix: str) -> Path:
        """``trials.md`` / ``trials.csv`` of stage ``i`` (``suffix`` ``".md"`` or ``".csv"``)."""
        return self.stage_dir(i) / f"trials{suffix}"

    def started(self) -> bool:
        """Whether any stage has begun (a stage folder exists)."""
        return any(self.stage_dir(i).is_dir() for i in range(len(self.stage_names)))
