"""KerasTuner sweeps, coarse to fine: ``python -m keras_ssl.tune``.

    python -m keras_ssl.tune --config configs/mnist_egomotion_tune.json
        [--run-dir runs/NAME] [--smoke] [--no-progress]
        [--chief | --worker ID] [--oracle-address HOST:PORT]

The tune config (see :mod:`keras_ssl.tuning.config` and docs/tuning.md) names
a base experiment config, a search space over its dotted keys, an objective
computed on the validation split (never the test set) and the stages. Each
stage is one KerasTuner search; stages after the first search the space
narrowed around the previous stage's best trials (log space for log keys, the
other keys pinned with ``hp.Fixed``, ``tune_new_entries=False``).

Every trial is a normal keras_ssl run (:func:`keras_ssl.training.job.run`, without
the few-label test-set evaluation and without export) in its own directory.
Layout of the tune run directory::

    tune_config.json           resolved tune config (a rerun must match it)
    hparams/                   TensorBoard HParams experiment (all stages)
    <stage>/keras_tuner/       KerasTuner project (oracle state, trial.json)
    <stage>/trial_<id>/        the trial's run: config.json, tb/, encoder.keras,
                               summary.json, trial_result.json
    <stage>/trials.md, .csv    ranked table of the stage's trials
    best_config.json           base config + the best values (runnable as is)
    summary.md, summary.json   both tables, the best trial, wall time

The same command after an interruption resumes: finished trials are skipped
(KerasTuner reloads its project, ``overwrite=False``) and an interrupted trial
is run again, resuming from its last checkpoint.

Distributed tuning (KerasTuner's chief/worker mode): one process started with
``--chief`` serves the oracle, processes started with ``--worker ID`` run
trials; all take the same ``--config``, ``--run-dir`` (a shared directory)
and ``--oracle-address``. Stage ``i`` is served on port ``PORT + i``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from keras_ssl.config import ConfigError
from keras_ssl.training.run_dir import default_run_dir
from keras_ssl.tuning.distributed import Distributed, parse_oracle_address
from keras_ssl.tuning.sweep import run_sweep

# This module's docstring is the command's --help text (the usage, layout and
# modes above); main() is the command: flags -> run_sweep, errors -> exit codes
# (0 done, 2 a bad config or flag, 130 interrupted: rerun to resume).


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m keras_ssl.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="tune config (JSON), e.g. configs/mnist_egomotion_tune.json")
    p.add_argument("--run-dir", help="tune run directory (default runs/<config stem>[_smoke])")
    p.add_argument("--smoke", action="store_true",
                   help="tiny data, few trials and steps: the experiment's and each stage's smoke settings")
    p.add_argument("--no-progress", action="store_true", help="no per-trial progress bars")
    role = p.add_mutually_exclusive_group()
    role.add_argument("--chief", action="store_true",
                      help="distributed tuning: serve the oracle (runs no trials)")
    role.add_argument("--worker", metavar="ID", help="distributed tuning: run trials as worker ID")
    p.add_argument("--oracle-address", metavar="HOST:PORT",
                   help="the chief's address; stage i uses PORT+i (with --chief / --worker)")
    return p.parse_args(argv)


def distributed_from_args(args: argparse.Namespace) -> Optional[Distributed]:
    """This process's chief/worker role from the flags (None: one process); ConfigError
    for a flag missing its partner or a worker id KerasTuner would misread."""
    if args.chief or args.worker:
        if not args.oracle_address:
            raise ConfigError("--chief / --worker need --oracle-address HOST:PORT")
        if args.worker and "chief" in args.worker:
            raise ConfigError(f"--worker ID must not contain 'chief' (KerasTuner would take "
                              f"it for the chief), got {args.worker!r}")
        host, port = parse_oracle_address(args.oracle_address)
        return Distributed("chief" if args.chief else args.worker, host, port)
    if args.oracle_address:
        raise ConfigError("--oracle-address needs --chief or --worker ID")
    return None


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    import tensorflow as tf
    # Every trial re-traces the evaluation's tf.functions: TensorFlow's retracing
    # warnings say nothing a user acts on here.
    tf.get_logger().setLevel("ERROR")
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.config, args.smoke)
    try:
        run_sweep(args.config, run_dir, smoke=args.smoke, progress=not args.no_progress,
                  distributed=distributed_from_args(args))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:   # the sweep directory: not writable, not a directory, disk full
        print(f"error: cannot write {e.filename or run_dir}: {e.strerror or e}; the finished trials "
              f"are kept: fix that and run the same command to resume the sweep in {run_dir}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume the sweep in {run_dir}",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
