"""Context encoder (Pathak et al. 2016, "Context Encoders: Feature Learning by
Inpainting"): the encoder sees the image with a region removed (pretext
``inpainting``), a decoder predicts the image, and the loss is the
reconstruction of the removed region only (the paper's eq. 1,
``||M * (x - F((1 - M) * x))||^2``, :func:`keras_ssl.losses.reconstruction.reconstruction_loss`
with the mask), normalised per example by the number of removed pixels.

The decoder is the autoencoder's (:func:`keras_ssl.methods.autoencoder.conv_decoder`):
encoder features -> dense map -> two 4x4 stride-2 transposed convolutions ->
H x W x C pre-sigmoid logits, output ``reconstruction``. The paper's decoder
reads a channel-wise fully connected layer of a 4x4 feature map; here it reads
the encoder's feature vector, as the autoencoder does, so that the two differ in
what the encoder sees and what the loss counts, not in the decoder.

Differences from the paper, stated:

- context: ``context_weight`` (default 0) weights the context pixels' loss
  uniformly; the paper instead predicts a slightly larger region overlapping
  the context and weights the overlap more; that overlap weighting is not
  implemented;
- no adversarial term: the paper adds a discriminator's loss (weight 0.001,
  with 0.999 on the reconstruction). A discriminator needs its own optimizer
  step, which :meth:`keras_ssl.methods.base.Method.replica_step` (one step on
  all trainable variables) does not do; ``adversarial_weight`` is therefore
  0 only, and a nonzero value is refused (ValueError) rather than trained wrongly.

Only the encoder is kept for evaluation and export.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from keras_ssl.config import num
from keras_ssl.losses.reconstruction import ReconstructionKind, reconstruction_loss
from keras_ssl.methods.autoencoder import conv_decoder
from keras_ssl.methods.base import NO_FACTS, DatasetFacts, Method, view_inputs
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class ContextEncoderParams(Params):
    """The decoder and the masked loss (module docstring).

    - ``hidden``: units of a dense layer (ReLU) before the decoder's spatial map; 0: none.
    - ``channels``: channels of the first decoder feature map (the second has half).
    - ``loss``: ``"mse"`` (squared error of the sigmoid, the paper's L2) or ``"bce"``
      (pixel-wise binary cross-entropy).
    - ``context_weight``: weight of the context (unmasked) pixels' loss relative to
      the removed ones' (0: the removed region only, as the paper's eq. 1).
    - ``adversarial_weight``: weight of the paper's adversarial loss; only 0 is
      implemented (a nonzero value is refused: module docstring).
    - ``target_label``: the label holding the clean image, float32 [B, H, W, C] in [0, 1].
    - ``mask_label``: the label holding the mask, float32 [B, H, W, 1] or
      [B, H, W, C], 1 on the removed pixels.
    """
    hidden: int = num(0, 0)
    channels: int = num(64, 2)
    loss: ReconstructionKind = "mse"
    context_weight: float = num(0.0, 0.0, 1.0)
    adversarial_weight: float = num(0.0, 0.0)
    target_label: str = "target"
    mask_label: str = "mask"

    def validate(self):
        if self.adversarial_weight:
            raise ValueError(
                f"adversarial_weight={self.adversarial_weight}: the adversarial term is not "
                "implemented (it needs a discriminator trained with its own optimizer step, "
                "which Method.replica_step does not do); use 0")


class ContextEncoder(Method):
    def __init__(self, encoder, network, params: ContextEncoderParams, **kwargs):
        super().__init__(encoder, network, **kwargs)
        self.params = params

    def per_example(self, outputs, labels):
        p = self.params
        for key in (p.target_label, p.mask_label):
            if key not in labels:
                raise ValueError(f"method 'inpainting' needs label {key!r} (pretext 'inpainting'), "
                                 f"got labels {sorted(labels)}")
        logits = outputs["reconstruction"]
        target, mask = labels[p.target_label], labels[p.mask_label]
        loss = reconstruction_loss(logits, target, p.loss, mask=mask, context_weight=p.context_weight)
        sq = tf.square(tf.sigmoid(logits) - target)
        mask = tf.broadcast_to(tf.cast(mask, tf.float32), tf.shape(sq))
        n = tf.shape(sq)[0]
        per = lambda t: tf.reduce_sum(tf.reshape(t, [n, -1]), 1)   # noqa: E731
        removed = per(mask)
        metrics = {
            "masked_mse": per(mask * sq) / tf.maximum(removed, 1.0),
            "context_mse": per((1.0 - mask) * sq) / tf.maximum(per(1.0 - mask), 1.0),
            "mask_frac": removed / tf.cast(tf.reduce_prod(tf.shape(sq)[1:]), tf.float32),
        }
        return loss, metrics


@register("method", "inpainting", ContextEncoderParams)
def build_context_encoder(p: ContextEncoderParams, encoder: keras.Model, pretext, *,
                     facts: DatasetFacts = NO_FACTS) -> ContextEncoder:
    p.validate()   # parameters built in Python skip the config's validate()
    if len(pretext.view_names) != 1:
        raise ValueError(f"method 'inpainting' needs a pretext with one view, got {pretext.view_names}")
    inputs = view_inputs(pretext)
    x = conv_decoder(encoder(inputs[0]), pretext.view_shape, p.hidden, p.channels)
    network = keras.Model(inputs, {"reconstruction": x}, name="inpainting")
    return ContextEncoder(encoder, network, p, name="inpainting")
