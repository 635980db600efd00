"""KerasTuner's side of a stage: the oracle, and a tuner whose trial is a keras_ssl run.

:func:`make_oracle` picks the stage's search algorithm. Its space is fixed
(``tune_new_entries=False``, ``allow_new_entries=False``): a trial never
adds a hyperparameter. :func:`make_tuner` wraps it in a tuner with no
hypermodel: each trial is handed to a ``run_trial(trial, tuner_id)``
callable (:meth:`keras_ssl.tuning.trials.TrialRunner.run`) that returns the
metrics for the oracle. The project lives in ``<directory>/keras_tuner`` and
is reloaded, never overwritten, so that a rerun resumes.

KerasTuner is imported when these are called, not when this module is.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

from keras_ssl.tuning.config import Stage, TuneConfig

#: ``run_trial(trial, tuner_id) -> metrics``
RunTrial = Callable[..., dict]


def make_oracle(stage: Stage, hp, tune: TuneConfig, stage_index: int):
    """The KerasTuner oracle of stage ``stage_index`` over hyperparameters ``hp``."""
    import keras_tuner as kt

    common = dict(objective=kt.Objective(tune.objective.name, tune.objective.goal),
                  hyperparameters=hp, tune_new_entries=False, allow_new_entries=False,
                  # KerasTuner treats seed 0 as "no seed".
                  seed=1000 * (tune.seed + 1) + stage_index,
                  max_consecutive_failed_trials=tune.max_consecutive_failed_trials)
    if stage.tuner == "random":
        return kt.oracles.RandomSearchOracle(max_trials=stage.trials, **common)
    if stage.tuner == "grid":
        return kt.oracles.GridSearchOracle(max_trials=stage.trials, **common)
    if stage.tuner == "bayesian":
        return kt.oracles.BayesianOptimizationOracle(
            max_trials=stage.trials, num_initial_points=max(1, min(3, stage.trials // 2)), **common)
    hb = stage.hyperband
    return kt.oracles.HyperbandOracle(max_epochs=hb.max_epochs, factor=hb.factor,
                                      hyperband_iterations=hb.iterations, **common)


@functools.cache
def _tuner_class():
    # Defined on first use: subclassing needs keras_tuner imported, which is slow.
    import keras_tuner as kt

    class RunTuner(kt.engine.base_tuner.BaseTuner):
        """A KerasTuner tuner whose trial is a keras_ssl run (no hypermodel)."""

        def __init__(self, oracle, run_trial: RunTrial, directory: Path):
            self._keras_ssl_run_trial = run_trial
            super().__init__(oracle, directory=str(directory), project_name="keras_tuner",
                             overwrite=False)

        def run_trial(self, trial, *args, **kwargs):
            return self._keras_ssl_run_trial(trial, self.tuner_id)

    return RunTuner


def make_tuner(oracle, run_trial: RunTrial, directory: Path):
    """A tuner over ``oracle`` whose project is ``directory/keras_tuner``."""
    return _tuner_class()(oracle, run_trial, directory)
