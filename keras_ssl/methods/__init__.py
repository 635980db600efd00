"""Methods: heads and a loss around an encoder (kind ``"method"`` in the
registry). A builder takes ``(params, encoder, pretext, *, facts)`` (facts: a
:class:`~keras_ssl.methods.base.DatasetFacts`) and returns a
:class:`~keras_ssl.methods.base.Method`."""
from keras_ssl.methods.base import DatasetFacts, Method

__all__ = ["DatasetFacts", "Method"]
