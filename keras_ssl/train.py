"""Pretrain, evaluate with few labels, export: ``python -m keras_ssl.train``.

    python -m keras_ssl.train --config configs/mnist_egomotion.json
        [--run-dir runs/NAME] [--set train.steps=1000 ...] [--smoke]

Everything goes under the run directory (default ``runs/<config stem>``):
``config.json`` (resolved config), ``checkpoints/``, ``tb/`` (TensorBoard),
``encoder.keras``, ``results.json`` / ``results.md``, ``export/<name>/<v>/``
and ``summary.json`` (wall times). The same command after an interruption
resumes from the latest checkpoint. On a finished run, other evaluation or
export settings (``--set eval.seeds=[0,1,2]``) evaluate or export its encoder
again without pretraining; a different pretraining config is refused.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from keras_ssl.cli import add_config_args, config_from_args
from keras_ssl.config import ConfigError, to_dict


def default_run_dir(config_path: str, smoke: bool) -> Path:
    return Path("runs") / (Path(config_path).stem + ("_smoke" if smoke else ""))


#: Config sections that do not change what the checkpoints hold: a run directory
#: may be run again with other values here (a finished run is then evaluated or
#: exported again without pretraining again).
AFTER_PRETRAINING = ("eval", "export", "description", "cost", "smoke")
#: Pretraining settings that change how the run is carried out, not what it
#: learns (the batches and the updates stay the same): they may differ too.
HOW_NOT_WHAT = ("train.pipeline_threads", "train.log_every", "train.checkpoint_every",
                "train.monitor_every", "train.sample_pairs")


def _pretraining_part(cfg_dict: dict) -> dict:
    part = {k: v for k, v in cfg_dict.items() if k not in AFTER_PRETRAINING}
    for dotted in HOW_NOT_WHAT:
        section, key = dotted.split(".")
        if isinstance(part.get(section), dict) and key in part[section]:
            part[section] = {k: v for k, v in part[section].items() if k != key}
    return part


def prepare_run_dir(run_dir: Path, cfg) -> None:
    """Create ``run_dir``; refuse to resume checkpoints pretrained with a different config.

    Only the pretraining part of the config must match (see ``AFTER_PRETRAINING`` and
    ``HOW_NOT_WHAT``):
    ``--set eval.seeds=[0]`` on a finished run re-evaluates its encoder.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.json"
    resolved = json.loads(json.dumps(to_dict(cfg)))
    if saved.is_file() and (run_dir / "checkpoints").is_dir():
        try:
            old = json.loads(saved.read_text())
        except json.JSONDecodeError:
            old = None
        if not isinstance(old, dict) or _pretraining_part(old) != _pretraining_part(resolved):
            before, now = _pretraining_part(old if isinstance(old, dict) else {}), _pretraining_part(resolved)
            changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            raise ConfigError(f"{run_dir} holds checkpoints of a run with a different pretraining "
                              f"config (differs in: {', '.join(changed) or 'unreadable'}; see {saved}); "
                              f"pass another --run-dir or remove that directory")
    saved.write_text(json.dumps(resolved, indent=2) + "\n")


def _previous_pretrain(run_dir: Path) -> dict:
    """The ``pretrain`` entry of the run directory's ``summary.json``, if a finished run wrote one."""
    try:
        pre = json.loads((run_dir / "summary.json").read_text()).get("pretrain")
    except (OSError, ValueError, AttributeError):
        return {}
    return pre if isinstance(pre, dict) and pre.get("final") else {}


def monitor_labels(cfg, train) -> int:
    """Labeled images (outside the validation split) whose features vote in the kNN score."""
    return min(1000, len(train) - cfg.data.validation_images)


def knn_monitor(cfg, train):
    """``encoder -> {"knn_val": acc}``: kNN accuracy (k = ``eval.knn_k``, cosine) of
    ``validation_images`` validation-split images against ``monitor_labels``
    labeled training images outside it (never the test set); features are
    computed 1,000 images at a time. Same numbers as ``summary["validation"]``."""
    from keras_ssl.evaluate import validation_score

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
    from keras_ssl.trainer import Pretrainer

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
        previous = _previous_pretrain(run_dir)
        if previous:
            summary["pretrain"] = {**previous, "resumed_finished": True}
    encoder = trainer.encoder
    encoder.save(run_dir / "encoder.keras")

    if evaluate:
        from keras_ssl.evaluate import evaluate_encoder, validation_score, write_results
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_ssl.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--run-dir", help="run directory (default runs/<config stem>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--skip-eval", action="store_true", help="pretrain (and export) only")
    p.add_argument("--skip-export", action="store_true", help="do not export a SavedModel")
    args = p.parse_args(argv)
    cfg = config_from_args(args)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.config, args.smoke)
    import tensorflow as tf
    # Evaluation builds a fresh model per subset, and so a fresh tf.function:
    # TensorFlow's "retracing" warnings there are expected, not a user's concern.
    tf.get_logger().setLevel("ERROR")
    from keras_ssl.data import DataError
    from keras_ssl.trainer import TrainingError
    try:
        run(cfg, run_dir, progress=not args.no_progress, evaluate=not args.skip_eval,
            export=not args.skip_export)
    except (ConfigError, DataError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume from the last checkpoint in "
              f"{run_dir / 'checkpoints'}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
