"""One trial: a normal keras_ssl run of the base config with the trial's values, scored.

:class:`TrialRunner` turns KerasTuner's values into an experiment config
(the stage's overrides, then the values; for Hyperband ``train.steps`` from
``tuner/epochs``), runs it with :func:`keras_ssl.training.job.run` (looked
up at call time; no test-set evaluation, no export) in
``<stage>/trial_<id>/``, and scores it on the validation split (never the
test set) or by its final pretext loss. Once scored, it writes
``trial_result.json`` (its presence means the trial is done: a rerun skips
the baseline, and the tables read it) and the trial's HParams session.

Errors: a bad trial config or a failed run (non-finite loss, ...) is a
KerasTuner ``FailedTrialError`` (the sweep goes on, up to
``max_consecutive_failed_trials`` in a row); data that cannot be loaded is a
``FatalError`` (the sweep stops). The baseline trial (``base``: the base
config's own values at the stage's budget) is run by the same code.
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from keras_ssl.config import ConfigError, ExperimentConfig, apply_overrides, config_from_dict, to_dict
from keras_ssl.files import write_json_atomic
from keras_ssl.training.errors import TrainingError
from keras_ssl.tuning.config import TuneConfig
from keras_ssl.tuning.formatting import format_values
from keras_ssl.tuning.hparams import write_trial_hparams
from keras_ssl.tuning.layout import Layout

#: KerasTuner's own bookkeeping among a trial's values (Hyperband's epochs, parent, ...).
TUNER_KEYS_PREFIX = "tuner/"
BASELINE_ID = "base"


def trial_values(hyperparameters_values: dict) -> dict:
    """The searched values of a trial (KerasTuner's ``tuner/...`` bookkeeping dropped)."""
    def clean(v):  # 0.30000000000000004 (a float step) -> 0.3
        return float(f"{v:.10g}") if isinstance(v, float) else v
    return {k: clean(v) for k, v in hyperparameters_values.items()
            if not k.startswith(TUNER_KEYS_PREFIX)}


def clamped_values(hyperparameters) -> dict:
    """The trial's values, ints clamped to their range: KerasTuner's ``hp.Int``
    without a step maps probability 1.0 (which BayesianOptimization proposes at
    a bound) to ``max_value + 1``."""
    values = dict(hyperparameters.values)
    for p in getattr(hyperparameters, "space", ()):
        lo, hi = getattr(p, "min_value", None), getattr(p, "max_value", None)
        v = values.get(p.name)
        if isinstance(v, int) and not isinstance(v, bool) and lo is not None and hi is not None:
            values[p.name] = min(max(v, lo), hi)
    return values


class TrialRunner:
    """Runs and scores the trials of ``tune``'s stages under ``layout``."""

    def __init__(self, tune: TuneConfig, base_raw: dict, layout: Layout, *,
                 progress: bool = False, log: Callable = print):
        self.tune, self.base_raw, self.layout = tune, base_raw, layout
        self.progress, self.log = progress, log

    def trial_config(self, i: int, values: dict) -> tuple[dict, ExperimentConfig]:
        """(raw dict, ExperimentConfig) of a trial of stage ``i`` with KerasTuner ``values``."""
        stage = self.tune.stages[i]
        overrides = {**stage.overrides, **trial_values(values)}
        if stage.tuner == "hyperband" and "tuner/epochs" in values:
            overrides["train.steps"] = int(values["tuner/epochs"]) * stage.hyperband.steps_per_epoch
        where = f"{self.tune.path}: stage {stage.name!r}"
        raw = apply_overrides(self.base_raw, overrides, where)
        raw["name"] = f"{self.base_raw['name']}_{stage.name}"
        return raw, config_from_dict(raw, where)

    def run(self, i: int, trial, tuner_id: str = "tuner0") -> dict:
        """Run one trial of stage ``i`` as a keras_ssl run; returns the metrics for the oracle."""
        import keras
        import keras_tuner as kt

        from keras_ssl.data import DataError
        from keras_ssl.training import job  # job.run looked up now: tests replace it

        stage, obj = self.tune.stages[i], self.tune.objective
        label = f"[{stage.name} trial {trial.trial_id}]"
        values = clamped_values(trial.hyperparameters)
        tdir = self.layout.trial_dir(i, trial.trial_id)
        t0 = time.perf_counter()
        keras.backend.clear_session()
        try:
            _, cfg = self.trial_config(i, values)
            self._continue_from_parent(i, values, tdir)
            self.log(f"{label} {cfg.train.steps} steps; {format_values(trial_values(values))}")
            summary = job.run(cfg, tdir, progress=self.progress, evaluate=False, export=False,
                              log=lambda *_: None)
            loss = (summary.get("pretrain", {}).get("final") or {}).get("loss")
            score = self._score(cfg, tdir, loss)
        except (TrainingError, ConfigError) as e:
            self.log(f"{label} failed: {e}")
            raise kt.errors.FailedTrialError(str(e)) from None
        except DataError as e:
            raise kt.errors.FatalError(str(e)) from None
        if not math.isfinite(score):
            raise kt.errors.FailedTrialError(f"objective {obj.name} is {score}")
        result = {"trial_id": trial.trial_id, "stage": stage.name, obj.name: score,
                  "pretext_loss": loss, "steps": cfg.train.steps,
                  "seconds": time.perf_counter() - t0, "values": trial_values(values),
                  "run_dir": str(tdir), "tuner_id": tuner_id}
        write_json_atomic(self.layout.trial_result(i, trial.trial_id), result)
        write_trial_hparams(tdir / "tb", stage=stage.name, trial_id=trial.trial_id,
                            values=trial_values(values), steps=cfg.train.steps,
                            metric=obj.name, score=score)
        self.log(f"{label} {obj.name} = {score:.4f} ({result['seconds']:.0f} s)")
        metrics = {obj.name: score}
        if loss is not None and obj.kind != "pretext_loss":
            metrics["pretext_loss"] = float(loss)
        return metrics

    def _continue_from_parent(self, i: int, values: dict, tdir: Path) -> None:
        """Hyperband promotion: a trial with a parent starts from the parent's checkpoints
        (unless it has its own already: then it is resuming)."""
        parent = values.get("tuner/trial_id")
        if parent and not (tdir / "checkpoints").is_dir():
            src = self.layout.trial_dir(i, parent) / "checkpoints"
            if src.is_dir():
                shutil.copytree(src, tdir / "checkpoints")

    def _score(self, cfg: ExperimentConfig, tdir: Path, loss) -> float:
        """The objective of a finished run (``loss``: its final pretext loss, or None)."""
        if self.tune.objective.kind == "pretext_loss":
            if loss is None:
                raise TrainingError(f"{tdir} has no final pretext loss (the run had finished "
                                    f"before); remove that directory and resume")
            return float(loss)
        return self.validation_score(cfg, tdir)

    def validation_score(self, cfg: ExperimentConfig, tdir: Path) -> float:
        """The objective on the validation split carved from the training set."""
        import keras

        from keras_ssl.data import load_labeled
        from keras_ssl.evaluation.validation import validation_score

        encoder = keras.models.load_model(tdir / "encoder.keras", compile=False)
        from keras_ssl.data.core import eval_options
        train, _test_unused = load_labeled(cfg.data.eval_dataset, cfg.data.image_size,
                                           cfg.data.channels, cfg.data.tfds_data_dir,
                                           **eval_options(cfg.data))
        return float(validation_score(encoder, train, validation_images=cfg.data.validation_images,
                                      seed=cfg.seed, kind=self.tune.objective.kind,
                                      labels=self.tune.objective.labels, knn_k=cfg.eval.knn_k))

    def base_values(self) -> dict:
        """The base config's own values of the searched keys."""
        doc = to_dict(config_from_dict(self.base_raw, self.tune.path))
        out = {}
        for key in self.tune.space:
            node = doc
            for part in key.split("."):
                node = node[part]
            out[key] = node
        return out

    def run_baseline(self, i: int) -> None:
        """Run the base config's own values at stage ``i``'s budget (trial ``base``),
        unless a previous session did; a failure is logged, not raised."""
        import keras_tuner as kt

        if self.layout.trial_result(i, BASELINE_ID).is_file():
            return
        trial = SimpleNamespace(trial_id=BASELINE_ID,
                                hyperparameters=SimpleNamespace(values=self.base_values()))
        try:
            self.run(i, trial, "baseline")
        except (kt.errors.FailedTrialError, kt.errors.FatalError) as e:
            self.log(f"[{self.tune.stages[i].name} baseline] failed: {e}")
