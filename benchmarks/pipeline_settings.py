"""Does a tf.data setting make the input pipeline cost the training step less?

    python benchmarks/pipeline_settings.py [--config configs/mnist_egomotion.json] [--rounds 4] [--steps 300]

One process, one compiled training step, several live pipelines: the
config's settings (``train.pipeline_threads``), alternatives (tf.data's
autotuned shared pool, more threads, no intra-op parallelism inside the
pipeline) and, as a control, the config's settings a second time. Every round times each pipeline
once (interleaved, so drift on a shared machine hits all of them alike) and
the same step fed one fixed in-memory batch; per pipeline the best window
counts, reported as a ratio to the fixed batch (the ``pipeline_ratio`` of
``keras_ssl.bench``). The config's two pipelines differ only by chance: their
gap is the noise floor a setting has to clear. Prints a Markdown table.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import interleaved  # noqa: E402  (benchmarks/, beside this script)


#: name -> keyword settings of keras_ssl.data.pipeline.pretext_batches ({} = the config's)
SETTINGS = {
    "config (train.pipeline_threads)": {},
    "config (control)": {},
    "autotuned, shared pool (pipeline_threads 0)": {"threads": 0},
    "2 threads": {"threads": 2},
    "1 thread, intra-op 1": {"threads": 1, "intra_op_threads": 1},
    "autotuned, intra-op 1": {"threads": 0, "intra_op_threads": 1},
}


def best_ratios(rounds: list[dict]) -> dict:
    """{setting: (best examples/s, best / best fixed-batch rate)} over rounds of {name: rate}."""
    best = {}
    for r in rounds:
        for name, rate in r.items():
            best[name] = max(best.get(name, 0.0), rate)
    fixed = best.pop("fixed batch")
    return {name: (rate, rate / fixed) for name, rate in best.items()}


def markdown(ratios: dict, fixed: float, rounds: int, steps: int) -> str:
    lines = ["| tf.data settings | examples/s (best window) | ratio to the fixed batch |", "|---|---:|---:|"]
    lines += [f"| {name} | {rate:,.0f} | {ratio:.3f} |" for name, (rate, ratio) in ratios.items()]
    lines.append(f"| one fixed in-memory batch | {fixed:,.0f} | 1.000 |")
    control = [ratio for name, (_, ratio) in ratios.items() if name.startswith("config")]
    lines += ["", f"Best of {rounds} interleaved windows of {steps} steps; noise floor (the config's "
                  f"pipeline twice): {max(control) - min(control):.3f}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = interleaved.parser(__doc__)
    args = p.parse_args(argv)

    import tensorflow as tf

    from keras_ssl.training.bench import _rate, timed_setup
    from keras_ssl.config import load_config
    from keras_ssl.data.pipeline import pretext_batches

    cfg = load_config(args.config)
    t = cfg.train
    with timed_setup(cfg) as (trainer, pretext, images, _):
        dist = trainer.strategy.experimental_distribute_dataset

        def batches(**kw):
            kw.setdefault("threads", t.pipeline_threads)
            return pretext_batches(images, pretext, t.batch_size, cfg.seed, 0, 10 ** 9, **kw)

        iterators = {name: iter(dist(batches(**kw))) for name, kw in SETTINGS.items()}
        fixed = next(iter(batches()))
        iterators["fixed batch"] = iter(dist(tf.data.Dataset.from_tensors(fixed).repeat()))
        rounds = []
        for i in range(args.rounds):
            rounds.append({name: _rate(trainer, it, args.steps, args.warmup, 1, t.batch_size)
                           for name, it in iterators.items()})
            print(f"round {i}: " + ", ".join(f"{k} {v:,.0f}" for k, v in rounds[-1].items()), flush=True)
    fixed_best = max(r["fixed batch"] for r in rounds)
    print(markdown(best_ratios(rounds), fixed_best, args.rounds, args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
