"""Pretraining under a tf.distribute strategy: a custom loop, not ``fit``.

Why a custom loop: ``fit`` under MultiWorkerMirroredStrategy fails in Keras
3.15 (see README, Decisions), and memory-bank methods need control over what
crosses replicas. The loop runs ``steps_per_execution`` steps per
``tf.function`` call (the step itself XLA-compiled on a single device),
checkpoints every ``checkpoint_every`` steps, calls the method's
``before_steps`` hook on the host before each chunk of steps (a chunk ends where
``steps_before_hook`` says the next call is due), resumes from the latest
checkpoint, stops on a non-finite loss or a checkpoint it cannot write (disk
full, read-only: the last good one stays), and writes TensorBoard summaries.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import tensorflow as tf

from keras_ssl import registry
from keras_ssl.encoders import build_encoder, view_encoder
from keras_ssl.methods.base import DatasetFacts, HookContext
from keras_ssl.training.errors import (PEER_ERRORS, Interrupted, TrainingError, cannot_write, latest_on_disk,
                                      peer_lost)
from keras_ssl.training.optimizer import make_optimizer
from keras_ssl.training.preemption import ClusterStop
from keras_ssl.training.precision import dtype_policy, float32_copy, inner_optimizer, resolve_jit, wrap_optimizer
from keras_ssl.training.signals import StopRequests
from keras_ssl.training.strategy import make_strategy


# --------------------------------------------------------------------------
# Pieces of the loop
# --------------------------------------------------------------------------

def due(step: int, n: int, every: int, last: int) -> bool:
    """Whether the ``n`` steps that just ended at ``step`` crossed a multiple of
    ``every`` (steps run ``n`` at a time, so the multiple itself may be skipped),
    or ``step`` is the ``last`` step."""
    return step % every < n or step == last


def write_scalars(writer, step: int, values: dict) -> None:
    """One TensorBoard scalar per item of ``values`` at ``step``, tagged with its key."""
    with writer.as_default(step=step):
        for k, v in values.items():
            tf.summary.scalar(k, v)


class LogWindow:
    """The loss and metric sums of the steps since the last log write, and the
    training time they took (a monitor's time is left out: ``examples_per_s``
    counts training only)."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self._open(time.perf_counter())

    def _open(self, now: float) -> None:
        self.sums, self.steps, self.t_start = None, 0, now

    def add(self, sums: dict, n: int) -> None:
        """Add the per-replica-summed ``sums`` of ``n`` more steps."""
        self.sums = sums if self.sums is None else {k: self.sums[k] + sums[k] for k in self.sums}
        self.steps += n

    def leave_out(self, seconds: float) -> None:
        """Do not count ``seconds`` (spent outside training) in the rate."""
        self.t_start += seconds

    def close(self, learning_rate: float) -> dict:
        """Per-example means of the sums, ``examples_per_s`` and ``learning_rate``; opens the next window."""
        now = time.perf_counter()
        examples = self.steps * self.batch_size
        out = {k: v / examples for k, v in self.sums.items()}
        out["examples_per_s"] = examples / (now - self.t_start)
        out["learning_rate"] = learning_rate
        self._open(now)
        return out


def random_states(model: keras.Model) -> list:
    """The state variable of every ``keras.random.SeedGenerator`` that ``model``'s
    layers hold (Dropout, random augmentation layers), in layer order.

    ``tf.train.Checkpoint`` does not track them through the model: without them
    a resumed run would replay the dropout masks from the first step instead of
    drawing the ones the uninterrupted run draws next."""
    states, seen = [], set()
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for generator in getattr(layer, "_seed_generators", ()):
            if id(generator.state) not in seen:
                seen.add(id(generator.state))
                states.append(generator.state)
    return states


# --------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------

class Pretrainer:
    """Builds encoder + method + optimizer in the strategy's scope and trains.

    ``run_dir`` holds ``checkpoints/`` and ``tb/`` (TensorBoard). ``restore_from``: the
    checkpoint directory :meth:`restore` reads (default ``run_dir/checkpoints``; a
    worker that is not the chief writes under a temporary ``run_dir`` and restores
    from the chief's checkpoints). ``num_images``:
    the number of pretraining images, passed to the method builder as
    ``facts=DatasetFacts(num_images)`` (memory-bank methods need it) and checked
    against the images :meth:`train` gets. Call :meth:`train`; afterwards
    ``self.encoder`` is the trained encoder.
    """

    def __init__(self, cfg, run_dir: Path, pretext, strategy=None, progress: bool = True,
                 num_images: int | None = None, restore_from: Path | None = None):
        self.cfg, self.run_dir, self.pretext = cfg, Path(run_dir), pretext
        self.restore_from = Path(restore_from) if restore_from else self.run_dir / "checkpoints"
        self.facts = DatasetFacts(num_images=None if num_images is None else int(num_images))
        self.strategy = strategy or make_strategy(cfg.train)
        self.progress = progress
        t = cfg.train
        shape = (cfg.data.image_size, cfg.data.image_size, cfg.data.channels)
        with self.strategy.scope():
            keras.utils.set_random_seed(cfg.seed)
            with dtype_policy(t.precision):   # weights float32; layers compute in t.precision
                # The encoder of the data's images (with the pretext's input transform, if
                # any: what is evaluated and exported); the method trains it on the views.
                self.encoder = build_encoder(cfg.encoder, shape, pretext.input_transform)
                self.method = registry.build("method", cfg.method, view_encoder(self.encoder), pretext,
                                             facts=self.facts)
            self.optimizer, self.l2 = make_optimizer(t)
            self.optimizer = wrap_optimizer(self.optimizer, t.precision)
            self.optimizer.build(self.method.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        # Everything that decides the next step: weights (and memory banks), optimizer
        # slots, the step, and the random state of every SeedGenerator (checkpoint key
        # ``random``; a checkpoint written before it existed restores without it).
        self.ckpt = tf.train.Checkpoint(method=self.method, optimizer=self.optimizer, step=self.step,
                                        random=random_states(self.method))
        self.manager = tf.train.CheckpointManager(self.ckpt, str(self.run_dir / "checkpoints"),
                                                  max_to_keep=2)
        self._chunk_fns = {}

    # -- compiled pieces ---------------------------------------------------

    def _replica_fn(self):
        gb, l2, opt = self.cfg.train.batch_size, self.l2, self.optimizer

        multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)

        device = self.strategy.extended.worker_devices[0] if multi_worker else None

        def step(views, labels):
            out = self.method.replica_step(views, labels, opt, gb, l2)
            if multi_worker:
                # Summed here (strategy.reduce cannot take one worker's local value), as one
                # vector placed on this worker's device: a value computed from the labels
                # alone has no device, and a collective needs one.
                keys = sorted(out)
                with tf.device(device):
                    packed = tf.stack([tf.cast(out[k], tf.float32) for k in keys])
                packed = tf.distribute.get_replica_context().all_reduce("SUM", packed)
                out = {k: packed[i] for i, k in enumerate(keys)}
            return out

        single = self.strategy.num_replicas_in_sync == 1 and not multi_worker
        return tf.function(step, jit_compile=resolve_jit(self.cfg.train.jit_compile) and single)

    def _summed(self, per_replica):
        """The sum over replicas of the replica step's outputs (under MultiWorkerMirroredStrategy
        the step has summed them already: this worker's first local copy)."""
        strategy = self.strategy
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], per_replica)
        return strategy.reduce("SUM", per_replica, axis=None)

    def _chunk_fn(self, n: int):
        """tf.function running ``n`` steps from the distributed iterator."""
        if n in self._chunk_fns:
            return self._chunk_fns[n]
        replica = self._replica_fn()
        strategy = self.strategy

        @tf.function
        def chunk(iterator):
            views, labels = next(iterator)
            sums = self._summed(strategy.run(replica, args=(views, labels)))
            for _ in tf.range(n - 1):
                views, labels = next(iterator)
                out = self._summed(strategy.run(replica, args=(views, labels)))
                sums = {k: sums[k] + out[k] for k in sums}
            self.step.assign_add(n)
            return sums

        self._chunk_fns[n] = chunk
        return chunk

    # -- public ------------------------------------------------------------

    def restore(self) -> int:
        """Restore the latest checkpoint if any; returns the step reached."""
        if self.restore_from == Path(self.manager.directory):
            latest = self.manager.latest_checkpoint
        else:
            latest = tf.train.latest_checkpoint(str(self.restore_from))
        if latest:
            self.ckpt.restore(latest).assert_existing_objects_matched()
        return int(self.step.numpy())

    def train(self, images, monitor=None) -> dict:
        """Pretrain on ``images`` until ``train.steps``; returns a summary. ``images``: what
        the pretext's ``prepare`` made of the pretraining data (uint8 [N, H, W, C] images
        for a pretext on images; frame pairs for one on sequences); batches come from the
        pretext's ``batches``.

        ``monitor``: optional ``encoder -> {tag: float}`` (e.g. kNN accuracy on
        the validation split), called every ``train.monitor_every`` steps and
        at the end; its values go to TensorBoard and ``summary["monitor"]``.
        Every ``train.log_every`` steps the loss and metrics (means over the
        steps since the last write), ``examples_per_s`` and ``learning_rate``
        go to TensorBoard; the last such write is ``summary["final"]``.
        Before each chunk of steps the method's ``before_steps`` hook runs (chunks
        end where ``steps_before_hook`` says); the scalars it returns go to
        TensorBoard and ``summary["hooks"]`` (``{"step": ..., **scalars}``), and its
        time is left out of ``examples_per_s``.
        """
        t = self.cfg.train
        built_for = self.facts.num_images
        if built_for is not None and built_for != len(images):
            raise TrainingError(f"the method was built for {built_for} images (num_images), got {len(images)}")
        start = self.restore()
        summary = {"start_step": start, "steps": t.steps}
        if start >= t.steps:
            summary.update(resumed_finished=True, seconds=0.0)
            return summary
        if start == 0:
            # State estimated from the data (colorization's bin distribution); a resumed
            # run has it from the checkpoint.
            self.method.prepare(images, self.run_dir)
        ds = self.pretext.batches(images, t.batch_size, self.cfg.seed, start, t.steps,
                                  t.pipeline_threads)
        writer = tf.summary.create_file_writer(str(self.run_dir / "tb" / "pretrain"))
        if start == 0 and t.sample_examples:
            self._log_samples(writer, images)
        iterator = iter(self.strategy.experimental_distribute_dataset(ds))
        bar = _progress(t.steps, start, "pretrain", self.progress)
        window = LogWindow(t.batch_size)
        t0 = time.perf_counter()
        step, last = start, {}
        multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
        context = HookContext(images=images, seed=self.cfg.seed, encoder=self.float32_encoder,
                              strategy=self.strategy, optimizer=self.optimizer)
        with StopRequests() as stop:   # SIGINT / SIGTERM: finish the step, save, stop
            # Several workers stop together, at a step they agree on (preemption.py).
            together = ClusterStop(self.strategy, lambda: stop.signum, self.save,
                                   lambda: latest_on_disk(self.restore_from)) if multi_worker else None
            try:
                while step < t.steps:
                    n = min(t.steps_per_execution, t.steps - step)
                    limit = self.method.steps_before_hook(step)
                    if limit is not None:
                        n = min(n, max(1, int(limit)))
                    self._hook(step, context, writer, window, summary)
                    try:
                        sums = {k: float(v) for k, v in self._chunk_fn(n)(iterator).items()}
                    except tuple(getattr(tf.errors, e) for e in PEER_ERRORS) as e:
                        if not multi_worker:
                            raise
                        raise peer_lost(step, e, latest_on_disk(self.restore_from)) from None
                    step += n
                    loss = sums["loss"] / (n * t.batch_size)
                    self._check_finite(loss, step - n, step)
                    window.add(sums, n)
                    bar.update(n)
                    bar.set_postfix(loss=f"{loss:.3f}")
                    if due(step, n, t.log_every, t.steps):
                        last = window.close(float(inner_optimizer(self.optimizer).learning_rate))
                        write_scalars(writer, step, last)
                    if monitor is not None and t.monitor_every and due(step, n, t.monitor_every, t.steps):
                        summary.setdefault("monitor", []).append(self._monitor(monitor, step, writer, window))
                    if together is not None:
                        if due(step, n, t.checkpoint_every, t.steps):
                            self.save(step)
                        if step < t.steps:
                            together.check(step)
                        continue
                    if due(step, n, t.checkpoint_every, t.steps) or stop.signum is not None:
                        self.save(step)
                    if stop.signum is not None and step < t.steps:
                        raise Interrupted(step, stop.signum, self.manager.latest_checkpoint)
            finally:
                if together is not None:
                    together.close()
                bar.close()
                writer.flush()
        summary.update(seconds=time.perf_counter() - t0, final=last)
        return summary

    def float32_encoder(self) -> keras.Model:
        """The encoder as it leaves pretraining: ``self.encoder`` when it computes in
        float32, else a float32 copy of the same architecture holding its weights
        (what is evaluated, saved and exported, whatever ``train.precision``)."""
        shape = (self.cfg.data.image_size, self.cfg.data.image_size, self.cfg.data.channels)
        return float32_copy(self.encoder,
                            lambda: build_encoder(self.cfg.encoder, shape, self.pretext.input_transform))

    def save(self, step: int) -> None:
        """Checkpoint ``step``. A write that fails (disk full, no permission, read-only
        filesystem) raises :class:`~keras_ssl.training.errors.RunWriteError` naming the
        directory, the reason and the last good checkpoint, which it leaves intact:
        TensorFlow writes the files beside it and names the new one in the state file
        (replaced atomically) only once they are whole."""
        try:
            self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:
            where = self.manager.directory
            raise cannot_write(f"checkpoint to {where}", where, e, where) from None

    def _hook(self, step: int, context: HookContext, writer, window: LogWindow, summary: dict) -> None:
        """The method's ``before_steps`` at ``step``: its scalars to TensorBoard and
        ``summary["hooks"]``; its time left out of ``window``'s rate."""
        t_hook = time.perf_counter()
        values = self.method.before_steps(step, context)
        if values:
            values = {k: float(v) for k, v in values.items()}
            write_scalars(writer, step, values)
            summary.setdefault("hooks", []).append({"step": step, **values})
        window.leave_out(time.perf_counter() - t_hook)

    def _monitor(self, monitor, step: int, writer, window: LogWindow) -> dict:
        """``{"step": step, **monitor(encoder)}``, its values also written to
        TensorBoard; the time it takes is left out of ``window``'s rate."""
        t_mon = time.perf_counter()
        values = {k: float(v) for k, v in monitor(self.float32_encoder()).items()}
        write_scalars(writer, step, values)
        window.leave_out(time.perf_counter() - t_mon)
        return {"step": step, **values}

    def _check_finite(self, loss: float, first: int, step: int) -> None:
        """TrainingError when the mean loss of steps (first, step] is not finite."""
        if not math.isfinite(loss):
            raise TrainingError(
                f"loss became {loss} between steps {first} and {step}: lower "
                f"train.learning_rate (now {self.cfg.train.learning_rate}) or check the data; the last "
                f"good checkpoint is in {self.manager.directory}")

    def _log_samples(self, writer, images):
        """The first ``train.sample_examples`` pretext examples of step 0 (every view
        side by side, their labels as text), as TensorBoard images."""
        t = self.cfg.train
        n = min(t.sample_examples, t.batch_size)
        views, labels = next(iter(self.pretext.batches(images, t.batch_size, self.cfg.seed, 0, 1)))
        strips = tf.concat([views[v][:n] for v in self.pretext.view_names], axis=2)
        text = "\n\n".join(f"sample {i}: {self.pretext.describe(labels, i)}" for i in range(n))
        with writer.as_default(step=0):
            tf.summary.image("pretext_samples", strips, max_outputs=n,
                             description=f"views {' | '.join(self.pretext.view_names)}, left to right.\n\n{text}")
            tf.summary.text("pretext_sample_labels", text)


def _progress(total, initial, desc, enabled):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled,
                dynamic_ncols=True, mininterval=1.0)
