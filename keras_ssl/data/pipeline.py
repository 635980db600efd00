"""tf.data pipelines that make pretext batches on the fly.

The pipeline is a pure function of (seed, step): batch ``s`` draws its image
indices and its transforms from stateless random ops seeded with
``(seed, s)``. A resumed run therefore sees exactly the batches the
uninterrupted run would have seen, with no iterator state to checkpoint, and
the same global batch is produced whatever the number of replicas.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


def to_float(images_uint8: tf.Tensor) -> tf.Tensor:
    """uint8 -> float32 in [0, 1] (the contract of every encoder input)."""
    return tf.cast(images_uint8, tf.float32) * (1.0 / 255.0)


def batch_seed(seed: int, step) -> tf.Tensor:
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])


def pretext_batches(images: np.ndarray, pretext, batch_size: int, seed: int,
                    start_step: int, end_step: int, threads: int = 1, *,
                    intra_op_threads: int = 0) -> tf.data.Dataset:
    """Dataset of ``(views, labels)`` global batches for steps [start_step, end_step).

    ``images``: uint8 [N, H, W, C]. Images are drawn uniformly with
    replacement (as the egomotion protocol draws the images of its pairs);
    each batch is ``pretext(images, index, seed)``. ``threads``: the
    threads that make batches, a private tf.data pool of that size making as
    many batches at once, two or more ready ahead of the step. One is enough
    on a CPU (a batch of 125 examples takes about 1 ms for egomotion) and leaves the
    cores to the training step (``benchmarks/pipeline_settings.py``). 0:
    TensorFlow's shared pool with autotuned parallelism and prefetch, for
    machines where the step runs on accelerators. ``intra_op_threads``:
    tf.data's ``max_intra_op_parallelism`` (0: its default). None of these
    changes the batches.
    """
    n = int(images.shape[0])
    table = tf.constant(images)

    def make(step):
        s_idx, s_pre = tf.unstack(tf.random.experimental.stateless_split(batch_seed(seed, step), 2))
        idx = tf.random.stateless_uniform([batch_size], s_idx, 0, n, dtype=tf.int64)
        x = to_float(tf.gather(table, idx))
        return pretext(x, idx, tf.cast(s_pre, tf.int32))

    ds = tf.data.Dataset.range(start_step, end_step)
    ds = ds.map(make, num_parallel_calls=threads or tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    if threads:
        options.threading.private_threadpool_size = threads
    if intra_op_threads:
        options.threading.max_intra_op_parallelism = intra_op_threads
    return ds.with_options(options).prefetch(max(2, threads) if threads else tf.data.AUTOTUNE)
