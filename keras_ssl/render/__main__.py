import sys

from keras_ssl.render.cli import main

if __name__ == "__main__":
    sys.exit(main())
