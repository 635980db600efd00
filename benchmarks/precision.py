"""float32 against mixed precision: training steps per second on this machine.

    python benchmarks/precision.py [--config configs/mnist_egomotion.json] [--rounds 4] [--steps 300]
        [--precisions float32 mixed_bfloat16]

One process, one trainer per precision (``train.precision``) plus a second
float32 trainer as a control, each with its own live pipeline and its own
fixed in-memory batch. Every round times each trainer once, end to end and
on the fixed batch, interleaved so that drift on a shared machine hits all
alike. Per trainer: the best and the median window, and the ratio of the
best to float32's; the two float32 trainers differ only by chance: their gap
is the noise floor a precision has to clear. Prints a Markdown table.
"""
from __future__ import annotations

import contextlib
import dataclasses
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import interleaved  # noqa: E402  (benchmarks/, beside this script)

CONTROL = "float32 (control)"


def markdown(rates: dict, batch: int, rounds: int, steps: int, config: str) -> str:
    """``rates``: {name: {"live": [examples/s per round], "fixed": [...]}} -> a table."""
    best = {n: {k: max(v) for k, v in r.items()} for n, r in rates.items()}
    lines = [f"| precision | pairs/s end to end (best) | median | ratio to float32 | "
             f"pairs/s fixed batch (best) | ratio to float32 |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in rates.items():
        lines.append(f"| {name} | {best[name]['live']:,.0f} | {statistics.median(r['live']):,.0f} | "
                     f"{best[name]['live'] / best['float32']['live']:.2f}x | {best[name]['fixed']:,.0f} | "
                     f"{best[name]['fixed'] / best['float32']['fixed']:.2f}x |")
    floor = ""
    if CONTROL in best:
        gap = abs(best[CONTROL]["live"] / best["float32"]["live"] - 1)
        floor = f" Noise floor (float32 twice, end to end): {gap:.3f}."
    lines += ["", f"{config}, batch {batch}: best of {rounds} interleaved windows of {steps} steps.{floor}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = interleaved.parser(__doc__)
    p.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    args = p.parse_args(argv)

    import tensorflow as tf

    from keras_ssl.config import load_config
    from keras_ssl.data.pipeline import pretext_batches
    from keras_ssl.training.bench import _rate, timed_setup

    base = load_config(args.config)
    t = base.train
    names = list(dict.fromkeys(["float32", *args.precisions])) + [CONTROL]
    with contextlib.ExitStack() as stack:
        iterators = {}
        for name in names:
            precision = "float32" if name == CONTROL else name
            cfg = dataclasses.replace(base, train=dataclasses.replace(t, precision=precision))
            trainer, pretext, images, _ = stack.enter_context(timed_setup(cfg))
            ds = pretext_batches(images, pretext, t.batch_size, cfg.seed, 0, 10 ** 9, t.pipeline_threads)
            dist = trainer.strategy.experimental_distribute_dataset
            fixed = tf.data.Dataset.from_tensors(next(iter(ds))).repeat()
            iterators[name] = (trainer, iter(dist(ds)), iter(dist(fixed)))
        rates = {n: {"live": [], "fixed": []} for n in names}
        for i in range(args.rounds):
            for name, (trainer, live, fixed) in iterators.items():
                rates[name]["live"].append(_rate(trainer, live, args.steps, args.warmup, 1, t.batch_size))
                rates[name]["fixed"].append(_rate(trainer, fixed, args.steps, args.warmup, 1, t.batch_size))
            print(f"round {i}: " + ", ".join(f"{n} {r['live'][-1]:,.0f}/{r['fixed'][-1]:,.0f}"
                                             for n, r in rates.items()), flush=True)
    print(markdown(rates, t.batch_size, args.rounds, args.steps, Path(args.config).name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
