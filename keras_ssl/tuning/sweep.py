"""KerasTuner sweeps, coarse to fine: ``python -m keras_ssl.tune``.

    python -m keras_ssl.tune --config configs/mnist_egomotion_tune.json
        [--run-dir runs/NAME] [--smoke] [--no-progress]
        [--chief | --worker ID] [--oracle-address HOST:PORT]

The tune config (see :mod:`keras_ssl.tuning.config` and docs/tuning.md) names
a base experiment config, a search space over its dotted keys, an objective
computed on the validation split (never the test set) and the stages. Each
stage is one KerasTuner search; stages after the first search the space
narrowed around the previous stage's best trials (log space for log keys, the
other keys pinned with ``hp.Fixed``, ``tune_new_entries=False``).

Every trial is a normal keras_ssl run (:func:`keras_ssl.training.job.run`, without
the few-label test-set evaluation and without export) in its own directory.
Layout of the tune run directory::

    tune_config.json           resolved tune config (a rerun must match it)
    hparams/                   TensorBoard HParams experiment (all stages)
    <stage>/keras_tuner/       KerasTuner project (oracle state, trial.json)
    <stage>/trial_<id>/        the trial's run: config.json, tb/, encoder.keras,
                               summary.json, trial_result.json
    <stage>/trials.md, .csv    ranked table of the stage's trials
    best_config.json           base config + the best values (runnable as is)
    summary.md, summary.json   both tables, the best trial, wall time

The same command after an interruption resumes: finished trials are skipped
(KerasTuner reloads its project, ``overwrite=False``) and an interrupted trial
is run again, resuming from its last checkpoint.

Distributed tuning (KerasTuner's chief/worker mode): one process started with
``--chief`` serves the oracle, processes started with ``--worker ID`` run
trials; all take the same ``--config``, ``--run-dir`` (a shared directory)
and ``--oracle-address``. Stage ``i`` is served on port ``PORT + i``.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from keras_ssl.config import ConfigError, apply_overrides, config_from_dict
from keras_ssl.tuning.config import (Fixed, Stage, TuneConfig, grid_values, load_tune_config,
                                     narrow_space, tune_to_dict)

TUNER_KEYS_PREFIX = "tuner/"


# --------------------------------------------------------------------------
# Distributed mode: the environment variables KerasTuner reads
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Distributed:
    """KerasTuner chief/worker settings for this process.

    KerasTuner itself reads ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``
    and ``KERASTUNER_ORACLE_PORT``; :func:`run_sweep` sets them (never reads
    them) around each stage, stage ``i`` on ``port + i`` so that a worker that
    finished a stage cannot reach the previous stage's oracle.
    """
    tuner_id: str        # "chief", or a worker id
    host: str
    port: int

    @property
    def is_chief(self) -> bool:
        return self.tuner_id == "chief"

    def environ(self, stage_index: int) -> dict[str, str]:
        return {"KERASTUNER_TUNER_ID": self.tuner_id, "KERASTUNER_ORACLE_IP": self.host,
                "KERASTUNER_ORACLE_PORT": str(self.port + stage_index)}


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    """Set environment variables for the block, restoring the old ones after."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def parse_oracle_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--oracle-address must be HOST:PORT (e.g. 127.0.0.1:8000), got {text!r}")
    return host, int(port)


# --------------------------------------------------------------------------
# Search space -> KerasTuner
# --------------------------------------------------------------------------

def kt_hyperparameters(space: dict, tuner: str, grid_points: int = 3):
    """KerasTuner HyperParameters for a (possibly narrowed) space.

    Floats and ints become ``hp.Float`` / ``hp.Int`` (``sampling="log"`` for
    log keys); for ``tuner == "grid"`` they become ``hp.Choice`` over
    ``grid_points`` values. Pinned keys become ``hp.Fixed``.
    """
    import keras_tuner as kt

    hp = kt.HyperParameters()
    for key, dim in space.items():
        if isinstance(dim, Fixed):
            hp.Fixed(key, dim.value)
        elif dim.type == "choice":
            hp.Choice(key, list(dim.values), ordered=all(isinstance(v, (int, float)) and
                                                         not isinstance(v, bool) for v in dim.values))
        elif tuner == "grid":
            hp.Choice(key, list(grid_values(dim, grid_points)))
        elif dim.type == "float":
            hp.Float(key, float(dim.min), float(dim.max), step=dim.step,
                     sampling="log" if dim.log else "linear")
        else:
            hp.Int(key, int(dim.min), int(dim.max), step=int(dim.step) if dim.step else None,
                   sampling="log" if dim.log else "linear")
    return hp


def make_oracle(stage: Stage, hp, tune: TuneConfig, stage_index: int):
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


def _tuner_class():
    import keras_tuner as kt

    class TrialRunner(kt.engine.base_tuner.BaseTuner):
        """A KerasTuner tuner whose trial is a keras_ssl run (no hypermodel)."""

        def __init__(self, oracle, sweep: "Sweep", stage_index: int, directory: Path):
            self.sweep, self.stage_index = sweep, stage_index
            super().__init__(oracle, directory=str(directory), project_name="keras_tuner",
                             overwrite=False)

        def run_trial(self, trial, *args, **kwargs):
            return self.sweep.run_trial(self.stage_index, trial, self.tuner_id)

    return TrialRunner


# --------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------

def trial_values(hyperparameters_values: dict) -> dict:
    """The searched values of a trial (KerasTuner's ``tuner/...`` bookkeeping dropped)."""
    def clean(v):  # 0.30000000000000004 (a float step) -> 0.3
        return float(f"{v:.10g}") if isinstance(v, float) else v
    return {k: clean(v) for k, v in hyperparameters_values.items()
            if not k.startswith(TUNER_KEYS_PREFIX)}


def _clamped_values(hyperparameters) -> dict:
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


class Sweep:
    """Runs the stages of a tune config under ``run_dir``.

    ``distributed``: None (one process) or this process's chief/worker role.
    """

    def __init__(self, tune: TuneConfig, base_raw: dict, run_dir: Path, *, smoke: bool = False,
                 progress: bool = False, distributed: Optional[Distributed] = None,
                 log: Callable = print):
        self.tune, self.base_raw, self.run_dir = tune, base_raw, Path(run_dir)
        self.smoke, self.progress, self.dist, self.log = smoke, progress, distributed, log
        self.spaces: dict[int, dict] = {}
        self.results: dict[int, list[dict]] = {}

    # -- directories ---------------------------------------------------------

    def stage_dir(self, i: int) -> Path:
        return self.run_dir / self.tune.stages[i].name

    def trial_dir(self, i: int, trial_id: str) -> Path:
        return self.stage_dir(i) / f"trial_{trial_id}"

    def _check_run_dir(self) -> None:
        """Refuse to resume a sweep made with another tune config (or base config)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # What a resumed sweep must share: not the file's spelling or its prose.
        tune = {k: v for k, v in tune_to_dict(self.tune).items()
                if k not in ("path", "description", "cost")}
        doc = {"tune": tune, "base": self.base_raw, "smoke": self.smoke}
        doc = json.loads(json.dumps(doc))
        path = self.run_dir / "tune_config.json"
        if path.is_file():
            try:
                old = json.loads(path.read_text())
                old["tune"] = {k: v for k, v in old["tune"].items()
                               if k not in ("path", "description", "cost")}
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                old = None
            started = any(self.stage_dir(i).is_dir() for i in range(len(self.tune.stages)))
            if old != doc and started:
                raise ConfigError(
                    f"{self.run_dir} holds a sweep made with a different tune or base config (see "
                    f"{path}); pass another --run-dir or remove that directory")
            if old == doc:
                return
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, path)

    # -- one trial -------------------------------------------------------------

    def trial_config(self, i: int, values: dict):
        """(raw dict, ExperimentConfig) of a trial of stage ``i`` with KerasTuner ``values``."""
        stage = self.tune.stages[i]
        overrides = {**stage.overrides, **trial_values(values)}
        if stage.tuner == "hyperband" and "tuner/epochs" in values:
            overrides["train.steps"] = int(values["tuner/epochs"]) * stage.hyperband.steps_per_epoch
        where = f"{self.tune.path}: stage {stage.name!r}"
        raw = apply_overrides(self.base_raw, overrides, where)
        raw["name"] = f"{self.base_raw['name']}_{stage.name}"
        return raw, config_from_dict(raw, where)

    def run_trial(self, i: int, trial, tuner_id: str = "tuner0") -> dict:
        """Run one trial as a keras_ssl run; returns the metrics for the oracle."""
        import keras
        import keras_tuner as kt

        from keras_ssl.training import job
        from keras_ssl.data import DataError
        from keras_ssl.training.errors import TrainingError

        stage, obj = self.tune.stages[i], self.tune.objective
        values = _clamped_values(trial.hyperparameters)
        tdir = self.trial_dir(i, trial.trial_id)
        t0 = time.perf_counter()
        keras.backend.clear_session()
        try:
            _, cfg = self.trial_config(i, values)
            parent = values.get("tuner/trial_id")
            if parent and not (tdir / "checkpoints").is_dir():
                # Hyperband promotion: continue from the parent trial's weights.
                src = self.trial_dir(i, parent) / "checkpoints"
                if src.is_dir():
                    shutil.copytree(src, tdir / "checkpoints")
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in trial_values(values).items())
            self.log(f"[{stage.name} trial {trial.trial_id}] {cfg.train.steps} steps; {shown}")
            summary = job.run(cfg, tdir, progress=self.progress, evaluate=False, export=False,
                                log=lambda *_: None)
            loss = (summary.get("pretrain", {}).get("final") or {}).get("loss")
            if obj.kind == "pretext_loss":
                if loss is None:
                    raise TrainingError(f"{tdir} has no final pretext loss (the run had finished "
                                        f"before); remove that directory and resume")
                score = float(loss)
            else:
                score = self._validation_score(cfg, tdir)
        except (TrainingError, ConfigError) as e:
            self.log(f"[{stage.name} trial {trial.trial_id}] failed: {e}")
            raise kt.errors.FailedTrialError(str(e)) from None
        except DataError as e:
            raise kt.errors.FatalError(str(e)) from None
        if not math.isfinite(score):
            raise kt.errors.FailedTrialError(f"objective {obj.name} is {score}")
        result = {"trial_id": trial.trial_id, "stage": stage.name, obj.name: score,
                  "pretext_loss": loss, "steps": cfg.train.steps,
                  "seconds": time.perf_counter() - t0, "values": trial_values(values),
                  "run_dir": str(tdir), "tuner_id": tuner_id}
        (tdir / "trial_result.json").write_text(json.dumps(result, indent=2) + "\n")
        self._write_trial_hparams(i, trial.trial_id, cfg, values, score)
        self.log(f"[{stage.name} trial {trial.trial_id}] {obj.name} = {score:.4f} "
                 f"({result['seconds']:.0f} s)")
        metrics = {obj.name: score}
        if loss is not None and obj.kind != "pretext_loss":
            metrics["pretext_loss"] = float(loss)
        return metrics

    def _validation_score(self, cfg, tdir: Path) -> float:
        """The objective on the validation split carved from the training set."""
        import keras

        from keras_ssl.data import load_labeled
        from keras_ssl.evaluation.protocols import validation_score

        encoder = keras.models.load_model(tdir / "encoder.keras", compile=False)
        train, _test_unused = load_labeled(cfg.data.eval_dataset, cfg.data.image_size,
                                           cfg.data.channels, cfg.data.tfds_data_dir)
        return float(validation_score(encoder, train, validation_images=cfg.data.validation_images,
                                      seed=cfg.seed, kind=self.tune.objective.kind,
                                      labels=self.tune.objective.labels, knn_k=cfg.eval.knn_k))

    # -- TensorBoard HParams ---------------------------------------------------

    def _hparam_names(self) -> list[str]:
        return list(self.tune.space) + ["train.steps", "stage"]

    def _write_hparams_config(self) -> None:
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp_api

        hps = []
        for key, dim in self.tune.space.items():
            if dim.type == "choice":
                vals = list(dim.values)
                hps.append(hp_api.HParam(key, hp_api.Discrete(vals) if all(
                    isinstance(v, (int, float, str, bool)) for v in vals) else None))
            elif dim.type == "float":
                hps.append(hp_api.HParam(key, hp_api.RealInterval(float(dim.min), float(dim.max))))
            else:
                hps.append(hp_api.HParam(key, hp_api.IntInterval(int(dim.min), int(dim.max))))
        hps.append(hp_api.HParam("train.steps"))
        hps.append(hp_api.HParam("stage", hp_api.Discrete([s.name for s in self.tune.stages])))
        metrics = [hp_api.Metric(self.tune.objective.name, display_name=self.tune.objective.name),
                   hp_api.Metric("loss", group="pretrain", display_name="pretext loss (final)")]
        writer = tf.summary.create_file_writer(str(self.run_dir / "hparams"))
        with writer.as_default():
            hp_api.hparams_config(hparams=hps, metrics=metrics)
        writer.flush()

    def _write_trial_hparams(self, i, trial_id, cfg, values, score) -> None:
        """The trial's HParams session in its own ``tb/`` (beside ``tb/pretrain``)."""
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp_api

        stage = self.tune.stages[i]
        hp_values = {k: v for k, v in trial_values(values).items()}
        hp_values.update({"train.steps": cfg.train.steps, "stage": stage.name})
        writer = tf.summary.create_file_writer(str(self.trial_dir(i, trial_id) / "tb"))
        with writer.as_default(step=cfg.train.steps):
            hp_api.hparams(hp_values, trial_id=f"{stage.name}/{trial_id}")
            tf.summary.scalar(self.tune.objective.name, score)
        writer.flush()

    # -- stages ----------------------------------------------------------------

    def stage_space(self, i: int) -> dict:
        """The space of stage ``i``: the full space, or narrowed around stage ``i-1``."""
        if i == 0:
            return dict(self.tune.space)
        prev = [r for r in self.results[i - 1] if r["status"] == "COMPLETED"]
        if not prev:
            raise ConfigError(f"stage {self.tune.stages[i - 1].name!r} has no completed trial "
                              f"to narrow around (see {self.stage_dir(i - 1) / 'trials.md'})")
        stage = self.tune.stages[i]
        top = [r["values"] for r in prev[:stage.top_k]]
        return narrow_space(self.spaces[i - 1], top, top[0], stage.margin, stage.pin)

    def run_stage(self, i: int) -> None:
        stage = self.tune.stages[i]
        worker = self.dist is not None and not self.dist.is_chief
        with _environ(self.dist.environ(i) if self.dist else {}):
            if worker:
                # The chief's oracle hands out the (narrowed) values; this one is a stand-in.
                space = dict(self.tune.space)
            else:
                space = self.stage_space(i)
                self.spaces[i] = space
                self._log_space(stage, space)
            hp = kt_hyperparameters(space, stage.tuner, stage.grid_points)
            oracle = make_oracle(stage, hp, self.tune, i)
            self.stage_dir(i).mkdir(parents=True, exist_ok=True)
            tuner = _tuner_class()(oracle, self, i, self.stage_dir(i))
            t0 = time.perf_counter()
            tuner.search(verbose=0)
            if worker:
                return
            self.results[i] = self._collect(i, tuner.oracle)
            if stage.baseline:
                self.results[i] = self._with_baseline(i, self.results[i])
            secs = time.perf_counter() - t0
        md = self.write_stage_table(i)
        self.log(f"\nstage {stage.name}: {len(self.results[i])} trials ({secs:.0f} s this session)\n{md}")

    def _log_space(self, stage: Stage, space: dict) -> None:
        parts = []
        for k, d in space.items():
            if isinstance(d, Fixed):
                parts.append(f"{k}={_fmt(d.value)} (fixed)")
            elif d.type == "choice":
                parts.append(f"{k} in {list(d.values)}")
            else:
                parts.append(f"{k} in [{_fmt(d.min)}, {_fmt(d.max)}]{' log' if d.log else ''}")
        self.log(f"stage {stage.name} ({stage.tuner}, {stage.trials} trials): " + "; ".join(parts))

    def _collect(self, i: int, oracle) -> list[dict]:
        """The stage's trials, best first (completed by objective, then the rest)."""
        obj = self.tune.objective
        rows = []
        for t in oracle.trials.values():
            r = {"trial_id": t.trial_id, "status": t.status, "score": t.score,
                 "values": trial_values(t.hyperparameters.values), "message": t.message}
            path = self.trial_dir(i, t.trial_id) / "trial_result.json"
            if path.is_file():
                extra = json.loads(path.read_text())
                r.update(steps=extra.get("steps"), seconds=extra.get("seconds"),
                         pretext_loss=extra.get("pretext_loss"))
            rows.append(r)
        done = [r for r in rows if r["status"] == "COMPLETED" and r["score"] is not None]
        done.sort(key=lambda r: r["score"], reverse=obj.goal == "max")
        rest = sorted((r for r in rows if r not in done), key=lambda r: r["trial_id"])
        return done + rest

    def base_values(self) -> dict:
        """The base config's own values of the searched keys."""
        from keras_ssl.config import to_dict

        doc = to_dict(config_from_dict(self.base_raw, self.tune.path))
        out = {}
        for key in self.tune.space:
            node = doc
            for part in key.split("."):
                node = node[part]
            out[key] = node
        return out

    def _with_baseline(self, i: int, rows: list[dict]) -> list[dict]:
        """Run (or reload) the base config's values at stage ``i``'s budget."""
        import keras_tuner as kt

        path = self.trial_dir(i, "base") / "trial_result.json"
        if not path.is_file():
            values = self.base_values()
            fake = type("BaselineTrial", (), {})()
            fake.trial_id = "base"
            fake.hyperparameters = type("Values", (), {"values": values})()
            try:
                self.run_trial(i, fake, "baseline")
            except (kt.errors.FailedTrialError, kt.errors.FatalError) as e:
                self.log(f"[{self.tune.stages[i].name} baseline] failed: {e}")
        row = {"trial_id": "base", "status": "BASELINE", "score": None,
               "values": self.base_values(), "message": None}
        if path.is_file():
            extra = json.loads(path.read_text())
            row.update(score=extra[self.tune.objective.name], steps=extra.get("steps"),
                       seconds=extra.get("seconds"), pretext_loss=extra.get("pretext_loss"))
        scored = [r for r in rows if r["status"] == "COMPLETED"]
        rest = [r for r in rows if r["status"] != "COMPLETED"]
        if row["score"] is None:
            return scored + rest + [row]
        scored.append(row)
        scored.sort(key=lambda r: r["score"], reverse=self.tune.objective.goal == "max")
        return scored + rest

    # -- outputs ---------------------------------------------------------------

    def _table(self, i: int) -> tuple[list[str], list[list]]:
        keys = list(self.tune.space)
        head = ["rank", "trial", "status", self.tune.objective.name, "pretext_loss", "steps",
                "seconds"] + keys
        rows, n = [], 0
        for r in self.results[i]:
            done = r["status"] == "COMPLETED"
            n += done
            rank = n if done else ("base" if r["status"] == "BASELINE" else "-")
            rows.append([rank, r["trial_id"], r["status"], r["score"],
                         r.get("pretext_loss"), r.get("steps"),
                         None if r.get("seconds") is None else round(r["seconds"], 1)]
                        + [r["values"].get(k) for k in keys])
        return head, rows

    def write_stage_table(self, i: int) -> str:
        head, rows = self._table(i)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(head)
        w.writerows([["" if v is None else v for v in row] for row in rows])
        d = self.stage_dir(i)
        (d / "trials.csv").write_text(buf.getvalue())
        stage = self.tune.stages[i]
        total = sum(r.get("seconds") or 0.0 for r in self.results[i])
        md = (f"### Stage {stage.name}: {stage.tuner}, objective {self.tune.objective.name} "
              f"({self.tune.objective.goal}); trials' total time {total:.0f} s\n\n"
              + markdown_table(head, rows))
        (d / "trials.md").write_text(md)
        return md

    def best_config(self) -> tuple[dict, dict]:
        """Base config (without --smoke overrides) + the best values of the last stage."""
        last = len(self.tune.stages) - 1
        best = next((r for r in self.results[last] if r["status"] == "COMPLETED"), None)
        if best is None:
            raise ConfigError(f"the last stage ({self.tune.stages[last].name}) has no completed trial")
        plain = self.base_raw
        raw = apply_overrides(plain, best["values"], self.tune.path)
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in best["values"].items())
        raw = {"name": f"{plain['name']}_tuned", **{k: v for k, v in raw.items() if k != "name"}}
        raw["description"] = (
            f"{plain.get('description', '')} Tuned by python -m keras_ssl.tune --config "
            f"{self.tune.path}{' --smoke' if self.smoke else ''} (stage {self.tune.stages[last].name}, "
            f"trial {best['trial_id']}, {self.tune.objective.name} = {best['score']:.4f}): "
            f"{shown}.").strip()
        config_from_dict(raw, str(self.run_dir / "best_config.json"))  # must parse as is
        return raw, best

    def finish(self, seconds: float) -> dict:
        raw, best = self.best_config()
        path = self.run_dir / "best_config.json"
        path.write_text(json.dumps(raw, indent=2) + "\n")
        tables = "\n".join((self.stage_dir(i) / "trials.md").read_text()
                           for i in range(len(self.tune.stages)))
        md = (f"# Sweep {self.tune.name}{' (smoke)' if self.smoke else ''}\n\n"
              f"Base config: {self.tune.base}; objective: {self.tune.objective.name} "
              f"({self.tune.objective.goal}), on the validation split; wall time this session: "
              f"{seconds:.0f} s.\n\n{tables}\nBest: stage {self.tune.stages[-1].name} "
              f"trial {best['trial_id']}, {self.tune.objective.name} = {best['score']:.4f}; "
              f"written to {path}\n")
        (self.run_dir / "summary.md").write_text(md)
        summary = {"tune_config": self.tune.path, "run_dir": str(self.run_dir),
                   "objective": self.tune.objective.name, "best": best,
                   "best_config": str(path), "seconds": seconds,
                   "stages": {s.name: self.results[i] for i, s in enumerate(self.tune.stages)}}
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        return summary

    def run(self) -> Optional[dict]:
        """All stages; returns the summary (None on a worker)."""
        t0 = time.perf_counter()
        self._check_run_dir()
        worker = self.dist is not None and not self.dist.is_chief
        if not worker:
            self._write_hparams_config()
        for i in range(len(self.tune.stages)):
            self.run_stage(i)
        if worker:
            self.log(f"worker {self.dist.tuner_id}: all stages done")
            return None
        summary = self.finish(time.perf_counter() - t0)
        self.log(f"best config: {summary['best_config']}\nsummary: {self.run_dir / 'summary.md'}")
        return summary


def run_sweep(config_path, run_dir, *, smoke: bool = False, progress: bool = False,
              distributed: Optional[Distributed] = None, log: Callable = print) -> Optional[dict]:
    """Load and check the tune config, then run every stage (see module docstring)."""
    tune, base_raw = load_tune_config(config_path, smoke=smoke)
    return Sweep(tune, base_raw, Path(run_dir), smoke=smoke, progress=progress,
                 distributed=distributed, log=log).run()


# --------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------

def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown_table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join("" if v is None else _fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def default_run_dir(config_path: str, smoke: bool) -> Path:
    return Path("runs") / (Path(config_path).stem + ("_smoke" if smoke else ""))


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    p = argparse.ArgumentParser(prog="python -m keras_ssl.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="tune config (JSON), e.g. configs/mnist_egomotion_tune.json")
    p.add_argument("--run-dir", help="tune run directory (default runs/<config stem>[_smoke])")
    p.add_argument("--smoke", action="store_true",
                   help="tiny data, few trials and steps: the experiment's and each stage's smoke settings")
    p.add_argument("--no-progress", action="store_true", help="no per-trial progress bars")
    role = p.add_mutually_exclusive_group()
    role.add_argument("--chief", action="store_true",
                      help="distributed tuning: serve the oracle (runs no trials)")
    role.add_argument("--worker", metavar="ID", help="distributed tuning: run trials as worker ID")
    p.add_argument("--oracle-address", metavar="HOST:PORT",
                   help="the chief's address; stage i uses PORT+i (with --chief / --worker)")
    args = p.parse_args(argv)
    import tensorflow as tf
    # Every trial re-traces the evaluation's tf.functions: TensorFlow's retracing
    # warnings say nothing a user acts on here.
    tf.get_logger().setLevel("ERROR")
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.config, args.smoke)
    try:
        dist = None
        if args.chief or args.worker:
            if not args.oracle_address:
                raise ConfigError("--chief / --worker need --oracle-address HOST:PORT")
            if args.worker and "chief" in args.worker:
                raise ConfigError(f"--worker ID must not contain 'chief' (KerasTuner would take "
                                  f"it for the chief), got {args.worker!r}")
            host, port = parse_oracle_address(args.oracle_address)
            dist = Distributed("chief" if args.chief else args.worker, host, port)
        elif args.oracle_address:
            raise ConfigError("--oracle-address needs --chief or --worker ID")
        run_sweep(args.config, run_dir, smoke=args.smoke, progress=not args.no_progress,
                  distributed=dist)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume the sweep in {run_dir}",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
