"""``python -m keras_ssl.report RUN... [--out DIR]`` (see :mod:`keras_ssl.report.cli`)."""
import sys

from keras_ssl.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
