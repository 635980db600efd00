"""The whole job of ``python -m keras_ssl.train``: pretrain, evaluate with few
labels, export, all under one run directory (:mod:`keras_ssl.training.run_dir`).

The same call after an interruption resumes from the latest checkpoint. On a
finished run, other evaluation or export settings evaluate or export its
encoder again without pretraining; a different pretraining config is refused.

Contract of :func:`run`: ``summary.json`` holds, in this order, ``config``,
``run_dir``, ``data`` (the pretraining images: ``images``, and the unreadable
files that ``data.skip_unreadable`` left out: ``skipped_unreadable``, their
count, ``skipped_examples``, the first :data:`SKIPPED_EXAMPLES` paths),
``pretrain`` (the trainer's summary; on a finished run, that of
the run that trained), with evaluation ``validation`` (when
``data.validation_images`` > 0) and ``evaluate_seconds``, with export
``export`` (the SavedModel's path), and ``seconds`` (the whole job).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from keras_ssl.config import ExperimentConfig, to_dict
from keras_ssl.files import atomic_path, write_json_atomic
from keras_ssl.training.run_dir import prepare_run_dir, previous_pretrain

if TYPE_CHECKING:   # the TensorFlow imports wait until a job runs
    import keras
    import numpy as np

    from keras_ssl.data.core import ImageSet

#: (train, test) labeled sets of the evaluation dataset.
Labeled = tuple["ImageSet", "ImageSet"]
#: Paths of skipped unreadable files that the log line and ``summary["data"]`` name.
SKIPPED_EXAMPLES = 10


def monitor_labels(cfg: ExperimentConfig, train: ImageSet) -> int:
    """Labeled images (outside the validation split) whose features vote in the kNN score."""
    return min(1000, len(train) - cfg.data.validation_images)


def knn_validation(cfg: ExperimentConfig, train: ImageSet, encoder: keras.Model) -> float:
    """kNN accuracy (k = ``eval.knn_k``, cosine) of the ``validation_images``
    validation-split images against ``monitor_labels`` labeled training images
    outside it (never the test set): the pretraining monitor's ``knn_val`` and
    ``summary["validation"]``, the same number for the same encoder."""
    from keras_ssl.evaluation.validation import validation_score

    return validation_score(encoder, train, validation_images=cfg.data.validation_images,
                            seed=cfg.seed, kind="knn", labels=monitor_labels(cfg, train),
                            knn_k=cfg.eval.knn_k)


def knn_monitor(cfg: ExperimentConfig, train: ImageSet) -> Callable[[keras.Model], dict]:
    """``encoder -> {"knn_val": acc}`` (:func:`knn_validation`); features are
    computed 1,000 images at a time."""
    return lambda encoder: {"knn_val": knn_validation(cfg, train, encoder)}


def _pretext_validation(cfg: ExperimentConfig, pretext, trainer, log: Callable):
    """The pretext monitor on ``data.validation_sequences``
    (:class:`keras_ssl.training.monitors.PretextValidation`): ``data.validation_pairs`` of
    their pairs, labeled as the training pairs are, drawn once with the run's seed."""
    from keras_ssl.data.sequences import load_sequences
    from keras_ssl.training.monitors import PretextValidation

    val = load_sequences(cfg.data, validation=True)
    index = pretext.validation_index(val)
    log(f"pretext monitor: {cfg.data.validation_pairs} of the {len(index)} pairs of the held-out "
        f"sequence(s) {', '.join(index.names)}, drawn once")
    return PretextValidation(trainer.method, pretext, index, batch_size=cfg.train.batch_size,
                             examples=cfg.data.validation_pairs, seed=cfg.seed)


def _load_labeled(cfg: ExperimentConfig) -> Labeled:
    """(train, test) of the evaluation dataset."""
    from keras_ssl.data import load_labeled
    from keras_ssl.data.core import eval_options

    return load_labeled(cfg.data.eval_dataset, cfg.data.image_size, cfg.data.channels,
                        cfg.data.tfds_data_dir, **eval_options(cfg.data))


def _image_shape(cfg: ExperimentConfig) -> tuple[int, int, int]:
    return (cfg.data.image_size, cfg.data.image_size, cfg.data.channels)


def _pretrain_images(cfg: ExperimentConfig, log: Callable):
    """The pretraining data and the summary's ``data``: uint8 images (the unreadable files
    left out, ``data.skip_unreadable``, logged in one line), or, for a sequence dataset
    (``data.dataset`` ``kitti_odometry`` / ``tum_rgbd``), the sequences' index
    (:class:`keras_ssl.data.sequences.SequenceData`; frames are decoded while training)."""
    from keras_ssl.data import load_pretrain
    from keras_ssl.data.sequences import SEQUENCE_DATASETS, load_sequences

    if cfg.data.dataset in SEQUENCE_DATASETS:
        data = load_sequences(cfg.data)
        log(f"{cfg.data.dataset}: {len(data.sequences)} sequence(s), {len(data)} frames under {cfg.data.path}")
        return data, {"sequences": [s.name for s in data.sequences],
                      "frames": [len(s) for s in data.sequences]}
    loaded = load_pretrain(cfg.data)
    skipped, examples = len(loaded.skipped), list(loaded.skipped[:SKIPPED_EXAMPLES])
    if skipped:
        more = f" and {skipped - len(examples)} more" if skipped > len(examples) else ""
        log(f"skipped {skipped} unreadable image file(s) under {cfg.data.path} "
            f"(data.skip_unreadable): {', '.join(examples)}{more}")
    return loaded.images, {"images": len(loaded), "skipped_unreadable": skipped,
                           "skipped_examples": examples}


def _pretrain(cfg: ExperimentConfig, run_dir: Path, images, *, progress: bool,
              log: Callable, strategy=None, restore_from: Optional[Path] = None,
              monitor_ok: bool = True) -> tuple[keras.Model, dict, Optional[Labeled]]:
    """Pretrain (or resume) on ``images`` (uint8 images, or sequences: :func:`_pretrain_images`)
    under ``run_dir``; saves ``encoder.keras``.
    ``strategy``, ``restore_from``: the Pretrainer's; ``monitor_ok``: False on a worker
    that is not the chief (the chief alone runs the kNN monitor).

    Returns (encoder, the pretraining summary, the labeled (train, test) sets
    when the kNN monitor loaded them, else None).
    """
    from keras_ssl import registry
    from keras_ssl.training.loop import Pretrainer
    from keras_ssl.training.monitors import combined

    pretext = registry.build("pretext", cfg.pretext, _image_shape(cfg))
    images = pretext.prepare(images)   # what the pretext samples: the images, or frame pairs
    pretext.save(run_dir)
    trainer = Pretrainer(cfg, run_dir, pretext, strategy=strategy, progress=progress,
                         num_images=len(images), restore_from=restore_from)
    what = "pairs" if hasattr(images, "pairs") else "images"
    log(f"pretraining {cfg.encoder.name} + {cfg.method.name} on {cfg.pretext.name} "
        f"({len(images)} {what}, {cfg.train.steps} steps of {cfg.train.batch_size}, "
        f"{trainer.strategy.num_replicas_in_sync} replica(s))")
    labeled, monitors = None, []
    if not monitor_ok:
        pass
    elif cfg.train.monitor_every and cfg.data.validation_images:
        labeled = _load_labeled(cfg)
        monitors.append(knn_monitor(cfg, labeled[0]))
    elif cfg.train.monitor_every:
        log("train.monitor_every is set but data.validation_images is 0: no kNN monitor")
    if monitor_ok and cfg.data.validation_sequences:
        if cfg.train.monitor_every:
            monitors.append(_pretext_validation(cfg, pretext, trainer, log))
        else:
            log("data.validation_sequences is set but train.monitor_every is 0: not monitored")
    summary = trainer.train(images, monitor=combined(monitors))
    if summary.get("resumed_finished"):
        # Evaluated or exported again: the pretraining facts are those of the run that trained.
        previous = previous_pretrain(run_dir)
        if previous:
            summary = {**previous, "resumed_finished": True}
    encoder = trainer.float32_encoder()   # float32 whatever train.precision
    with atomic_path(run_dir / "encoder.keras") as tmp:
        encoder.save(tmp)
    return encoder, summary, labeled


def _write_eval_summaries(run_dir: Path, step: int, md: str, rows: list[dict], split: str) -> None:
    """The results table and one scalar per (protocol, label count) in TensorBoard's
    ``eval`` run (``eval_validation`` for scores on the validation split)."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(run_dir / "tb" / ("eval" if split == "test" else "eval_validation")))
    with writer.as_default(step=step):
        tf.summary.text("results", md)
        for r in rows:
            tf.summary.scalar(f"{r['protocol']}/{r['labels']}_labels", r["mean"])
    writer.flush()


def provenance(cfg: ExperimentConfig, config_path: Optional[str], pretrain: dict) -> dict:
    """What results.json records of where its numbers came from: the resolved config's
    path and hash, the code version, the components' parameters, the pretraining's wall time."""
    from keras_ssl.provenance import code_version, config_sha256

    resolved = to_dict(cfg)
    return {"config_path": str(Path(config_path).resolve()) if config_path else None,
            "config_sha256": config_sha256(resolved), "code_version": code_version(),
            "seed": cfg.seed, "encoder": resolved["encoder"], "pretext": resolved["pretext"],
            "method": resolved["method"], "train": resolved["train"],
            "pretrain_seconds": pretrain.get("seconds")}


def _evaluate(cfg: ExperimentConfig, run_dir: Path, encoder: keras.Model, labeled: Optional[Labeled],
              *, progress: bool, log: Callable, origin: dict) -> dict:
    """Few-label evaluation of ``encoder``: writes ``results.json``/``.md`` (scored on the
    test set) or ``results_validation.json``/``.md`` (``eval.split: "validation"``) with
    ``origin`` as their ``provenance``, and the TensorBoard summaries; returns the
    summary's ``validation`` (when there is a validation split) and ``evaluate_seconds``."""
    from keras_ssl.encoders import build_encoder, input_transform_of
    from keras_ssl.evaluation.protocols import evaluate_encoder
    from keras_ssl.evaluation.results import write_results
    from keras_ssl.registry import run_label

    out = {}
    # The baselines' fresh encoders take the same images through the same input transform.
    transform = input_transform_of(encoder)
    train, test = labeled or _load_labeled(cfg)
    if cfg.data.validation_images:
        out["validation"] = {f"knn_{monitor_labels(cfg, train)}_labels": knn_validation(cfg, train, encoder)}
    results = evaluate_encoder(
        encoder, lambda: build_encoder(cfg.encoder, _image_shape(cfg), transform), cfg.eval, train, test,
        validation_images=cfg.data.validation_images, seed=cfg.seed,
        encoder_label=run_label(cfg.pretext.name, cfg.method.name), progress=progress,
        datasets={"dataset": cfg.data.dataset, "eval_dataset": cfg.data.eval_dataset})
    results["config"] = cfg.name
    results["pretrain"] = {"steps": cfg.train.steps, "batch_size": cfg.train.batch_size,
                           "encoder": cfg.encoder.name, "pretext": cfg.pretext.name,
                           "method": cfg.method.name}
    results["provenance"] = {**origin, "evaluate_seconds": results["seconds"]}
    split = cfg.eval.split
    md = write_results(results, run_dir, title=f"{cfg.name}: few-label {split} accuracy")
    out["evaluate_seconds"] = results["seconds"]
    _write_eval_summaries(run_dir, cfg.train.steps, md, results["rows"], split)
    log(md)
    if cfg.expected:
        out["expected_check"] = _check_expected(cfg, results, log)
    return out


def _check_expected(cfg: ExperimentConfig, results: dict, log: Callable) -> dict:
    """The run's results against its config's ``expected`` rows that this run measured
    (an evaluation narrowed by ``--set`` checks what it scored), logged; returns the
    summary's ``expected_check``: ``ok``, ``checked``, ``failures``, ``unmeasured``."""
    import dataclasses

    from keras_ssl.evaluation.expected import check_run, parse_expected

    expected = parse_expected(cfg.expected, "expected")
    if expected.split != cfg.eval.split:
        log(f"expected results are for the {expected.split} split; this evaluation scored the "
            f"{cfg.eval.split} split: not checked")
        return {"ok": None, "checked": 0, "failures": [], "unmeasured": len(expected.rows)}
    measured = {(r["protocol"], int(r["labels"])) for r in results["rows"]}
    rows = tuple(r for r in expected.rows if (r.protocol, r.labels) in measured)
    unmeasured = len(expected.rows) - len(rows)
    failures = check_run(dataclasses.replace(expected, rows=rows), results) if rows else []
    skipped = f"; {unmeasured} expected row(s) not measured by this evaluation" if unmeasured else ""
    if failures:
        log(f"DIFFERS from the expected results ({expected.source}){skipped}:\n  " + "\n  ".join(failures))
    elif rows:
        log(f"all {len(rows)} expected row(s) within tolerance ({expected.source}){skipped}")
    else:
        log(f"none of the expected rows was measured by this evaluation ({expected.source})")
    return {"ok": not failures if rows else None, "checked": len(rows), "failures": failures,
            "unmeasured": unmeasured}


def _export(cfg: ExperimentConfig, run_dir: Path, encoder: keras.Model, *, log: Callable) -> dict:
    """A new SavedModel version of ``encoder`` under ``run_dir/export``; returns the summary's ``export``."""
    from keras_ssl.export import export_encoder

    path = export_encoder(encoder, run_dir / "export", cfg.export.model_name or cfg.name,
                          config=to_dict(cfg), taps=cfg.export.taps)
    log(f"exported SavedModel: {path}")
    return {"export": str(path)}


def _load_encoder(run_dir: Path) -> keras.Model:
    import keras

    import keras_ssl.encoders  # noqa: F401  (registers the custom layers)
    return keras.models.load_model(run_dir / "encoder.keras")


def _run_worker(cfg: ExperimentConfig, run_dir: Path, strategy, me, *, log: Callable) -> dict:
    """The job of a worker that is not the chief: the same pretraining in step with the
    others, restored from the chief's checkpoints in ``run_dir``, its own checkpoints and
    logs in a temporary directory removed at the end; no evaluation, no export (the
    chief's). Returns its summary (written nowhere)."""
    import shutil
    import tempfile

    from keras_ssl.training.run_dir import check_run_dir

    check_run_dir(run_dir, cfg)
    scratch = Path(tempfile.mkdtemp(prefix=f"keras_ssl-{me.name}-"))
    try:
        images, data = _pretrain_images(cfg, log)
        _, pretrain, _ = _pretrain(cfg, scratch, images, progress=False, log=log, strategy=strategy,
                                   restore_from=run_dir / "checkpoints", monitor_ok=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log(f"{me.name}: pretraining done; the chief evaluates, exports and writes {run_dir}")
    return {"config": cfg.name, "run_dir": str(run_dir), "role": me.name, "data": data, "pretrain": pretrain}


def run(cfg: ExperimentConfig, run_dir: Path, *, progress: bool = True, evaluate: bool = True,
        export: bool = True, log: Callable = print, config_path: Optional[str] = None) -> dict:
    """The whole job; returns the summary (also written to ``summary.json``).
    ``config_path``: the file ``cfg`` was read from, recorded in results.json."""
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    # The strategy first: a multi-worker one must be made before any other TensorFlow op.
    from keras_ssl.training.strategy import make_strategy, multi_worker_role
    strategy = make_strategy(cfg.train)
    me = multi_worker_role(strategy)
    if evaluate or cfg.train.monitor_every:
        # Refused now, not after pretraining: the labeled set must fit the encoder's input.
        from keras_ssl.data.core import check_labeled
        check_labeled(cfg.data.eval_dataset, cfg.data.image_size, cfg.data.channels,
                      eval_path=cfg.data.eval_path)
    if not me.is_chief:
        return _run_worker(cfg, run_dir, strategy, me, log=log)
    prepare_run_dir(run_dir, cfg)
    summary = {"config": cfg.name, "run_dir": str(run_dir)}
    if me.task_type:
        summary["workers"] = me.num_workers
    images, summary["data"] = _pretrain_images(cfg, log)
    encoder, summary["pretrain"], labeled = _pretrain(cfg, run_dir, images, progress=progress, log=log,
                                                      strategy=strategy)
    if me.task_type:
        # Evaluated and exported by the chief alone, outside the cluster: the encoder as
        # saved, whose variables are plain ones, not the strategy's mirrored ones.
        encoder = _load_encoder(run_dir)
    if evaluate:
        origin = provenance(cfg, config_path, summary["pretrain"])
        summary.update(_evaluate(cfg, run_dir, encoder, labeled, progress=progress, log=log,
                                 origin=origin))
    if export and cfg.export.enabled:
        summary.update(_export(cfg, run_dir, encoder, log=log))
    summary["seconds"] = time.perf_counter() - t_start
    write_json_atomic(run_dir / "summary.json", summary, default=str)
    log(f"done in {summary['seconds']:.0f} s; run directory: {run_dir}")
    return summary
