"""Throughput of the local server against in-process inference (see :mod:`keras_ssl.server.bench`).

    python -m keras_ssl.serve_bench [--export-dir DIR | --run-dir RUN] [--seconds 10] [--concurrency 1 8 32]
"""
from __future__ import annotations

import sys

from keras_ssl.server.bench import main

if __name__ == "__main__":
    sys.exit(main())
