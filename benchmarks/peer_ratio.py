"""keras_ssl's pretraining throughput against the PyTorch peer, in one run.

Absolute speeds drift on a shared machine; this alternates the two programs
``--rounds`` times (peer, ours, peer, ours, ...) so both see the same
conditions, and reports each round and the ratio of medians.

    pip install torch==2.13.0            # CPU build; benchmark only, not a dependency
    python benchmarks/peer_ratio.py [--peer ../shared/peers/torch_egomotion.py]
        [--config configs/mnist_egomotion.json] [--rounds 3] [--steps 400] [--set K=V ...]
        [--variant K=V ...]

Both sides: the thesis's BCNN siamese network, batch 125, SGD momentum 0.9
with weight decay, pairs generated on the fly from MNIST.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def last_json(cmd: list[str]) -> dict:
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", default=str(ROOT.parent / "shared" / "peers" / "torch_egomotion.py"))
    ap.add_argument("--config", default="configs/mnist_egomotion.json")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--set", action="append", default=[], help="passed to keras_ssl.bench")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                    help="also time ours with these overrides, every round right after the config's "
                         "(e.g. --variant train.precision=mixed_bfloat16)")
    args = ap.parse_args()
    if not Path(args.peer).is_file():
        sys.exit(f"peer script not found: {args.peer}")
    peer, ours, peer_syn, ours_syn = [], [], [], []
    var, var_syn = [], []
    for r in range(args.rounds):
        p = last_json([sys.executable, args.peer, "--steps", str(args.steps), "--batch", "125"])
        ps = last_json([sys.executable, args.peer, "--steps", str(args.steps), "--batch", "125", "--synthetic"])
        sets = [x for s in args.set for x in ("--set", s)]
        o = last_json([sys.executable, "-m", "keras_ssl.bench", "--config", args.config,
                       "--steps", str(args.steps), "--repeats", "1", *sets])
        peer.append(p["pairs_per_s"]); peer_syn.append(ps["pairs_per_s"])
        ours.append(o["examples_per_s"]); ours_syn.append(o["examples_per_s_synthetic"])
        line = {"round": r, "peer_pairs_per_s": p["pairs_per_s"],
                "peer_synthetic": ps["pairs_per_s"], "ours_pairs_per_s": o["examples_per_s"],
                "ours_synthetic": o["examples_per_s_synthetic"]}
        if args.variant:
            v = last_json([sys.executable, "-m", "keras_ssl.bench", "--config", args.config,
                           "--steps", str(args.steps), "--repeats", "1", *sets,
                           *[x for s in args.variant for x in ("--set", s)]])
            var.append(v["examples_per_s"]); var_syn.append(v["examples_per_s_synthetic"])
            line.update(variant_pairs_per_s=v["examples_per_s"], variant_synthetic=v["examples_per_s_synthetic"])
        print(json.dumps(line), flush=True)
    med = statistics.median
    summary = {"summary": True, "rounds": args.rounds, "steps": args.steps,
               "peer_pairs_per_s": med(peer), "ours_pairs_per_s": med(ours),
               "ratio_end_to_end": round(med(ours) / med(peer), 3),
               "ratio_synthetic": round(med(ours_syn) / med(peer_syn), 3),
               "ours_pipeline_ratio": round(med(ours) / med(ours_syn), 3)}
    if args.variant:
        summary.update(variant=args.variant, variant_pairs_per_s=med(var),
                       variant_ratio_end_to_end=round(med(var) / med(peer), 3),
                       variant_ratio_synthetic=round(med(var_syn) / med(peer_syn), 3))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
