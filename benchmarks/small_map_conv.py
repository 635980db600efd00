"""The BCNN's conv2 as a convolution or as one matmul per group, interleaved in one run.

    python benchmarks/small_map_conv.py [--config configs/mnist_egomotion.json] [--rounds 4] [--steps 300]

conv2 is a 5x5 "same" convolution on a 2x2 map: ``GroupedConv2D`` computes such a
convolution (h * w <= kh * kw) as a matmul with the kernel laid out as the dense
matrix of the convolution (``keras_ssl.encoders.layers.small_map_conv``). This times
both ways, each traced with ``GroupedConv2D.small_map_matmul`` set accordingly and the
convolution twice (its two trainers differ only by chance: the noise floor), on

- the pretraining step of ``--config`` (one fixed in-memory batch, so no pipeline),
- the evaluation's from-scratch training (encoder + the thesis head on 125 labeled images,
  one ``evaluation.classifier.train_classifier`` call of ``--scratch-steps`` steps timed
  whole, its tracing included, as the protocol ``scratch`` makes it for each subset),

and prints a Markdown table of steps/s per setting (best and median window) with the
ratio of each to the convolution.
"""
from __future__ import annotations

import contextlib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import interleaved  # noqa: E402  (benchmarks/, beside this script)

SETTINGS = {"convolution": False, "matmul": True, "convolution (control)": False}


def main(argv=None) -> int:
    p = interleaved.parser(__doc__)
    p.add_argument("--scratch-steps", type=int, default=1000, help="steps of one timed scratch training")
    args = p.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_ssl import registry
    from keras_ssl.config import load_config
    from keras_ssl.data.pipeline import pretext_batches
    from keras_ssl.encoders.layers import GroupedConv2D
    from keras_ssl.evaluation import classifier
    from keras_ssl.training.bench import _rate, timed_setup
    from keras_ssl.training.job import _image_shape

    cfg = load_config(args.config)
    t, e = cfg.train, cfg.eval
    rng = np.random.default_rng(0)
    x = rng.random((1000, *_image_shape(cfg)), dtype=np.float32)
    y = rng.integers(0, 10, 1000)

    def scratch_loop():
        """The scratch protocol's model (fresh encoder + thesis head), one window per call."""
        enc = registry.build("encoder", cfg.encoder, _image_shape(cfg))
        head = classifier.mlp_head(enc.output.shape[-1], e.head_hidden, e.head_dropout, num_classes=10)
        x_in = keras.Input(enc.input.shape[1:])
        model = keras.Model(x_in, head(enc(x_in)))
        def run(matmul: bool, steps: int) -> float:
            GroupedConv2D.small_map_matmul = matmul      # each call traces its own loop
            t0 = time.perf_counter()
            classifier.train_classifier(model, x, y, steps, e.head_batch_size, e.head_learning_rate,
                                        e.head_momentum, e.head_weight_decay, 0)
            return steps / (time.perf_counter() - t0)
        return run

    with contextlib.ExitStack() as stack:
        runs = {}
        for name, matmul in SETTINGS.items():
            GroupedConv2D.small_map_matmul = matmul          # read when the graphs are traced
            trainer, pretext, images, _ = stack.enter_context(timed_setup(cfg))
            ds = pretext_batches(images, pretext, t.batch_size, cfg.seed, 0, 10 ** 9, t.pipeline_threads)
            fixed = iter(trainer.strategy.experimental_distribute_dataset(
                tf.data.Dataset.from_tensors(next(iter(ds))).repeat()))
            _rate(trainer, fixed, t.steps_per_execution, args.warmup, 1, t.batch_size)   # traced now
            loop = scratch_loop()
            loop(matmul, 20)                                                          # warm
            runs[name] = (trainer, fixed, loop)
        GroupedConv2D.small_map_matmul = True
        rates = {n: {"pretrain": [], "scratch": []} for n in runs}
        for i in range(args.rounds):
            for name, (trainer, fixed, loop) in runs.items():
                rates[name]["pretrain"].append(
                    _rate(trainer, fixed, args.steps, args.warmup, 1, t.batch_size) / t.batch_size)
                rates[name]["scratch"].append(loop(SETTINGS[name], args.scratch_steps))
            print(f"round {i}: " + ", ".join(f"{n} {r['pretrain'][-1]:.1f}/{r['scratch'][-1]:.1f}"
                                             for n, r in rates.items()), flush=True)
    base = {k: max(v) for k, v in rates["convolution"].items()}
    print("| conv2 computed as | pretraining steps/s (best) | median | ratio | "
          "scratch steps/s (best) | median | ratio |\n|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rates.items():
        cells = [f"{max(r[k]):.1f} | {statistics.median(r[k]):.1f} | {max(r[k]) / base[k]:.2f}x"
                 for k in ("pretrain", "scratch")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\n{Path(args.config).name}: pretraining batch {t.batch_size} ({t.precision}), scratch batch "
          f"{e.head_batch_size} (float32); best of {args.rounds} interleaved windows of {args.steps} steps.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
