"""Image and transformed image for PIRL (Misra & van der Maaten,
"Self-Supervised Learning of Pretext-Invariant Representations", CVPR 2020).

Views: ``image``, the image under the random affine augmentation of
:mod:`keras_ssl.pretext.augment` (v_I), and the views of a transform pretext
applied to the original image (v_It), each named ``t_<view>``: the jigsaw
tiles ``t_tile0`` .. ``t_tile8`` by default (:mod:`keras_ssl.pretext.jigsaw`,
its MNIST defaults: 3x3 cells of the central 24x24 region, jittered 6x6
tiles, 100 permutations), or ``t_image`` for ``transform: "rotation"``
(:mod:`keras_ssl.pretext.rotation`). ``transform`` is that pretext's name or
its whole config (``{"name": "jigsaw", "permutations": 1000, ...}``), checked
by the same rules as a top-level pretext. The transform's own labels are kept
with a ``t_`` prefix (for TensorBoard samples); PIRL does not predict them.
Labels ``index`` and ``seed`` address the memory bank (see
:func:`keras_ssl.pretext.augment.bank_labels`). Use with method ``pirl``.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import Component, component
from keras_ssl.pretext.augment import AugmentParams, bank_labels, random_affine
from keras_ssl.pretext.base import Pretext

TRANSFORMS = ("jigsaw", "rotation")


@dataclass(frozen=True)
class PirlPretextParams(AugmentParams):
    """The image branch's augmentation (:class:`AugmentParams`) plus ``transform``: the
    pretext whose views are v_It, ``"jigsaw"`` or ``"rotation"``, by name or with its
    parameters (checked by that pretext's rules)."""
    transform: Component = component("pretext", "jigsaw")

    def validate(self):
        super().validate()
        # A component, so not a Literal: its name is one of the registered pretexts.
        if self.transform.name not in TRANSFORMS:
            raise ValueError(f"transform must be one of {list(TRANSFORMS)}, got {self.transform.name!r}")


class PirlPretext(Pretext):
    def __init__(self, params: PirlPretextParams, image_shape, transform: Pretext):
        self.transformed_views = tuple(f"t_{v}" for v in transform.view_names)
        super().__init__(view_names=("image",) + self.transformed_views,
                         view_shape=tuple(image_shape), targets={})
        self.params = params
        self.transform = transform

    def __call__(self, images, index, seed):
        s_aug, s_t, s_bank = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        t_views, t_labels = self.transform(images, index, s_t)
        views = {"image": random_affine(images, s_aug, self.params)}
        views.update({f"t_{k}": v for k, v in t_views.items()})
        labels = bank_labels(index, s_bank)
        labels.update({f"t_{k}": v for k, v in t_labels.items()})
        return views, labels

    def save(self, run_dir):
        self.transform.save(run_dir)

    def describe(self, labels, i):
        inner = {k[2:]: v for k, v in labels.items() if k.startswith("t_")}
        return f"image {int(labels['index'][i])}; {self.params.transform.name}: {self.transform.describe(inner, i)}"


@registry.register("pretext", "pirl", PirlPretextParams)
def build_pirl_pretext(params: PirlPretextParams, image_shape) -> PirlPretext:
    return PirlPretext(params, image_shape, registry.build("pretext", params.transform, image_shape))
