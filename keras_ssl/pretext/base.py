"""The contract every pretext sampler follows."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf


@dataclass
class Pretext:
    """Base class of pretext samplers.

    Attributes, set by the subclass:

    - ``view_names``: names of the views a method receives, in order
      (e.g. ``("first", "second")``).
    - ``view_shape``: (H, W, C) of every view.
    - ``targets``: classification targets, name -> number of classes; a
      method such as ``classify`` puts one softmax head on each.
    - ``input_transform``: None (the encoder takes the images as the data holds them:
      ``view_shape`` has the images' channels), or a Keras layer mapping whole images
      (float32 [B, H, W, C] in [0, 1], the data's channels) to what the encoder is trained
      on, of shape ``view_shape`` (colorization: RGB -> the L channel,
      :class:`keras_ssl.colour.layers.LabInput`). The views are that layer's output (the
      pretext applies the same layer), and the encoder that is evaluated and exported is
      the layer followed by the encoder (:func:`keras_ssl.encoders.build_encoder`): it
      takes the data's images and sees them as pretraining showed them.

    ``__call__(images, index, seed)`` maps one batch (float32 [B, H, W, C] in
    [0, 1], int64 [B] dataset indices, int32 [2] stateless seed) to
    ``(views, labels)``: dicts of tensors with batch dimension B. ``labels``
    holds every target, and may hold extra entries (raw transform parameters,
    indices) that other methods use. Same images and seed -> same output.

    The trainer gets its batches from :meth:`batches` on what :meth:`prepare` made of the
    pretraining data. The default fits pretexts on images: ``prepare`` takes the uint8
    [N, H, W, C] images as they are, and ``batches`` draws them uniformly by (seed, step)
    and calls the pretext on each batch (:func:`keras_ssl.data.pipeline.pretext_batches`).
    A pretext on other data (frame sequences with poses: ``odometry``) overrides both;
    ``len(prepare(data))`` is what the sampler's ``index`` label addresses (a memory
    bank's size).
    """
    view_names: tuple = ()
    view_shape: tuple = ()
    targets: dict = field(default_factory=dict)
    input_transform: object = None

    def __call__(self, images: tf.Tensor, index: tf.Tensor, seed: tf.Tensor):
        raise TypeError(f"{type(self).__name__} must define __call__")

    def prepare(self, data):
        """What :meth:`batches` samples from, made once from the pretraining data: uint8
        images [N, H, W, C] for a pretext on images (returned as they are); ConfigError
        for data it cannot use (frame sequences)."""
        if not isinstance(data, np.ndarray):
            from keras_ssl.config import ConfigError
            raise ConfigError(f"pretext {type(self).__name__} trains on images; data.dataset gives "
                              f"{type(data).__name__} (frame sequences train pretext 'odometry')")
        return data

    def batches(self, data, batch_size: int, seed: int, start_step: int, end_step: int,
                threads: int = 1) -> tf.data.Dataset:
        """``(views, labels)`` global batches for steps [start_step, end_step) of
        ``prepare``'s output, a pure function of (seed, step)."""
        from keras_ssl.data.pipeline import pretext_batches
        return pretext_batches(data, self, batch_size, seed, start_step, end_step, threads)

    def save(self, run_dir) -> None:
        """Write what a run needs to reproduce or report this pretext (e.g. the
        jigsaw permutation set) into ``run_dir``. Called once per run before
        pretraining; default: nothing."""

    def describe(self, labels: dict, i: int) -> str:
        """Human-readable label of example ``i`` (TensorBoard sample images)."""
        return ", ".join(f"{k}={int(v[i])}" for k, v in labels.items() if k in self.targets)
