"""``python -m keras_ssl.report RUN... [--out DIR]``: README-ready tables, plots and
TensorBoard summaries of finished runs.

    python -m keras_ssl.report runs/mnist_egomotion runs/mnist_rotation --out report/

Under ``--out`` (default ``report/``): ``tables.md`` (the combined table of every
run for one protocol per scored split, baselines and the thesis's rows beside, then
each run's own table), ``combined/<split>/comparison.{md,csv,png}`` (what
``python -m keras_ssl.compare`` writes for those runs: the png is accuracy against
label count), ``index.md`` (every file written, one line each) and, per run,
``<run>/``: ``tables.md`` (the run's results table), ``accuracy_vs_labels.png``
(``_validation.png`` too when scored on the validation split),
``training_curves.png`` (every scalar of tb/pretrain against step),
``conv1_filters.png``, ``confusion_<head>.png`` (one per pretext classification
head) and ``tsne.png``. In the run directory: ``tb/report`` (the pictures as
TensorBoard images), ``tb/projector`` (embedding projector) and ``tb/hparams``
(HParams session). Every Markdown file starts with the command that wrote it.

Cost, on this project's idle 2-core machine with the defaults (2,000 pretext
examples, 2,000 t-SNE images, MNIST loaded once): two small runs in 19 s, t-SNE
about 4 s of each (it took 50 s with two other jobs on the machine); ``--skip-tsne``
or a smaller ``--tsne-images`` when that matters.

A bad input (not a run directory, no results.json, no encoder.keras, unreadable
JSON) stops with one line naming the file (exit code 2); the files written for
earlier runs stay, listed in index.md.
"""
from __future__ import annotations

import argparse
import os
import sys

# Quiet by default: TensorFlow's C++ info lines say nothing a user acts on.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_ssl.report.run import ReportError  # noqa: E402
from keras_ssl.report.runner import PRETEXT_IMAGES, report  # noqa: E402
from keras_ssl.report.tables import PROG, command_line  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="finished run directories of python -m keras_ssl.train")
    p.add_argument("--out", default="report", help="output directory (default: report/)")
    p.add_argument("--protocol", default="frozen_mlp",
                   help="protocol of the combined table and plots: frozen_mlp (default), knn, linear:<layer>")
    p.add_argument("--pairs", type=int, default=2000,
                   help="pretext examples per confusion matrix (default 2000)")
    p.add_argument("--pretext-images", choices=PRETEXT_IMAGES, default="validation",
                   help="images the pretext examples are made of: the validation split (default) "
                        "or the evaluation set's test images")
    p.add_argument("--tsne-images", type=int, default=2000,
                   help="test images in the t-SNE map and the projector (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pretext examples and of t-SNE (default 0)")
    p.add_argument("--skip-tsne", action="store_true", help="no t-SNE map")
    p.add_argument("--skip-confusion", action="store_true", help="no confusion matrices")
    p.add_argument("--skip-tensorboard", action="store_true",
                   help="write nothing under RUN/tb (images, projector, hparams)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None, labeled=None) -> int:
    """The command; ``labeled``: ``cfg -> (train, test)`` (tests give synthetic sets)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    try:
        res = report(args.runs, args.out, protocol=args.protocol, pairs=args.pairs,
                     tsne_images=args.tsne_images, seed=args.seed, pretext_images=args.pretext_images,
                     skip_tsne=args.skip_tsne, skip_confusion=args.skip_confusion,
                     skip_tensorboard=args.skip_tensorboard, progress=not args.no_progress,
                     labeled=labeled, command=command_line(argv))
    except ReportError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:     # --out not writable, disk full
        where = e.filename or args.out
        print(f"error: {where}: cannot write ({e.strerror or e})", file=sys.stderr)
        return 2
    print(f"wrote {len(res['outputs'].files)} files; list: {res['index']}")
    return 0
