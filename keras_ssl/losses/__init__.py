"""Losses: pure functions of tensors (DESIGN principle 3), shapes in the docstrings."""
from keras_ssl.losses.contrastive import contrastive_loss, pair_distance
from keras_ssl.losses.reconstruction import reconstruction_loss

__all__ = ["contrastive_loss", "pair_distance", "reconstruction_loss"]
