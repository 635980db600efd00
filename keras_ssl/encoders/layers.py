"""Layers the encoders need beyond Keras core."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_ssl")
class LocalResponseNorm(keras.layers.Layer):
    """Caffe/AlexNet cross-channel LRN: x / (k + alpha/size * sum_{size} x^2)^beta.

    Caffe's ``alpha`` is divided by the window size; TensorFlow's op takes the
    per-element alpha and a radius, hence the conversion.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=1.0, **kwargs):
        super().__init__(**kwargs)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def build(self, input_shape):
        # The window sum over channels as a matmul with a band matrix, and
        # s^-0.75 as rsqrt(s) * sqrt(rsqrt(s)): forward + backward measured
        # 1.5-2.5x faster on CPU than tf.nn.local_response_normalization and
        # its LRNGrad kernel, same values (tested).
        c = int(input_shape[-1])
        i = np.arange(c)
        half = (self.size - 1) // 2
        self._band = tf.constant((np.abs(i[:, None] - i[None, :]) <= half).astype(np.float32))

    def call(self, x):
        # In float32 whatever the compute dtype: k + alpha/size * sum is 1 + ~1e-3, which
        # bfloat16's 8-bit mantissa would round to 1 (the layer would do nothing).
        dtype = x.dtype
        x = tf.cast(x, tf.float32)
        c = x.shape[-1]
        sq = tf.reshape(tf.square(x), [-1, c])
        s = self.k + (self.alpha / self.size) * tf.reshape(tf.matmul(sq, self._band), tf.shape(x))
        if self.beta == 0.75:
            r = tf.math.rsqrt(s)
            y = x * r * tf.sqrt(r)
        elif self.beta == 0.5:
            y = x * tf.math.rsqrt(s)
        else:
            y = x * tf.pow(s, -self.beta)
        return tf.cast(y, dtype)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha,
                "beta": self.beta, "k": self.k}


def ceil_pool_padding(size: int, pool: int, stride: int) -> int:
    """Right/bottom padding that makes a valid pool round up like Caffe."""
    out = -(-max(size - pool, 0) // stride) + 1
    return max((out - 1) * stride + pool - size, 0)


@keras.saving.register_keras_serializable(package="keras_ssl")
class GroupedConv2D(keras.layers.Conv2D):
    """Conv2D with ``groups`` computed as one convolution per group.

    Same weights and result as ``keras.layers.Conv2D(groups=g)`` (kernel
    [kh, kw, Cin/g, Cout]), but TensorFlow's CPU kernel for grouped
    convolution is several times slower than g plain convolutions, and the
    grouped conv is on the hot path of the thesis's network (conv2, 2 groups).
    """

    def convolution_op(self, inputs, kernel):
        g = self.groups
        if g == 1:
            return super().convolution_op(inputs, kernel)
        xs = tf.split(inputs, g, axis=-1)
        ks = tf.split(kernel, g, axis=-1)
        outs = [tf.nn.conv2d(x, k, strides=self.strides, padding=self.padding.upper(),
                             dilations=self.dilation_rate) for x, k in zip(xs, ks)]
        return tf.concat(outs, axis=-1)


@keras.saving.register_keras_serializable(package="keras_ssl")
class ChannelSlice(keras.layers.Layer):
    """[B, H, W, C] -> [B, H, W, stop - start]: channels ``start`` .. ``stop - 1``."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def call(self, x):
        return x[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}
