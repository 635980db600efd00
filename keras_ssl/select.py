"""Choose between variants on the validation split (see :mod:`keras_ssl.selection.cli`).

    python -m keras_ssl.select configs/selections/NAME.json [--runs-dir runs/select] [--smoke]
"""
import sys

from keras_ssl.selection.cli import main

if __name__ == "__main__":
    sys.exit(main())
