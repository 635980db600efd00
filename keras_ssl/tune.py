"""KerasTuner sweeps, coarse to fine (see :mod:`keras_ssl.tuning`).

    python -m keras_ssl.tune --config configs/mnist_egomotion_tune.json [--run-dir DIR] [--smoke]
"""
import sys

from keras_ssl.tuning.cli import main

if __name__ == "__main__":
    sys.exit(main())
