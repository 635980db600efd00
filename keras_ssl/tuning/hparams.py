"""TensorBoard HParams of a sweep: the experiment (once) and one session per trial.

``tensorboard --logdir <run-dir>`` then lists every trial of every stage.
The experiment (``<run-dir>/hparams/``) declares the hparams (the searched
keys, ``train.steps``, ``stage``) and the metrics (the objective, and
``pretrain/loss`` that each trial's ``tb/pretrain`` curves hold). A session
lives in the trial's own ``tb/``, beside ``tb/pretrain``, with the trial's
values and its objective at step ``train.steps``.
"""
from __future__ import annotations

from pathlib import Path

from keras_ssl.tuning.config import TuneConfig


def write_hparams_config(log_dir: Path, tune: TuneConfig) -> None:
    """Declare the HParams experiment of ``tune`` in ``log_dir``."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp_api

    hps = []
    for key, dim in tune.space.items():
        if dim.type == "choice":
            vals = list(dim.values)
            hps.append(hp_api.HParam(key, hp_api.Discrete(vals) if all(
                isinstance(v, (int, float, str, bool)) for v in vals) else None))
        elif dim.type == "float":
            hps.append(hp_api.HParam(key, hp_api.RealInterval(float(dim.min), float(dim.max))))
        else:
            hps.append(hp_api.HParam(key, hp_api.IntInterval(int(dim.min), int(dim.max))))
    hps.append(hp_api.HParam("train.steps"))
    hps.append(hp_api.HParam("stage", hp_api.Discrete([s.name for s in tune.stages])))
    metrics = [hp_api.Metric(tune.objective.name, display_name=tune.objective.name),
               hp_api.Metric("loss", group="pretrain", display_name="pretext loss (final)")]
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        hp_api.hparams_config(hparams=hps, metrics=metrics)
    writer.flush()


def write_trial_hparams(log_dir: Path, *, stage: str, trial_id: str, values: dict, steps: int,
                        metric: str, score: float) -> None:
    """One trial's HParams session in ``log_dir`` (the trial's ``tb/``): its searched
    ``values``, ``train.steps`` and ``stage``, and ``metric`` = ``score``."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp_api

    hp_values = {**values, "train.steps": steps, "stage": stage}
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default(step=steps):
        hp_api.hparams(hp_values, trial_id=f"{stage}/{trial_id}")
        tf.summary.scalar(metric, score)
    writer.flush()
