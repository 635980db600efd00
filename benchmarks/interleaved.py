"""The command line the interleaved benchmarks share (several settings of one config, timed
in turn in one process, ``--rounds`` windows of ``--steps`` steps each after ``--warmup``).
Imports nothing heavy, so ``--help`` is instant."""
from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parser(doc: str) -> argparse.ArgumentParser:
    """``--config`` (the main job's by default), ``--rounds``, ``--steps``, ``--warmup``."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "mnist_egomotion.json"))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=300, help="timed steps per window")
    p.add_argument("--warmup", type=int, default=50)
    return p
