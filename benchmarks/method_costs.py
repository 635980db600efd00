"""What each pretext method costs per example, in one run.

Runs ``python -m keras_ssl.bench`` for every config, ``--rounds`` times in
turn (a, b, c, a, b, c, ...) so all see the same machine conditions, and
prints a Markdown table: examples per second (median over rounds), encoder
passes per example, and the cost per example relative to the first config
(the median of the per-round ratios, which cancels drift between rounds).

    python benchmarks/method_costs.py [--configs configs/mnist_egomotion.json ...]
        [--rounds 3] [--steps 200] [--out docs/method_costs.md]

An "example" is one pretext sample: a pair for egomotion, SFA and relative
position, one image for rotation, NPID and the autoencoder, nine tiles for
jigsaw, an image plus its nine tiles for PIRL, two views for MoCo, one masked image for
the context encoder, one image for DeepCluster (its reclustering, outside the step, is
reported by ``keras_ssl.bench`` as ``hook_seconds``), every task's views for the multi-task
config.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from peer_ratio import ROOT, last_json

DEFAULT_CONFIGS = ["egomotion", "sfa_m10", "sfa_m100", "rotation", "jigsaw", "relative_position",
                   "autoencoder", "npid", "pirl", "moco", "inpainting", "multitask", "deepcluster",
                   "pirl_rotation_jigsaw"]


def cost_table(rounds: list[dict[str, dict]]) -> list[dict]:
    """Per config: median examples/s and median per-round cost relative to the first config."""
    names = list(rounds[0])
    base = names[0]
    out = []
    for name in names:
        rates = [r[name]["examples_per_s"] for r in rounds]
        rel = [r[base]["examples_per_s"] / r[name]["examples_per_s"] for r in rounds]
        out.append({"config": name, "views": rounds[0][name].get("views"),
                    "examples_per_s": statistics.median(rates),
                    "ms_per_example": 1000.0 / statistics.median(rates),
                    "relative_cost": statistics.median(rel),
                    "pipeline_ratio": statistics.median(r[name]["pipeline_ratio"] for r in rounds)})
    return out


def markdown(rows: list[dict], rounds: int, steps: int) -> str:
    lines = [f"| config | encoder passes / example | examples/s | ms / example | cost vs {rows[0]['config']} "
             f"| pipeline ratio |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['views']} | {r['examples_per_s']:,.0f} | {r['ms_per_example']:.3f} "
                     f"| {r['relative_cost']:.2f}x | {r['pipeline_ratio']:.2f} |")
    lines.append("")
    lines.append(f"Median of {rounds} round(s) of {steps} timed steps per config "
                 f"(`python benchmarks/method_costs.py --rounds {rounds} --steps {steps}`).")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=[f"configs/mnist_{c}.json" for c in DEFAULT_CONFIGS])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--set", action="append", default=[], help="passed to every keras_ssl.bench run")
    ap.add_argument("--out", help="also write the table to this Markdown file")
    args = ap.parse_args()
    missing = [c for c in args.configs if not (ROOT / c).is_file() and not Path(c).is_file()]
    if missing:
        sys.exit(f"config not found: {', '.join(missing)}")
    sets = [x for s in args.set for x in ("--set", s)]
    rounds = []
    for r in range(args.rounds):
        got = {}
        for c in args.configs:
            got[Path(c).stem] = last_json([sys.executable, "-m", "keras_ssl.bench", "--config", c,
                                           "--steps", str(args.steps), "--warmup", str(args.warmup),
                                           "--repeats", "1", *sets])
            print(f"round {r} {Path(c).stem}: {got[Path(c).stem]['examples_per_s']:,.0f} examples/s",
                  file=sys.stderr, flush=True)
        rounds.append(got)
    md = markdown(cost_table(rounds), args.rounds, args.steps)
    print(md, end="")
    if args.out:
        Path(args.out).write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
