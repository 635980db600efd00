"""Pretext tasks: samplers that turn a batch of unlabeled images into views
and pseudo-labels, inside tf.data. One module per task, found by name in
:mod:`keras_ssl.registry` (kind ``"pretext"``)."""
from keras_ssl.pretext.base import Pretext

__all__ = ["Pretext"]
