"""Choosing between variants on the validation split: ``python -m keras_ssl.select``.

A selection file (``configs/selections/*.json``) names a base experiment config,
the variants (each a set of dotted overrides), the criterion decided before any
run, and the settings every variant shares. Each variant is pretrained and
scored with ``eval.split: "validation"`` (the test set is never read); the
variant with the best criterion wins; the table of validation scores is the
record of the choice. The test figure of the winner is then reported once, by
running its config (``python -m keras_ssl.train``).
"""
from keras_ssl.selection.spec import Selection, Variant, load_selection  # noqa: F401
