"""``python -m keras_ssl.render``: render drives (KITTI odometry / TUM RGB-D layouts) or a
labeled scene set (class-per-folder), offline, from the images scikit-image ships.

    python -m keras_ssl.render drives --out DIR --sequences 3 --frames 600 [--size 128x384]
        [--layout kitti|tum] [--seed 0] [--pitch-roll DEG] [--overwrite] [--no-progress]
    python -m keras_ssl.render scenes --out DIR --classes 8 --per-class 60 [--test-per-class 20]
        [--size 64] [--seed 0] [--palette own|shared] [--overwrite] [--no-progress]

Same arguments, same bytes. An existing, non-empty ``--out`` is refused unless
``--overwrite`` (which replaces only what the command writes). See docs/render.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _size_hw(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 128x384), got {text!r}") from None
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"height and width must be >= 8, got {text!r}")
    return h, w


def _size_square(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected one integer (a square image's side), got {text!r}") from None
    if n < 8:
        raise argparse.ArgumentTypeError(f"must be >= 8, got {n}")
    return n


def _at_least(lo: int):
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if n < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {n}")
        return n
    return parse


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= v <= 10:
        raise argparse.ArgumentTypeError(f"must be in [0, 10] degrees, got {v:g}")
    return v


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m keras_ssl.render", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True, metavar="{drives,scenes}")
    d = sub.add_parser("drives", help="car-like drives in the KITTI odometry or TUM RGB-D layout")
    d.add_argument("--out", required=True, type=Path, help="output folder (KITTI: the dataset root)")
    d.add_argument("--sequences", type=_at_least(1), default=3, help="number of drives (default 3)")
    d.add_argument("--frames", type=_at_least(1), default=600, help="frames per drive (default 600)")
    d.add_argument("--size", type=_size_hw, default=(128, 384), metavar="HxW", help="image size (default 128x384)")
    d.add_argument("--layout", choices=("kitti", "tum"), default="kitti")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--pitch-roll", type=_nonneg_float, default=0.0, metavar="DEG",
                   help="amplitude of a small random pitch and roll in degrees (default 0: none)")
    s = sub.add_parser("scenes", help="a labeled scene-recognition set, class-per-folder")
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--classes", type=_at_least(1), default=8, help="number of scene classes (default 8)")
    s.add_argument("--per-class", type=_at_least(1), default=60, help="training images per class (default 60)")
    s.add_argument("--test-per-class", type=_at_least(0), default=20, help="test images per class (default 20)")
    s.add_argument("--size", type=_size_square, default=64, help="side of the square images (default 64)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--palette", choices=("own", "shared"), default="own",
                   help="own: each class its colours (default); shared: every colour drawn from one pool "
                        "(harder: only layout and texture tell the classes apart)")
    for q in (d, s):
        q.add_argument("--overwrite", action="store_true",
                       help="write into a non-empty --out (replacing what this command writes)")
        q.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    out: Path = args.out
    if out.exists() and not out.is_dir():
        print(f"error: argument --out: {out} exists and is not a directory", file=sys.stderr)
        return 2
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        print(f"error: argument --out: {out} exists and is not empty (pass --overwrite to write into it)",
              file=sys.stderr)
        return 2
    if args.what == "scenes":
        from keras_ssl.render.scenes import CLASSES, write_scenes
        if args.classes > len(CLASSES):
            print(f"error: argument --classes: at most {len(CLASSES)} ({', '.join(CLASSES)}), got {args.classes}",
                  file=sys.stderr)
            return 2
    try:
        out.mkdir(parents=True, exist_ok=True)
        if args.what == "drives":
            from keras_ssl.render.drives import write_drives
            r = write_drives(out, args.sequences, args.frames, args.size, args.layout, args.seed,
                             args.pitch_roll, args.overwrite, not args.no_progress)
            print(f"rendered {r['frames']} frames ({args.sequences} x {args.frames}, {args.size[0]}x{args.size[1]}, "
                  f"{args.layout}) in {r['seconds']:.1f} s: {r['images_per_s']:.1f} images/s -> {out}")
        else:
            r = write_scenes(out, args.classes, args.per_class, args.test_per_class, args.size, args.seed,
                             args.overwrite, not args.no_progress, args.palette)
            print(f"rendered {r['images']} images ({args.classes} classes x {args.per_class} train + "
                  f"{args.test_per_class} test, {args.size}x{args.size}) in {r['seconds']:.1f} s: "
                  f"{r['images_per_s']:.1f} images/s -> {out}")
    except OSError as e:
        print(f"error: argument --out: cannot write {getattr(e, 'filename', None) or out}: "
              f"{e.strerror or e}", file=sys.stderr)
        return 2
    return 0
