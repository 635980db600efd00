"""Pretraining throughput: ``python -m keras_ssl.bench --config CFG``.

Prints one JSON line: ``examples_per_s`` (end to end: images drawn and pretext
views made on the fly by the tf.data pipeline, then the train step) and
``examples_per_s_synthetic`` (the same compiled step fed one fixed in-memory
batch, so no pipeline cost), with their ratio; ``pipeline_alone_per_s`` and
``pipeline_cpu_ms_per_step`` (the pipeline iterated with no training step:
its rate, and the CPU time of all threads per batch, which is what it takes
from the step on a small machine); ``views``, the encoder passes per example
(the pretext's views: 1 for rotation, 2 for egomotion, 5 for PIRL's image and
4 tiles). Each rate is the best of ``--repeats`` timed windows of ``--steps``
steps after ``--warmup`` steps.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time

import tensorflow as tf

from keras_ssl import registry
from keras_ssl.cli import add_config_args, config_from_args
from keras_ssl.methods.base import HookContext
from keras_ssl.training.loop import Pretrainer


def _rate(trainer, iterator, steps, warmup, repeats, batch):
    spe = trainer.cfg.train.steps_per_execution
    chunk = trainer._chunk_fn(spe)
    for _ in range(max(1, warmup // spe)):
        float(chunk(iterator)["loss"])
    best = 0.0
    for _ in range(repeats):
        n = max(1, steps // spe)
        t0 = time.perf_counter()
        for _ in range(n):
            out = chunk(iterator)
        float(out["loss"])
        best = max(best, n * spe * batch / (time.perf_counter() - t0))
    return best


def _pipeline_alone(ds, steps, batch):
    """(examples/s, CPU ms per batch) of making batches with no training step beside it."""
    import resource

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    it = iter(ds)
    for _ in range(10):
        next(it)
    c0, t0 = cpu(), time.perf_counter()
    for _ in range(steps):
        next(it)
    wall, used = time.perf_counter() - t0, cpu() - c0
    return steps * batch / wall, 1000.0 * used / steps


@contextlib.contextmanager
def timed_setup(cfg):
    """``(trainer, pretext, data, hook_seconds)`` to time ``cfg``'s training step with,
    prepared as a fresh run is (:meth:`Pretrainer.train`): the pretext's ``prepare`` of
    the pretraining data (images, or the frame pairs of sequences), the method's
    ``prepare`` and its ``before_steps`` at step 0 (DeepCluster's first clustering; its
    seconds, ``hook_seconds``, left out of the rates as the trainer leaves them out).
    The trainer's scratch directory is removed afterwards."""
    from keras_ssl.training.job import _image_shape, _pretrain_images

    pretext = registry.build("pretext", cfg.pretext, _image_shape(cfg))
    data = pretext.prepare(_pretrain_images(cfg, lambda _: None)[0])
    tmp = tempfile.mkdtemp(prefix="keras_ssl_bench_")
    try:
        trainer = Pretrainer(cfg, tmp, pretext, progress=False, num_images=len(data))
        trainer.method.prepare(data, None)
        t0 = time.perf_counter()
        trainer.method.before_steps(0, HookContext(images=data, seed=cfg.seed, encoder=trainer.float32_encoder,
                                                   strategy=trainer.strategy, optimizer=trainer.optimizer))
        yield trainer, pretext, data, time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(cfg, steps: int, warmup: int, repeats: int) -> dict:
    t = cfg.train
    with timed_setup(cfg) as (trainer, pretext, data, hook_seconds):
        ds = pretext.batches(data, t.batch_size, cfg.seed, 0, 10 ** 9, t.pipeline_threads)
        live = iter(trainer.strategy.experimental_distribute_dataset(ds))
        fixed = next(iter(ds))
        synth = tf.data.Dataset.from_tensors(fixed).repeat()
        synth_it = iter(trainer.strategy.experimental_distribute_dataset(synth))
        e2e = _rate(trainer, live, steps, warmup, repeats, t.batch_size)
        syn = _rate(trainer, synth_it, steps, warmup, repeats, t.batch_size)
        alone, cpu_ms = _pipeline_alone(ds, steps, t.batch_size)
    return {"config": cfg.name, "encoder": cfg.encoder.name, "pretext": cfg.pretext.name,
            "method": cfg.method.name, "batch": t.batch_size, "views": len(pretext.view_names),
            "steps_per_execution": t.steps_per_execution, "jit_compile": t.jit_compile, "precision": t.precision,
            "replicas": trainer.strategy.num_replicas_in_sync, "timed_steps": steps,
            "repeats": repeats, "examples_per_s": round(e2e, 1), "examples_per_s_synthetic": round(syn, 1),
            "pipeline_ratio": round(e2e / syn, 3), "pipeline_alone_per_s": round(alone, 1),
            "pipeline_cpu_ms_per_step": round(cpu_ms, 3), "hook_seconds": round(hook_seconds, 3),
            "tensorflow": tf.__version__}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_ssl.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--steps", type=int, default=400, help="timed steps per window")
    p.add_argument("--warmup", type=int, default=100, help="untimed steps first (compilation)")
    p.add_argument("--repeats", type=int, default=3, help="timed windows; the best is reported")
    args = p.parse_args(argv)
    cfg = config_from_args(args)
    print(json.dumps(run(cfg, args.steps, args.warmup, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
