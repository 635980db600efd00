"""Shared command-line handling: --config, --set, --smoke."""
from __future__ import annotations

import argparse
import os
import sys

# The command-line entry points are quiet by default: TensorFlow's C++ info
# lines say nothing a user acts on. (Set before TensorFlow is imported.)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_ssl.config import ConfigError, load_config, parse_override


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="experiment config (JSON), e.g. configs/mnist_egomotion.json")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value by dotted key, e.g. --set train.steps=100 (repeatable)")
    p.add_argument("--smoke", action="store_true",
                   help="the same pipeline on tiny data and a few steps (seconds, for tests)")


def config_from_args(args):
    """Load the config named by ``args``; exits with a one-line message on a bad config."""
    try:
        overrides = dict(parse_override(s) for s in args.set)
        return load_config(args.config, overrides, smoke=args.smoke)
    except ConfigError as e:
        sys.exit(f"error: {e}")
