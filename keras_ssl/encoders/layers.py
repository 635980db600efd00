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


def small_map_taps(h: int, w: int, kh: int, kw: int) -> np.ndarray:
    """int32 [h*w, h*w]: the kernel tap (row-major ``a * kw + b``) linking input position
    ``p`` to output position ``i`` of a stride-1 "same" convolution on an h x w map, or
    ``kh * kw`` where the kernel does not reach (TensorFlow's "same" padding: top/left
    ``(k - 1) // 2``)."""
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    r, c = np.divmod(np.arange(h * w), w)
    a = r[:, None] - r[None, :] + ph              # [input p, output i]
    b = c[:, None] - c[None, :] + pw
    inside = (a >= 0) & (a < kh) & (b >= 0) & (b < kw)
    return np.where(inside, a * kw + b, kh * kw).astype(np.int32)


def small_map_conv(x, kernel, groups: int):
    """A stride-1 "same" (grouped) convolution on a small map as one matmul per group.

    ``x [B, h, w, Cin]``, ``kernel [kh, kw, Cin/groups, Cout]`` -> ``[B, h, w, Cout]``, the
    value of ``tf.nn.conv2d`` per group. The kernel is laid out as the dense
    ``[h*w*Cin/g, h*w*Cout/g]`` matrix of the convolution (taps gathered by
    :func:`small_map_taps`, zero where the kernel does not reach): on a map no larger
    than the kernel (the BCNN's conv2: 5x5 on 2x2) the convolution computes mostly
    padding, and the matmul is 1.5x faster forward + backward on CPU (measured,
    ``GroupedConv2D``).
    """
    h, w, cin = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    kh, kw, cin_g, cout = (int(d) for d in kernel.shape)
    cout_g = cout // groups
    k = tf.reshape(kernel, [kh * kw, cin_g, groups, cout_g])
    k = tf.concat([k, tf.zeros([1, cin_g, groups, cout_g], k.dtype)], 0)   # the "outside" tap
    m = tf.gather(k, small_map_taps(h, w, kh, kw))          # [hw in, hw out, cin_g, g, cout_g]
    m = tf.reshape(tf.transpose(m, [3, 0, 2, 1, 4]), [groups, h * w * cin_g, h * w * cout_g])
    xg = tf.reshape(x, [-1, h * w, groups, cin_g])
    xg = tf.reshape(tf.transpose(xg, [2, 0, 1, 3]), [groups, -1, h * w * cin_g])
    y = tf.reshape(tf.matmul(xg, m), [groups, -1, h, w, cout_g])
    return tf.reshape(tf.transpose(y, [1, 2, 3, 0, 4]), [-1, h, w, cout])


@keras.saving.register_keras_serializable(package="keras_ssl")
class GroupedConv2D(keras.layers.Conv2D):
    """Conv2D with ``groups`` computed as one convolution per group.

    Same weights and result as ``keras.layers.Conv2D(groups=g)`` (kernel
    [kh, kw, Cin/g, Cout]), but TensorFlow's CPU kernel for grouped
    convolution is several times slower than g plain convolutions, and the
    grouped conv is on the hot path of the thesis's network (conv2, 2 groups).
    A stride-1 "same" convolution on a map with no more positions than the
    kernel has taps (h * w <= kh * kw, known when the layer is built) is
    computed by :func:`small_map_conv` instead: the same values (tested), one
    matmul per group. ``GroupedConv2D.small_map_matmul = False`` (read when a graph is
    traced) turns that off, for benchmarks/small_map_conv.py's comparison.
    """

    small_map_matmul = True

    def _small_map(self, inputs) -> bool:
        h, w = inputs.shape[1], inputs.shape[2]
        kh, kw = self.kernel_size
        return (self.small_map_matmul and self.data_format == "channels_last" and self.padding == "same"
                and tuple(self.strides) == (1, 1) and tuple(self.dilation_rate) == (1, 1)
                and h is not None and w is not None and h * w <= kh * kw)

    def convolution_op(self, inputs, kernel):
        g = self.groups
        if self._small_map(inputs):
            return small_map_conv(inputs, kernel, g)
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
