"""Jigsaw permutation sets of maximal Hamming distance (see :mod:`keras_ssl.pretext.permutations`).

    python -m keras_ssl.permutations --size 100 --grid 3 --criterion mean --out perms.json [--seed 0]
"""
import sys

from keras_ssl.pretext.permutations import main

if __name__ == "__main__":
    sys.exit(main())
