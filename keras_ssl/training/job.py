"""The whole job of ``python -m keras_ssl.train``: pretrain, evaluate with few
labels, export, all under one run directory (:mod:`keras_ssl.training.run_dir`).

The same call after an interruption resumes from the latest checkpoint. On a
finished run, other evaluation or export settings evaluate or export its
encoder again without pretraining; a different pretraining config is refused.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from keras_ssl.config import to_dict
from keras_ssl.training.run_dir import prepare_run_dir, previous_pretrain


def monitor_labels(cfg, train) -> int:
    """Labeled images (outside the validation split) whose features vote in the kNN score."""
    return min(1000, len(train) - cfg.data.validation_images)


def knn_monitor(cfg, train):
    """``encoder -> {"knn_val": acc}``: kNN accuracy (k = ``eval.knn_k``, cosine) of
    ``validation_images`` validation-split images against ``monitor_labels``
    labeled training images outside it (never the test set); features are
    computed 1,000 images at a time. Same numbers as ``summary["validation"]``."""
    from keras_ssl.evaluation.protocols import validation_score

    n_lab = monitor_labels(cfg, train)
    return lambda encoder: {"knn_val": validation_score(
        encoder, train, validation_images=cfg.data.validation_images, seed=cfg.seed,
        kind="knn", labels=n_lab, knn_k=cfg.eval.knn_k)}


def run(cfg, run_dir: Path, *, progress: bool = True, evaluate: bool = True,
        export: bool = True, log=print) -> dict:
    """The whole job; returns the summary (also written to ``summary.json``)."""
    import tensorflow as tf

    from keras_ssl import registry
    from keras_ssl.data import load_labeled, load_pretrain
    from keras_ssl.encoders import build_encoder
    from keras_ssl.training.loop import Pretrainer

    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    prepare_run_dir(run_dir, cfg)
    summary = {"config": cfg.name, "run_dir": str(run_dir)}
    shape = (cfg.data.image_size, cfg.data.image_size, cfg.data.channels)

    images = load_pretrain(cfg.data).images
    pretext = registry.build("pretext", cfg.pretext, shape)
    pretext.save(run_dir)
    trainer = Pretrainer(cfg, run_dir, pretext, progress=progress, num_images=len(images))
    log(f"pretraining {cfg.encoder.name} + {cfg.method.name} on {cfg.pretext.name} "
        f"({len(images)} images, {cfg.train.steps} steps of {cfg.train.batch_size}, "
        f"{trainer.strategy.num_replicas_in_sync} replica(s))")
    labeled, monitor = None, None
    if cfg.train.monitor_every and cfg.data.validation_images:
        labeled = load_labeled(cfg.data.eval_dataset, cfg.data.image_size, cfg.data.channels,
                               cfg.data.tfds_data_dir)
        monitor = knn_monitor(cfg, labeled[0])
    elif cfg.train.monitor_every:
        log("train.monitor_every is set but data.validation_images is 0: no kNN monitor")
    summary["pretrain"] = trainer.train(images, monitor=monitor)
    if summary["pretrain"].get("resumed_finished"):
        # Evaluated or exported again: the pretraining facts are those of the run that trained.
        previous = previous_pretrain(run_dir)
        if previous:
            summary["pretrain"] = {**previous, "resumed_finished": True}
    encoder = trainer.encoder
    encoder.save(run_dir / "encoder.keras")

    if evaluate:
        from keras_ssl.evaluation.protocols import evaluate_encoder, validation_score, write_results
        train, test = labeled or load_labeled(cfg.data.eval_dataset, cfg.data.image_size,
                                              cfg.data.channels, cfg.data.tfds_data_dir)
        if cfg.data.validation_images:
            n_lab = monitor_labels(cfg, train)
            summary["validation"] = {f"knn_{n_lab}_labels": validation_score(
                encoder, train, validation_images=cfg.data.validation_images, seed=cfg.seed,
                kind="knn", labels=n_lab, knn_k=cfg.eval.knn_k)}
        results = evaluate_encoder(
            encoder, lambda: build_encoder(cfg.encoder, shape), cfg.eval, train, test,
            validation_images=cfg.data.validation_images, seed=cfg.seed,
            method_name=cfg.pretext.name, progress=progress)
        results["config"] = cfg.name
        results["pretrain"] = {"steps": cfg.train.steps, "batch_size": cfg.train.batch_size,
                               "encoder": cfg.encoder.name, "method": cfg.method.name}
        md = write_results(results, run_dir, title=f"{cfg.name}: few-label test accuracy")
        summary["evaluate_seconds"] = results["seconds"]
        writer = tf.summary.create_file_writer(str(run_dir / "tb" / "eval"))
        with writer.as_default(step=cfg.train.steps):
            tf.summary.text("results", md)
            for r in results["rows"]:
                tf.summary.scalar(f"{r['protocol']}/{r['labels']}_labels", r["mean"])
        writer.flush()
        log(md)

    if export and cfg.export.enabled:
        from keras_ssl.export import export_encoder
        path = export_encoder(encoder, run_dir / "export", cfg.export.model_name or cfg.name,
                              config=to_dict(cfg), taps=cfg.export.taps)
        summary["export"] = str(path)
        log(f"exported SavedModel: {path}")

    summary["seconds"] = time.perf_counter() - t_start
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    log(f"done in {summary['seconds']:.0f} s; run directory: {run_dir}")
    return summary
