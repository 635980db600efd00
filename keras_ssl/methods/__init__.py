"""Methods: heads and a loss around an encoder (kind ``"method"`` in the
registry). A builder takes ``(params, encoder, pretext)`` and returns a
:class:`~keras_ssl.methods.base.Method`."""
from keras_ssl.methods.base import Method

__all__ = ["Method"]
