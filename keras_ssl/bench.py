"""Pretraining throughput (see :mod:`keras_ssl.training.bench`).

    python -m keras_ssl.bench --config CFG [--steps 400] [--warmup 100] [--repeats 3]
"""
import sys

from keras_ssl.training.bench import main

if __name__ == "__main__":
    sys.exit(main())
