"""Training curves: every scalar the trainer logged to ``RUN/tb/pretrain``, against step.

The loop (:func:`keras_ssl.training.loop.write_scalars`) logs, every
``train.log_every`` steps, the loss, each head's accuracy (``<head>_acc``),
``examples_per_s`` and ``learning_rate``, and every ``train.monitor_every``
steps ``knn_val``. TF2 summaries are tensor events of the ``scalars`` plugin;
older ``simple_value`` scalars are read too. A resumed run's event files hold
each step once per write; the last write of a step wins.

Contract: :func:`read_scalars` -> tag -> (steps int64 [n], values float64 [n]),
steps ascending; :func:`plot_curves` draws one panel per tag (in the order
logged) in a grid of :data:`COLUMNS` columns, each panel :data:`PANEL` inches
at :data:`DPI`, so the PNG is ``(cols * PANEL[0] * DPI, rows * PANEL[1] * DPI)``
pixels (:func:`figure_pixels`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from keras_ssl.report.outputs import Outputs, pyplot

COLUMNS = 3
PANEL = (4.0, 3.0)      # inches per panel
DPI = 100


def read_scalars(logdir) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar series in the event files of ``logdir`` (empty when there are none)."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    logdir = Path(logdir)
    if not logdir.is_dir():
        return {}
    acc = ea.EventAccumulator(str(logdir), size_guidance={ea.TENSORS: 0, ea.SCALARS: 0})
    acc.Reload()
    tags = acc.Tags()
    series: dict[str, dict[int, float]] = {}
    for tag in tags.get("tensors", []):
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue        # images, text
        for ev in acc.Tensors(tag):
            value = tensor_util.make_ndarray(ev.tensor_proto)
            if value.size == 1:
                series.setdefault(tag, {})[int(ev.step)] = float(value.reshape(()))
    for tag in tags.get("scalars", []):
        for ev in acc.Scalars(tag):
            series.setdefault(tag, {})[int(ev.step)] = float(ev.value)
    out = {}
    for tag, by_step in series.items():
        steps = np.array(sorted(by_step), np.int64)
        out[tag] = (steps, np.array([by_step[s] for s in steps], np.float64))
    return out


def grid(n: int) -> tuple[int, int]:
    """(rows, columns) of ``n`` panels."""
    cols = min(COLUMNS, max(n, 1))
    return math.ceil(max(n, 1) / cols), cols


def figure_pixels(n: int) -> tuple[int, int]:
    """(width, height) in pixels of the curves PNG with ``n`` panels."""
    rows, cols = grid(n)
    return round(cols * PANEL[0] * DPI), round(rows * PANEL[1] * DPI)


def plot_curves(scalars: dict, path: Path, title: str, outputs: Outputs) -> list[str]:
    """One panel per series of ``scalars``; returns the tags drawn, in panel order."""
    plt = pyplot()
    tags = list(scalars)
    rows, cols = grid(len(tags))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * PANEL[0], rows * PANEL[1]), squeeze=False)
    for ax, tag in zip(axes.flat, tags):
        steps, values = scalars[tag]
        ax.plot(steps, values, marker="." if len(steps) < 50 else None, linewidth=1.2)
        ax.set_title(tag, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(True, alpha=0.3)
        if tag == "learning_rate" and values.min() > 0 and values.max() / values.min() > 10:
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(tags):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    outputs.save_figure(fig, path, f"{title}: {', '.join(tags)} against step (from tb/pretrain)", dpi=DPI)
    return tags
