"""``python -m keras_ssl.export``: export a finished run as a TF Serving SavedModel."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from keras_ssl.export.runs import export_run
from keras_ssl.export.writer import ExportError


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m keras_ssl.export",
        description="Export a trained encoder as a TF Serving SavedModel "
                    "(<base>/<name>/<next version>/).")
    p.add_argument("--run-dir", required=True, help="finished training run (encoder.keras, config.json)")
    p.add_argument("--model-name", help="default: config export.model_name, else config name")
    p.add_argument("--base-path", help="default: RUN/export")
    p.add_argument("--taps", nargs="*", help="encoder layer names to add as outputs (default: config export.taps)")
    p.add_argument("--version", type=int, help="explicit version (must not exist); default: next integer")
    args = p.parse_args(argv)
    try:
        path = export_run(args.run_dir, args.model_name, args.base_path,
                          taps=args.taps, version=args.version)
    except (ExportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
