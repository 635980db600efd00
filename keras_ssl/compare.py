"""One comparison table of finished runs (see :mod:`keras_ssl.evaluation.compare`).

    python -m keras_ssl.compare runs/* [--out DIR] [--protocol frozen_mlp] [--skip-missing]
"""
import sys

from keras_ssl.evaluation.compare import main

if __name__ == "__main__":
    sys.exit(main())
