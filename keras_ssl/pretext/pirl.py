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

``transforms``: a set of transforms instead of the one ``transform`` (PIRL's paper,
section 5: jigsaw and rotation together, ``["jigsaw", "rotation"]``, each a name or a
whole section): each image's transform is drawn uniformly from the set by a stateless
op from the batch's seed (label ``t_choice``, int32 [B], the transform's index in
``transforms``). Every transform's views are made for every image (the trainer's step
takes one structure of views: ``t_tile0`` .. ``t_tile3`` and ``t_image`` for the
pair), and method ``pirl`` scores, per image, only the g of its drawn transform.
The views of two transforms must have different names. Empty (the default): the set is
``transform`` alone, drawn exactly as before the setting existed (old runs resume
unchanged); ``transform`` must then keep its default when ``transforms`` is given.
Labels ``index`` and ``seed`` address the memory bank (see
:func:`keras_ssl.pretext.augment.bank_labels`). Use with method ``pirl``.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import Component, ConfigError, component, components
from keras_ssl.pretext.augment import AugmentParams, bank_labels, random_affine
from keras_ssl.pretext.base import Pretext

TRANSFORMS = ("jigsaw", "rotation")


@dataclass(frozen=True)
class PirlPretextParams(AugmentParams):
    """The image branch's augmentation (:class:`AugmentParams`) plus ``transform``: the
    pretext whose views are v_It, ``"jigsaw"`` or ``"rotation"``, by name or with its
    parameters (checked by that pretext's rules); ``transforms``: instead, a set of them
    (each ``"jigsaw"`` or ``"rotation"`` at most once, e.g. ``["jigsaw", "rotation"]``,
    PIRL's paper's combination), each image's transform drawn uniformly from the set;
    empty (default): ``transform`` alone."""
    transform: Component = component("pretext", "jigsaw")
    transforms: tuple[Component, ...] = components("pretext")

    def validate(self):
        super().validate()
        # A component, so not a Literal: its name is one of the registered pretexts.
        if self.transform.name not in TRANSFORMS:
            raise ValueError(f"transform must be one of {list(TRANSFORMS)}, got {self.transform.name!r}")
        seen = {}
        for i, t in enumerate(self.transforms):
            if t.name not in TRANSFORMS:
                raise ValueError(f"transforms[{i}] must be one of {list(TRANSFORMS)}, got {t.name!r}")
            if t.name in seen:
                raise ValueError(f"transforms[{i}]: {t.name!r} is already transforms[{seen[t.name]}]")
            seen[t.name] = i
        if self.transforms and self.transform != component_default("pretext", "jigsaw"):
            raise ValueError("give transform (one transform) or transforms (a set), not both")

    def transform_set(self) -> tuple:
        """The transforms images are drawn from: ``transforms``, or ``(transform,)``."""
        return self.transforms or (self.transform,)


def component_default(kind: str, name: str) -> Component:
    return Component(name, registry.params_class(kind, name)())


class PirlPretext(Pretext):
    """``transforms``: transform name -> its pretext, in the order of the set
    (one entry: ``params.transform``). ``transformed_views``: every t_ view;
    ``views_by_transform``: transform name -> its t_ views."""

    def __init__(self, params: PirlPretextParams, image_shape, transforms: dict):
        self.transforms = dict(transforms)
        self.views_by_transform = {name: tuple(f"t_{v}" for v in t.view_names)
                                   for name, t in self.transforms.items()}
        self.transformed_views = tuple(v for vs in self.views_by_transform.values() for v in vs)
        if len(set(self.transformed_views)) < len(self.transformed_views):
            raise ConfigError(f"pretext.transforms: two transforms have views of one name: "
                              f"{self.views_by_transform}")
        super().__init__(view_names=("image",) + self.transformed_views,
                         view_shape=tuple(image_shape), targets={})
        self.params = params
        self.transform = next(iter(self.transforms.values()))   # the one transform of a set of one

    def __call__(self, images, index, seed):
        s_aug, s_t, s_bank = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        views = {"image": random_affine(images, s_aug, self.params)}
        labels = bank_labels(index, s_bank)
        if len(self.transforms) == 1:
            parts = [self.transform(images, index, s_t)]
        else:
            seeds = tf.unstack(tf.random.experimental.stateless_split(s_t, len(self.transforms) + 1))
            parts = [t(images, index, s) for t, s in zip(self.transforms.values(), seeds)]
            labels["t_choice"] = tf.random.stateless_uniform(
                [tf.shape(images)[0]], seeds[-1], 0, len(self.transforms), dtype=tf.int32)
        for t_views, t_labels in parts:
            views.update({f"t_{k}": v for k, v in t_views.items()})
            labels.update({f"t_{k}": v for k, v in t_labels.items()})
        return views, labels

    def save(self, run_dir):
        for t in self.transforms.values():
            t.save(run_dir)

    def describe(self, labels, i):
        inner = {k[2:]: v for k, v in labels.items() if k.startswith("t_")}
        k = int(labels["t_choice"][i]) if "t_choice" in labels else 0
        name = list(self.transforms)[k]
        return f"image {int(labels['index'][i])}; {name}: {self.transforms[name].describe(inner, i)}"


@registry.register("pretext", "pirl", PirlPretextParams)
def build_pirl_pretext(params: PirlPretextParams, image_shape) -> PirlPretext:
    key = "transforms" if params.transforms else "transform"
    transforms = {}
    for i, comp in enumerate(params.transform_set()):
        try:
            transforms[comp.name] = registry.build("pretext", comp, image_shape)
        except ConfigError as e:
            where = f"pretext.{key}[{i}]" if params.transforms else f"pretext.{key}"
            raise ConfigError(f"{where} ({comp.name}): {e}") from None
    return PirlPretext(params, image_shape, transforms)
