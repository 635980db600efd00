"""The sweep: the stages of a tune config, one KerasTuner search each, then the reports.

:class:`Sweep` holds the order of things and the state between stages (each
stage's space and ranked rows); the pieces are elsewhere: the resume guard
(:mod:`.resume`), the space and its narrowing (:mod:`.space`), the oracle and
tuner (:mod:`.oracle`), the trials (:mod:`.trials`), the rows
(:mod:`.results`), HParams (:mod:`.hparams`) and the files written at the end
(:mod:`.reports`); the directory layout is :mod:`.layout`.

Stage 0 searches the whole space; stage ``i`` the space narrowed around the
``top_k`` best completed trials of stage ``i - 1``. A rerun resumes: each
stage's KerasTuner project is reloaded and finished trials are skipped.

Distributed: on a worker the chief's oracle hands out the values, so a
worker neither narrows nor writes tables, HParams experiment or best config;
the chief runs no searched trial (KerasTuner's rule) but the baseline.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

from keras_ssl.config import ConfigError
from keras_ssl.files import write_json_atomic
from keras_ssl.tuning import reports
from keras_ssl.tuning.config import TuneConfig, load_tune_config
from keras_ssl.tuning.distributed import Distributed, environ
from keras_ssl.tuning.formatting import describe_space
from keras_ssl.tuning.hparams import write_hparams_config
from keras_ssl.tuning.layout import Layout
from keras_ssl.tuning.oracle import make_oracle, make_tuner
from keras_ssl.tuning.resume import check_run_dir
from keras_ssl.tuning.results import completed, stage_rows, with_baseline
from keras_ssl.tuning.space import kt_hyperparameters, narrow_space
from keras_ssl.tuning.trials import TrialRunner


class Sweep:
    """Runs the stages of a tune config under ``run_dir``.

    ``distributed``: None (one process) or this process's chief/worker role.
    """

    def __init__(self, tune: TuneConfig, base_raw: dict, run_dir: Path, *, smoke: bool = False,
                 progress: bool = False, distributed: Optional[Distributed] = None,
                 log: Callable = print):
        self.tune, self.base_raw, self.smoke = tune, base_raw, smoke
        self.dist, self.log = distributed, log
        self.layout = Layout(Path(run_dir), tuple(s.name for s in tune.stages))
        self.trials = TrialRunner(tune, base_raw, self.layout, progress=progress, log=log)
        self.spaces: dict[int, dict] = {}
        self.results: dict[int, list[dict]] = {}

    @property
    def is_worker(self) -> bool:
        return self.dist is not None and not self.dist.is_chief

    def stage_space(self, i: int) -> dict:
        """The space of stage ``i``: the full space, or narrowed around stage ``i-1``."""
        if i == 0:
            return dict(self.tune.space)
        prev = completed(self.results[i - 1])
        if not prev:
            raise ConfigError(f"stage {self.tune.stages[i - 1].name!r} has no completed trial "
                              f"to narrow around (see {self.layout.trials_table(i - 1, '.md')})")
        stage = self.tune.stages[i]
        top = [r["values"] for r in prev[:stage.top_k]]
        return narrow_space(self.spaces[i - 1], top, top[0], stage.margin, stage.pin)

    def run_stage(self, i: int) -> None:
        """Search stage ``i`` (resuming its project); on the chief / alone, rank and tabulate it."""
        stage = self.tune.stages[i]
        with environ(self.dist.environ(i) if self.dist else {}):
            if self.is_worker:
                # The chief's oracle hands out the (narrowed) values; this one is a stand-in.
                space = dict(self.tune.space)
            else:
                space = self.stage_space(i)
                self.spaces[i] = space
                self.log(f"stage {stage.name} ({stage.tuner}, {stage.trials} trials): "
                         + describe_space(space))
            hp = kt_hyperparameters(space, stage.tuner, stage.grid_points)
            oracle = make_oracle(stage, hp, self.tune, i)
            self.layout.stage_dir(i).mkdir(parents=True, exist_ok=True)
            tuner = make_tuner(oracle, lambda trial, tuner_id: self.trials.run(i, trial, tuner_id),
                               self.layout.stage_dir(i))
            t0 = time.perf_counter()
            tuner.search(verbose=0)
            if self.is_worker:
                return
            rows = stage_rows(tuner.oracle, self.layout, i, self.tune.objective)
            if stage.baseline:
                self.trials.run_baseline(i)
                rows = with_baseline(rows, self.layout, i, self.trials.base_values(),
                                     self.tune.objective)
            self.results[i] = rows
            secs = time.perf_counter() - t0
        md = reports.write_stage_table(self.layout, self.tune, i, self.results[i])
        self.log(f"\nstage {stage.name}: {len(self.results[i])} trials ({secs:.0f} s this session)\n{md}")

    def finish(self, seconds: float) -> dict:
        """Write best_config.json and the summary; returns the summary."""
        raw, best = reports.best_config(self.layout, self.tune, self.base_raw,
                                        self.results[len(self.tune.stages) - 1], smoke=self.smoke)
        write_json_atomic(self.layout.best_config, raw)
        return reports.write_summary(self.layout, self.tune, self.results, best,
                                     smoke=self.smoke, seconds=seconds)

    def run(self) -> Optional[dict]:
        """All stages; returns the summary (None on a worker)."""
        t0 = time.perf_counter()
        check_run_dir(self.layout, self.tune, self.base_raw, self.smoke)
        if not self.is_worker:
            write_hparams_config(self.layout.hparams, self.tune)
        for i in range(len(self.tune.stages)):
            self.run_stage(i)
        if self.is_worker:
            self.log(f"worker {self.dist.tuner_id}: all stages done")
            return None
        summary = self.finish(time.perf_counter() - t0)
        self.log(f"best config: {summary['best_config']}\nsummary: {self.layout.summary_md}")
        return summary


def run_sweep(config_path, run_dir, *, smoke: bool = False, progress: bool = False,
              distributed: Optional[Distributed] = None, log: Callable = print) -> Optional[dict]:
    """Load and check the tune config, then run every stage (see the module docstring)."""
    tune, base_raw = load_tune_config(config_path, smoke=smoke)
    return Sweep(tune, base_raw, Path(run_dir), smoke=smoke, progress=progress,
                 distributed=distributed, log=log).run()
