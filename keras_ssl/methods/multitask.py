"""Several pretext tasks on one encoder, one head per task (Doersch & Zisserman,
"Multi-task Self-Supervised Visual Learning", ICCV 2017), on pretext ``multitask``.

``tasks`` gives, per pretext task (by its name in ``pretext.tasks``), the head's
method section (any registered method without state beyond its weights, e.g.
``classify`` with its ``hidden`` / ``dropout``) and a ``weight``. Each head is
built by its own method's builder on that task's pretext, around the one shared
encoder; the network feeds each head its task's views (``rotation.image`` ->
the rotation head's ``image``) and namespaces its outputs (``rotation.rotation``).

``mode``:

- ``"sum"``: every example feeds every task; per example
  ``L = sum_t weight_t * L_t`` (``L_t`` the task's method's own per-example loss).
- ``"split"``: each batch is divided among the tasks in proportion to the
  weights (label ``multitask.draw``: task t gets ``weight_t / sum(weights)`` of
  the batch's examples, to one); an example's loss is its task's ``L_t``, unweighted
  (the weight is the task's share of the examples), so each head learns only from its
  share and a weight-0 task from none.
- ``"alternate"``: one task per batch (label ``multitask.batch_draw``), drawn with
  probability ``weight_t / sum(weights)`` from the batch's seed (so by the step:
  reruns and resumed runs draw the same tasks); only that head (and the encoder)
  gets a gradient in that step: Doersch & Zisserman's asynchronous setup, where each
  worker trains one task's batches.

In ``split`` and ``alternate`` every task's views are still sampled and every head
still runs on every example: the trainer compiles one step for one structure of views,
so a step cannot change the views it takes; the masks only choose which losses count.
A step therefore costs what a ``sum`` step costs. Metrics: per task ``<task>.loss``
and the task method's metrics (``<task>.rotation_acc``), over every example (a head is
scored on examples it did not train on too), and, outside ``sum``, ``<task>.share``
(the fraction of examples it trained on).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import keras
import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import Component, component, num
from keras_ssl.methods.base import NO_FACTS, DatasetFacts, Method, view_inputs
from keras_ssl.pretext.multitask import BATCH_DRAW, DRAW, SEP, task_part
from keras_ssl.registry import Params, register


@dataclass(frozen=True)
class TaskHead(Params):
    """One task's head: ``task``, the name of its pretext in ``pretext.tasks``;
    ``method``, the head's method section (``"classify"`` or ``{"name": "classify",
    "hidden": 1000, ...}``, checked by that method's rules); ``weight``, the task's
    weight (>= 0): its loss's factor in mode ``sum``, its share of examples or of
    batches in ``split`` and ``alternate``."""
    task: str = "rotation"
    method: Component = component("method", "classify")
    weight: float = num(1.0, 0.0)


def _default_heads():
    return tuple(TaskHead(t) for t in ("egomotion", "rotation", "jigsaw"))


@dataclass(frozen=True)
class MultitaskParams(Params):
    """The heads and how their losses combine (Doersch & Zisserman 2017).

    - ``tasks``: one :class:`TaskHead` per pretext task (``task``, ``method``,
      ``weight``), each task of the pretext exactly once; default: classify heads with
      weight 1 on egomotion, rotation and jigsaw, the multitask pretext's defaults.
    - ``mode``: ``"sum"`` (every task on every example, losses weighted and summed),
      ``"split"`` (each batch divided among the tasks in proportion to the weights) or
      ``"alternate"`` (one task per batch, drawn in proportion to the weights).
    """
    tasks: tuple[TaskHead, ...] = field(default_factory=_default_heads)
    mode: Literal["sum", "split", "alternate"] = "sum"

    def validate(self):
        if not self.tasks:
            raise ValueError("tasks must give at least one task's head")
        seen = {}
        for i, h in enumerate(self.tasks):
            if h.task in seen:
                raise ValueError(f"tasks[{i}].task: {h.task!r} is already tasks[{seen[h.task]}]")
            seen[h.task] = i
            if h.method.name == "multitask":
                raise ValueError(f"tasks[{i}].method: a multitask head cannot be multitask")
        if sum(h.weight for h in self.tasks) <= 0:
            raise ValueError("tasks: at least one weight must be > 0")


class MultitaskMethod(Method):
    """``heads``: task name -> the task's own :class:`Method` (its network is called
    inside ``network``; kept outside Keras's tracking: its weights are the network's)."""

    def __init__(self, encoder, network, heads: dict, weights: dict, mode: str, **kwargs):
        super().__init__(encoder, network, **kwargs)
        self._heads = _Untracked(heads)
        self.weights_by_task = dict(weights)
        self.mode = mode
        self.targets = {f"{t}{SEP}{k}": n for t, m in heads.items()
                        for k, n in (getattr(m, "targets", None) or {}).items()}

    @property
    def heads(self) -> dict:
        return self._heads.value

    def task_coefficients(self, labels: dict) -> dict:
        """Task -> float32 [B] factor of its per-example loss: its weight (``sum``), or
        1 on the examples it trains on and 0 elsewhere (``split``, ``alternate``)."""
        b = tf.shape(next(iter(labels.values())))[0]
        if self.mode == "sum":
            return {t: tf.fill([b], tf.constant(w, tf.float32)) for t, w in self.weights_by_task.items()}
        draw = tf.cast(labels[DRAW if self.mode == "split" else BATCH_DRAW], tf.float32)
        total = sum(self.weights_by_task.values())
        out, lo = {}, 0.0
        names = list(self.weights_by_task)
        for j, t in enumerate(names):
            hi = lo + self.weights_by_task[t] / total
            upper = draw < hi if j < len(names) - 1 else tf.ones_like(draw, tf.bool)   # rounding: 1.0 ends it
            out[t] = tf.cast(tf.logical_and(draw >= lo, upper), tf.float32)
            lo = hi
        return out

    def per_example(self, outputs, labels):
        coef = self.task_coefficients(labels)
        total = 0.0
        metrics = {}
        for t, head in self.heads.items():
            loss, m = head.per_example(task_part(outputs, t), task_part(labels, t))
            total += coef[t] * loss
            metrics[f"{t}{SEP}loss"] = loss
            metrics.update({f"{t}{SEP}{k}": v for k, v in m.items()})
            if self.mode != "sum":
                metrics[f"{t}{SEP}share"] = coef[t]
        return total, metrics


class _Untracked:
    """Holds a value Keras's attribute tracking does not look into."""

    def __init__(self, value):
        self.value = value


def _stateless(method: Method) -> bool:
    cls = type(method)
    return cls.after_step is Method.after_step and cls.replica_step is Method.replica_step


@register("method", "multitask", MultitaskParams)
def build_multitask(p: MultitaskParams, encoder: keras.Model, pretext, *,
                    facts: DatasetFacts = NO_FACTS) -> MultitaskMethod:
    tasks = getattr(pretext, "tasks", None)
    if not isinstance(tasks, dict):
        raise ValueError(f"method 'multitask' needs the 'multitask' pretext (its tasks' views "
                         f"namespaced), got views {pretext.view_names}")
    by_task = {h.task: (i, h) for i, h in enumerate(p.tasks)}
    extra = [f"method.tasks[{i}].task: {t!r}" for t, (i, _) in by_task.items() if t not in tasks]
    missing = [t for t in tasks if t not in by_task]
    if extra or missing:
        raise ValueError("method 'multitask' needs one head per pretext task "
                         f"(pretext.tasks: {list(tasks)}): " +
                         "; ".join(extra + ([f"no head for {missing}"] if missing else [])))
    inputs = dict(zip(pretext.view_names, view_inputs(pretext)))
    outputs, heads, weights = {}, {}, {}
    for t, task_pretext in tasks.items():
        i, h = by_task[t]
        try:
            head = registry.build("method", h.method, encoder, task_pretext, facts=facts)
        except ValueError as e:
            raise ValueError(f"method.tasks[{i}] ({t}, method {h.method.name!r}): {e}") from None
        if not _stateless(head):
            raise ValueError(f"method.tasks[{i}] ({t}): method {h.method.name!r} keeps state beyond its "
                             f"weights (a memory bank or a queue), which a multitask head does not carry")
        head.network.name = f"{t}_head"   # the heads' networks are layers of one model: unique names
        out = head.network([inputs[f"{t}{SEP}{v}"] for v in task_pretext.view_names])
        outputs.update({f"{t}{SEP}{k}": v for k, v in out.items()})
        heads[t], weights[t] = head, h.weight
    network = keras.Model(list(inputs.values()), outputs, name="multitask")
    return MultitaskMethod(encoder, network, heads, weights, p.mode, name="multitask")
