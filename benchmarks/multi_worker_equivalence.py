"""Two workers against one process: does the cluster train the model one process trains?

    python benchmarks/multi_worker_equivalence.py [--steps 100]
        [--configs configs/mnist_egomotion.json configs/mnist_sfa_m10.json configs/mnist_npid.json]

Per config (shortened to ``--steps``, the loss logged every step, no evaluation, no export):
one process twice (``python -m keras_ssl.train``: the noise floor, what two identical runs
differ by) and two workers on 127.0.0.1 started by ``python -m keras_ssl.cluster --workers 2``
(one CPU device each, the same global batch and seed). Prints a Markdown table: the largest
absolute difference of the loss over all steps and of the final encoder weights (and of the
memory bank, for a method that has one) between the cluster and the first process, beside
the same between the two processes. NPID runs with its linear head
(``method.head_batch_norm=false``): batch norm is not synchronised across workers (README,
Several machines), so a head with it is not the one-process model by design.
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
EXTRA = {"mnist_npid": ["method.head_batch_norm=false"]}


def train_args(config: str, run_dir: Path, steps: int) -> list[str]:
    sets = [f"train.steps={steps}", "train.log_every=1", "train.steps_per_execution=1",
            f"train.checkpoint_every={steps}", "train.monitor_every=0", "train.sample_examples=0",
            *EXTRA.get(Path(config).stem, [])]
    return ["--config", config, "--run-dir", str(run_dir), "--skip-eval", "--skip-export", "--no-progress",
            *[a for s in sets for a in ("--set", s)]]


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
            dirs = {k: Path(tmp) / f"{stem}_{k}" for k in ("one", "again", "two")}
            secs = {k: run([sys.executable, "-m", "keras_ssl.train", *train_args(config, dirs[k], args.steps)])
                    for k in ("one", "again")}
            secs["two"] = run([sys.executable, "-m", "keras_ssl.cluster", "--workers", "2", "--",
                               *train_args(config, dirs["two"], args.steps)])
            states = {k: state(d) for k, d in dirs.items()}
            floor, cluster = differences(states["one"], states["again"]), differences(states["one"], states["two"])
            rows.append((stem, floor, cluster, secs))
            print(f"{stem}: floor {floor}, cluster {cluster}", flush=True)
    print("| config | steps | max abs loss difference, 2 workers (1 process twice) | max abs weight "
          "difference at the end, 2 workers (1 process twice) | memory bank, 2 workers (1 process twice) | "
          "wall s: 1 process / 2 workers |\n|---|---:|---:|---:|---:|---:|")
    for stem, floor, cluster, secs in rows:
        bank = f"{cluster['bank']:.2e} ({floor['bank']:.2e})" if "bank" in cluster else "-"
        print(f"| {stem} | {cluster['steps']} | {cluster['loss']:.2e} ({floor['loss']:.2e}) | "
              f"{cluster['weights']:.2e} ({floor['weights']:.2e}) | {bank} | {secs['one']:.0f} / {secs['two']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
