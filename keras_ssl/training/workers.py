"""This process's place in a cluster of workers, read from ``TF_CONFIG``.

``TF_CONFIG`` is how TensorFlow clusters are configured everywhere (Kubernetes
operators, Vertex AI, by hand): a JSON object with ``cluster`` (task type -> list
of ``host:port``) and ``task`` (this process's ``type`` and ``index``)::

    {"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
     "task": {"type": "worker", "index": 0}}

The chief is the ``chief`` task if the cluster has one, else worker 0 (TensorFlow's
own rule). Only the chief writes the run directory; the other workers write their
checkpoints and logs to a temporary directory of their own, removed at the end
(TensorFlow's multi-worker guide), and restore from the chief's checkpoints, so
the run directory must be on a filesystem every worker sees to resume.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Mapping, Optional

from keras_ssl.config import ConfigError

#: The task types that train (a ``ps`` or ``evaluator`` task is not one of ours).
TRAINING_TASKS = ("chief", "worker")


@dataclass(frozen=True)
class Role:
    """``task_type`` and ``task_id`` of this process among ``num_workers`` training
    tasks (one process: ``("", 0, 1)``)."""
    task_type: str = ""
    task_id: int = 0
    num_workers: int = 1
    has_chief_task: bool = False

    @property
    def is_chief(self) -> bool:
        if not self.task_type:
            return True
        return self.task_type == "chief" if self.has_chief_task else self.task_id == 0

    @property
    def name(self) -> str:
        return f"{self.task_type}{self.task_id}" if self.task_type else "single"


def read_tf_config(environ: Mapping[str, str] = os.environ) -> Optional[dict]:
    """The parsed ``TF_CONFIG`` (None when unset or empty); ConfigError naming the
    variable and the field for one TensorFlow would misread."""
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"TF_CONFIG is not JSON: {e.msg} at character {e.pos}") from None
    if not isinstance(doc, dict):
        raise ConfigError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    cluster, task = doc.get("cluster"), doc.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ConfigError("TF_CONFIG.cluster must map task types to lists of 'host:port'")
    for kind, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise ConfigError(f"TF_CONFIG.cluster.{kind} must be a list of 'host:port' strings, got {addresses!r}")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ConfigError("TF_CONFIG.task must be {\"type\": ..., \"index\": ...}")
    kind, index = task["type"], task["index"]
    if kind not in cluster:
        raise ConfigError(f"TF_CONFIG.task.type {kind!r} is not a task type of TF_CONFIG.cluster "
                          f"({', '.join(sorted(cluster))})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[kind]):
        raise ConfigError(f"TF_CONFIG.task.index must be 0..{len(cluster[kind]) - 1} for "
                          f"{len(cluster[kind])} {kind} task(s), got {index!r}")
    if kind not in TRAINING_TASKS:
        raise ConfigError(f"TF_CONFIG.task.type {kind!r}: keras_ssl trains on 'chief' and 'worker' tasks only")
    if len(cluster.get("chief", [])) > 1:
        raise ConfigError(f"TF_CONFIG.cluster.chief must list one address, got {len(cluster['chief'])}")
    return doc


def role(environ: Mapping[str, str] = os.environ) -> Role:
    """This process's :class:`Role` from ``TF_CONFIG`` (one process without it)."""
    doc = read_tf_config(environ)
    if doc is None:
        return Role()
    cluster = doc["cluster"]
    return Role(task_type=doc["task"]["type"], task_id=doc["task"]["index"],
                num_workers=sum(len(cluster.get(k, [])) for k in TRAINING_TASKS),
                has_chief_task="chief" in cluster)


def wants_multi_worker(strategy: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``train.strategy`` means MultiWorkerMirroredStrategy here: ``multi_worker``,
    or ``auto`` with a ``TF_CONFIG`` of more than one training task."""
    if strategy == "multi_worker":
        return True
    return strategy == "auto" and role(environ).num_workers > 1
