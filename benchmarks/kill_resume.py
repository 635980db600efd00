"""kill -9 at a random moment of pretraining, then the same command: how much work is
lost, and does the run end where an uninterrupted run ends?

    python benchmarks/kill_resume.py [--config configs/mnist_egomotion.json] [--trials 4]
        [--steps 500] [--every 100] [--seed 0] [--out DIR]

Two uninterrupted runs of the config (shortened to ``--steps``, a checkpoint every
``--every``, no evaluation, no export) give the noise floor: the largest absolute
difference between their final encoder weights. Then, per trial, the same command
is killed with SIGKILL at a moment drawn uniformly between the first checkpoint and
the expected end (from the first run's pretraining time), started again, and run to
its end. Per trial: the step of the last checkpoint on disk at the kill, the step the
new process resumed from (must be the same), the work lost (the time from that
checkpoint's file to the kill, in steps at the killed run's own rate between its
checkpoints, at most ``--every`` by design), and the largest absolute difference
of the final weights from the uninterrupted run's. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
       "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def command(config: str, run_dir: Path, steps: int, every: int) -> list[str]:
    return [sys.executable, "-m", "keras_ssl.train", "--config", config, "--run-dir", str(run_dir),
            "--set", f"train.steps={steps}", "--set", f"train.checkpoint_every={every}",
            "--skip-eval", "--skip-export", "--no-progress"]


def checkpoints(run_dir: Path) -> list[tuple[int, float]]:
    """(step, mtime of its index file) of every complete checkpoint, in step order: the
    ones the state file names (TensorFlow renames it only once a checkpoint is whole)."""
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(str(run_dir / "checkpoints"))
    if state is None:
        return []
    out = []
    for path in state.all_model_checkpoint_paths:
        index = Path(path + ".index")
        if index.exists():
            out.append((int(path.rsplit("-", 1)[1]), index.stat().st_mtime))
    return sorted(out)


def weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    import keras_ssl.encoders  # noqa: F401  (registers the custom layers)
    return [w.numpy() for w in keras.models.load_model(run_dir / "encoder.keras").weights]


def max_abs_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


def run_to_end(cmd: list[str]) -> float:
    """Run ``cmd`` to its end (exit 0 or an error naming its stderr); its wall time."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return time.perf_counter() - t0


def trial(config: str, run_dir: Path, steps: int, every: int, delay: float, fallback_rate: float) -> dict:
    """Kill the command ``delay`` seconds after its first checkpoint, resume it, and
    say what was lost (in steps at the killed run's rate between its checkpoints, or at
    ``fallback_rate``, the uninterrupted run's, when it had written only one)."""
    proc = subprocess.Popen(command(config, run_dir, steps, every), cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not checkpoints(run_dir):
            if proc.poll() is not None:
                raise SystemExit(f"the run ended (exit {proc.returncode}) before its first checkpoint")
            time.sleep(0.05)
        first = time.time()
        while time.time() - first < delay and proc.poll() is None:
            time.sleep(0.01)
        if proc.poll() is not None:
            return {"killed": False}
        proc.send_signal(signal.SIGKILL)
        killed_at = time.time()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ckpts = checkpoints(run_dir)
    last_step, last_time = ckpts[-1]
    if len(ckpts) >= 2:
        rate = (ckpts[-1][0] - ckpts[0][0]) / max(ckpts[-1][1] - ckpts[0][1], 1e-9)
    else:
        rate = fallback_rate
    run_to_end(command(config, run_dir, steps, every))
    pretrain = json.loads((run_dir / "summary.json").read_text())["pretrain"]
    if last_step == steps:      # killed during the final writes, after the last step
        return {"killed": True, "checkpoint_at_kill": last_step, "after_last_step": True,
                "resumed_from": steps if pretrain.get("resumed_finished") else pretrain["start_step"],
                "seconds_lost": 0.0, "steps_lost": 0.0}
    return {"killed": True, "checkpoint_at_kill": last_step, "after_last_step": False,
            "resumed_from": pretrain["start_step"], "seconds_lost": killed_at - last_time,
            "steps_lost": (killed_at - last_time) * rate, "own_rate": len(ckpts) >= 2}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/mnist_egomotion.json")
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="draws the kill moments")
    p.add_argument("--out", help="keep the runs here (default: a temporary directory, removed)")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        straight = [out / "straight_a", out / "straight_b"]
        wall = [run_to_end(command(args.config, d, args.steps, args.every)) for d in straight]
        reference = weights(straight[0])
        floor = max_abs_diff(reference, weights(straight[1]))
        # Kill moments: between the first checkpoint and the last step, as long as the
        # uninterrupted run took from one to the other (its checkpoints' files).
        kept = checkpoints(straight[0])
        (s0, t0), (s1, t1) = kept[0], kept[-1]
        window = (t1 - t0) * (args.steps - args.every) / max(s1 - s0, 1)
        straight_rate = (s1 - s0) / max(t1 - t0, 1e-9)
        rows = []
        for i in range(args.trials):
            delay = rng.uniform(0, window)
            run_dir = out / f"killed_{i}"
            r = trial(args.config, run_dir, args.steps, args.every, delay, straight_rate)
            if r["killed"]:
                r["weights_diff"] = max_abs_diff(reference, weights(run_dir))
            rows.append({"trial": i, "delay": delay, **r})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"`python benchmarks/kill_resume.py --config {args.config} --trials {args.trials} --steps {args.steps} "
          f"--every {args.every} --seed {args.seed}`: {args.steps} steps, a checkpoint every {args.every}; "
          f"two uninterrupted runs ({wall[0]:.0f} s, {wall[1]:.0f} s) differ by at most {floor:g} "
          f"(the noise floor).\n")
    print("| trial | kill, s after the first checkpoint | last checkpoint on disk | resumed from | work lost "
          "(s) | work lost (steps) | max abs weight difference to the uninterrupted run |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if not r["killed"]:
            print(f"| {r['trial']} | {r['delay']:.1f} | (the run had finished) | | | | |")
            continue
        steps_lost = f"{r['steps_lost']:.0f}" + ("" if r.get("own_rate", True) else " (at the uninterrupted run's rate)")
        last = f"{r['checkpoint_at_kill']}" + (" (the last step: killed while writing the run files)"
                                                if r["after_last_step"] else "")
        print(f"| {r['trial']} | {r['delay']:.1f} | {last} | {r['resumed_from']} | "
              f"{r['seconds_lost']:.1f} | {steps_lost} | {r['weights_diff']:g} |")
    bad = [r for r in rows if r["killed"] and (r["resumed_from"] != r["checkpoint_at_kill"]
                                               or r["weights_diff"] > floor)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
