"""Two workers against one process: does the cluster train the model one process trains?

    python benchmarks/multi_worker_equivalence.py [--steps 100]
        [--configs configs/mnist_egomotion.json configs/mnist_sfa_m10.json configs/mnist_npid.json]

Per config (shortened to ``--steps``, the loss logged every step, no evaluation, no export):
one process twice (``python -m keras_ssl.train``: what two identical runs differ by), one
process with two mirrored replicas (the CPU split into two logical devices,
``train.strategy=mirrored``: the batch summed in two halves, as two workers sum it, without
a network), and two workers on 127.0.0.1 started by ``python -m keras_ssl.cluster
--workers 2`` (one CPU device each, the same global batch and seed). Prints a Markdown
table: the largest absolute difference of the loss over all steps and of the final encoder
weights (and of the memory bank, for a method that has one) of each against the first
process. A sum in two halves rounds differently in the last bit; training amplifies that
from step to step, so the two-replica process is the floor the cluster is measured against. Two settings are changed where the cluster is not the
one-process model by design (README, Several machines): egomotion's and SFA's heads run
without dropout (``method.dropout=0``: masks are drawn per replica), NPID with its linear
head (``method.head_batch_norm=false``: batch norm is not synchronised across workers).
With dropout on, 100 steps of egomotion differ by up to 0.33 in the loss (SFA: 1.2).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_CONFIGS = ["configs/mnist_egomotion.json", "configs/mnist_sfa_m10.json", "configs/mnist_npid.json"]
#: Settings a config gets here beyond the shortening, by config stem.
EXTRA = {"mnist_egomotion": ["method.dropout=0"], "mnist_sfa_m10": ["method.dropout=0"],
         "mnist_npid": ["method.head_batch_norm=false"]}


def train_args(config: str, run_dir: Path, steps: int) -> list[str]:
    sets = [f"train.steps={steps}", "train.log_every=1", "train.steps_per_execution=1",
            f"train.checkpoint_every={steps}", "train.monitor_every=0", "train.sample_examples=0",
            *EXTRA.get(Path(config).stem, [])]
    return ["--config", config, "--run-dir", str(run_dir), "--skip-eval", "--skip-export", "--no-progress",
            *[a for s in sets for a in ("--set", s)]]


#: ``python -m keras_ssl.train`` with the CPU split into two logical devices first.
MIRRORED = ("import sys, tensorflow as tf; cpu = tf.config.list_physical_devices('CPU')[0]; "
            "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2); "
            "from keras_ssl.train import main; sys.exit(main(sys.argv[1:]))")
MIRRORED_SETS = ["--set", "train.strategy=mirrored", "--set", 'train.devices=["/cpu:0", "/cpu:1"]']


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{(p.stdout + p.stderr)[-3000:]}")
    return time.perf_counter() - t0


def state(run_dir: Path) -> dict:
    """Loss per step, final encoder weights, memory bank (None without one) of a finished run."""
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_ssl.encoders  # noqa: F401  (registers the custom layers)
    from keras_ssl.report.curves import read_scalars

    steps, values = read_scalars(run_dir / "tb" / "pretrain")["loss"]
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir / "checkpoints")))
    bank_key = "method/bank/entries/.ATTRIBUTES/VARIABLE_VALUE"
    return {"loss": dict(zip(steps.tolist(), values.tolist())),
            "weights": [np.asarray(w) for w in keras.models.load_model(run_dir / "encoder.keras").weights],
            "bank": reader.get_tensor(bank_key) if reader.has_tensor(bank_key) else None}


def differences(a: dict, b: dict) -> dict:
    import numpy as np
    if sorted(a["loss"]) != sorted(b["loss"]):
        sys.exit("the runs logged different steps")
    out = {"steps": len(a["loss"]),
           "loss": max(abs(a["loss"][s] - b["loss"][s]) for s in a["loss"]),
           "weights": max(float(np.max(np.abs(x - y))) for x, y in zip(a["weights"], b["weights"], strict=True))}
    if a["bank"] is not None:
        out["bank"] = float(np.max(np.abs(a["bank"] - b["bank"])))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    p.add_argument("--steps", type=int, default=100)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="keras_ssl_equivalence_") as tmp:
        for config in args.configs:
            stem = Path(config).stem
            dirs = {k: Path(tmp) / f"{stem}_{k}" for k in ("one", "again", "mirrored", "two")}
            secs = {k: run([sys.executable, "-m", "keras_ssl.train", *train_args(config, dirs[k], args.steps)])
                    for k in ("one", "again")}
            secs["mirrored"] = run([sys.executable, "-c", MIRRORED, *train_args(config, dirs["mirrored"], args.steps),
                                    *MIRRORED_SETS])
            secs["two"] = run([sys.executable, "-m", "keras_ssl.cluster", "--workers", "2", "--",
                               *train_args(config, dirs["two"], args.steps)])
            states = {k: state(d) for k, d in dirs.items()}
            diffs = {k: differences(states["one"], states[k]) for k in ("again", "mirrored", "two")}
            diffs["two_vs_mirrored"] = differences(states["mirrored"], states["two"])
            rows.append((stem, diffs, secs))
            print(f"{stem}: {diffs}", flush=True)
    print("Largest absolute difference from one process with one replica, over every step's loss and the "
          "final weights: `1 process again` / `1 process, 2 mirrored replicas` / `2 workers`; last, "
          "`2 workers` against `1 process, 2 mirrored replicas`.\n")
    print("| config | steps | loss | encoder weights | memory bank | wall s: 1 process / 2 workers |\n"
          "|---|---:|---|---|---|---:|")
    for stem, d, secs in rows:
        cell = lambda key: (" / ".join(f"{d[k][key]:.1e}" for k in ("again", "mirrored", "two"))
                            + f"; {d['two_vs_mirrored'][key]:.1e}")
        bank = cell("bank") if "bank" in d["two"] else "-"
        print(f"| {stem} | {d['two']['steps']} | {cell('loss')} | {cell('weights')} | {bank} | "
              f"{secs['one']:.0f} / {secs['two']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
