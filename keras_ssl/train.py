"""Pretrain, evaluate with few labels, export: ``python -m keras_ssl.train``.

    python -m keras_ssl.train --config configs/mnist_egomotion.json
        [--run-dir runs/NAME] [--set train.steps=1000 ...] [--smoke]

Everything goes under the run directory (default ``runs/<config stem>``):
``config.json`` (resolved config), ``checkpoints/``, ``tb/`` (TensorBoard),
``encoder.keras``, ``results.json`` / ``results.md``, ``export/<name>/<v>/``
and ``summary.json`` (wall times). The same command after an interruption
resumes from the latest checkpoint. On a finished run, other evaluation or
export settings (``--set eval.seeds=[0,1,2]``) evaluate or export its encoder
again without pretraining; a different pretraining config is refused. A
write that fails (disk full, no permission, read-only filesystem) stops the job
with one line naming the path, the reason and the last good checkpoint, which
is left intact (exit code 2): the same command resumes once it is fixed.

On several workers (``TF_CONFIG`` set on each, README "Several machines"), the same
command runs on every one; a worker that loses another stops with exit code 75 and
a SIGTERM on any worker stops them all at one step, saved.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_ssl.cli import add_config_args, config_from_args
from keras_ssl.config import ConfigError
from keras_ssl.training.job import run
from keras_ssl.training.run_dir import default_run_dir


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_ssl.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--run-dir", help="run directory (default runs/<config stem>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--skip-eval", action="store_true", help="pretrain (and export) only")
    p.add_argument("--skip-export", action="store_true", help="do not export a SavedModel")
    args = p.parse_args(argv)
    cfg = config_from_args(args)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.config, args.smoke)
    import tensorflow as tf
    # Evaluation builds a fresh model per subset, and so a fresh tf.function:
    # TensorFlow's "retracing" warnings there are expected, not a user's concern.
    tf.get_logger().setLevel("ERROR")
    from keras_ssl.data import DataError
    from keras_ssl.training.errors import Interrupted, PeerLost, TrainingError, run_write_error
    try:
        run(cfg, run_dir, progress=not args.no_progress, evaluate=not args.skip_eval,
            export=not args.skip_export, config_path=args.config)
    except (ConfigError, DataError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:   # the run directory: not writable, not a directory, disk full
        print(f"error: {run_write_error(run_dir, e)}", file=sys.stderr)
        return 2
    except PeerLost as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except Interrupted as e:
        print(f"\nstopped by {e.signal_name} at step {e.step}, checkpoint saved ({e.checkpoint}): run "
              f"the same command again to resume from there", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume from the last checkpoint in "
              f"{run_dir / 'checkpoints'}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
