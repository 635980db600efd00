"""Several pretext tasks on one encoder (Doersch & Zisserman, "Multi-task
Self-Supervised Visual Learning", ICCV 2017).

``tasks`` lists the pretexts, each a whole pretext section (``"rotation"`` or
``{"name": "jigsaw", "grid": 2, ...}``), parsed by the registry's own
``Params`` so every key is checked and named as ``pretext.tasks[i].<key>``.
Every task is sampled on every image of the batch, from its own stateless seed
(split from the batch's), and its views and labels are namespaced with the
task's name and :data:`SEP`: ``rotation.image``, ``rotation.rotation``,
``jigsaw.tile0`` .. , ``egomotion.first``, ``egomotion.tx``. (Keras refuses
``/`` in input names, hence the dot.) A task is named after its pretext, so
a pretext appears once.

Two more labels, for method ``multitask``'s ``split`` and ``alternate``
modes (which choose the task an example trains): ``multitask.draw``, float32
[B] in [0, 1), stratified over the batch (``frac(i / B + u)``, ``u`` uniform
per batch: a task with share ``w`` of the weights gets ``w * B`` examples, to
one), and ``multitask.batch_draw``, ``u`` on every row (one task per batch).

Every task's views are inputs of the one encoder, so they must all have one
shape (H, W, C); a pretext whose views differ is refused with a ConfigError
naming the tasks and their shapes. The encoder that is evaluated and exported
sees whole images of that shape, as with a single pretext.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import Component, ConfigError, components
from keras_ssl.pretext.base import Pretext
from keras_ssl.registry import Params

#: Separator between a task's name and its view / label name (``rotation.image``).
SEP = "."
#: Labels of the batch's draws (the namespace of no task).
DRAW, BATCH_DRAW = f"multitask{SEP}draw", f"multitask{SEP}batch_draw"


@dataclass(frozen=True)
class MultitaskPretextParams(Params):
    """``tasks``: the pretexts trained together, each a pretext section (a name, or an
    object with ``"name"`` and that pretext's parameters, checked by its rules); each
    pretext at most once, not ``multitask`` itself. Default: egomotion (Agrawal et al.
    2015), rotation (Gidaris et al. 2018) and jigsaw (Noroozi & Favaro 2016) with their
    defaults; ``configs/mnist_multitask.json`` gives each the settings of its own config."""
    tasks: tuple[Component, ...] = components("pretext", "egomotion", "rotation", "jigsaw")

    def validate(self):
        if not self.tasks:
            raise ValueError("tasks must list at least one pretext")
        seen = {}
        for i, t in enumerate(self.tasks):
            if t.name == "multitask":
                raise ValueError(f"tasks[{i}]: a multitask pretext cannot hold another")
            if t.name in seen:
                raise ValueError(f"tasks[{i}]: pretext {t.name!r} is already tasks[{seen[t.name]}] "
                                 f"(a task is named after its pretext)")
            seen[t.name] = i


def task_part(d: dict, task: str) -> dict:
    """The entries of ``d`` namespaced with ``task``, the namespace stripped."""
    prefix = task + SEP
    return {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}


class MultitaskPretext(Pretext):
    """``tasks``: task name -> its pretext (in config order)."""

    def __init__(self, params: MultitaskPretextParams, image_shape, tasks: dict):
        super().__init__(
            view_names=tuple(f"{t}{SEP}{v}" for t, p in tasks.items() for v in p.view_names),
            view_shape=tuple(image_shape),
            targets={f"{t}{SEP}{k}": n for t, p in tasks.items() for k, n in p.targets.items()})
        self.params = params
        self.tasks = dict(tasks)

    def __call__(self, images, index, seed):
        seeds = tf.unstack(tf.random.experimental.stateless_split(seed, len(self.tasks) + 1))
        views, labels = {}, {}
        for (name, task), s in zip(self.tasks.items(), seeds):
            v, lab = task(images, index, s)
            views.update({f"{name}{SEP}{k}": x for k, x in v.items()})
            labels.update({f"{name}{SEP}{k}": x for k, x in lab.items()})
        b = tf.shape(images)[0]
        u = tf.random.stateless_uniform([], seeds[-1])
        labels[DRAW] = tf.math.floormod(tf.range(b, dtype=tf.float32) / tf.cast(b, tf.float32) + u, 1.0)
        labels[BATCH_DRAW] = tf.fill([b], u)
        return views, labels

    def save(self, run_dir):
        """Each task's files in ``run_dir/tasks/<task>/`` (e.g. jigsaw's permutation set)."""
        for name, task in self.tasks.items():
            sub = Path(run_dir) / "tasks" / name
            sub.mkdir(parents=True, exist_ok=True)
            task.save(sub)

    def describe(self, labels, i):
        return "; ".join(f"{name}: {task.describe(task_part(labels, name), i)}"
                         for name, task in self.tasks.items())


@registry.register("pretext", "multitask", MultitaskPretextParams)
def build_multitask_pretext(params: MultitaskPretextParams, image_shape) -> MultitaskPretext:
    tasks = {}
    for i, comp in enumerate(params.tasks):
        try:
            tasks[comp.name] = registry.build("pretext", comp, image_shape)
        except ConfigError as e:
            raise ConfigError(f"pretext.tasks[{i}] ({comp.name}): {e}") from None
        if type(tasks[comp.name]).batches is not Pretext.batches:
            raise ConfigError(f"pretext.tasks[{i}] ({comp.name}): a multitask pretext makes every "
                              f"task's views from one batch of images; {comp.name!r} makes its own "
                              f"batches (frame pairs of sequences) and cannot be one of its tasks")
    shapes = {name: tuple(t.view_shape) for name, t in tasks.items()}
    if len(set(shapes.values())) > 1:
        raise ConfigError("pretext.tasks: the views of every task are inputs of the one encoder and "
                          "must have one shape; got " +
                          ", ".join(f"{name} {'x'.join(map(str, s))}" for name, s in shapes.items()))
    return MultitaskPretext(params, next(iter(shapes.values()), tuple(image_shape)), tasks)
