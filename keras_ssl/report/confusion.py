"""Confusion matrices of the pretext heads: which pseudo-labels the trained heads mix up.

The method is rebuilt from the run's config as the trainer builds it (a
:class:`keras_ssl.training.loop.Pretrainer`: encoder, method, optimizer and step
under one ``tf.train.Checkpoint``) and its latest checkpoint in ``RUN/checkpoints``
restored, so the heads are the trained ones. ``pairs`` pretext examples are drawn
by the run's own sampler through the training pipeline
(:func:`keras_ssl.data.pipeline.pretext_batches`: images uniformly with
replacement, transforms from stateless ops seeded by ``(seed, step)``) from the
images given (the validation split, or the evaluation set's test images), and
predicted in inference mode.

Contract: :func:`predict_heads` returns ``{head: HeadResult}`` for every
classification head (a target of the pretext that the method puts a softmax
head on, ``method.targets``), or raises :class:`NoHeads` saying why there are
none (contrastive, memory-bank and reconstruction methods). ``matrix[i, j]``
counts examples of true class i predicted j (``sklearn.metrics.confusion_matrix``
over every class of the head), so it sums to ``pairs`` and its trace over
``pairs`` is the head's accuracy on those examples.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_ssl.report.outputs import Outputs, pyplot
from keras_ssl.report.run import ReportError

#: Above this many classes the cells carry no numbers (jigsaw's permutations).
ANNOTATE_MAX = 20


class NoHeads(Exception):
    """The run's method has no classification heads; the message says why."""


@dataclass
class HeadResult:
    name: str
    classes: int
    true: np.ndarray        # int64 [pairs]
    pred: np.ndarray        # int64 [pairs]
    matrix: np.ndarray      # int64 [classes, classes]

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.matrix) / max(self.matrix.sum(), 1))


def confusion(true, pred, classes: int) -> np.ndarray:
    """``matrix[i, j]``: examples of class i predicted j, every class 0..classes-1 a row."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(true, pred, labels=np.arange(classes)).astype(np.int64)


def _trainer(cfg, run_dir: Path):
    """The pretext sampler and a Pretrainer of the run, its latest checkpoint restored."""
    import tensorflow as tf

    from keras_ssl import registry
    from keras_ssl.training.loop import Pretrainer

    shape = (cfg.data.image_size, cfg.data.image_size, cfg.data.channels)
    pretext = registry.build("pretext", cfg.pretext, shape)
    if not pretext.targets:
        raise NoHeads(f"pretext '{cfg.pretext.name}' has no classification targets "
                      f"(method '{cfg.method.name}' learns without class labels)")
    try:
        # The default strategy whatever the run trained with: the checkpoint restores the same.
        trainer = Pretrainer(cfg, run_dir, pretext, strategy=tf.distribute.get_strategy(), progress=False)
    except (ValueError, TypeError) as e:
        raise NoHeads(f"method '{cfg.method.name}' cannot be rebuilt without its training data ({e})") from None
    heads = getattr(trainer.method, "targets", None)
    if not isinstance(heads, dict) or not heads:
        raise NoHeads(f"method '{cfg.method.name}' has no classification heads")
    ckpt_dir = Path(run_dir) / "checkpoints"
    if not trainer.manager.latest_checkpoint:
        raise ReportError(f"{ckpt_dir}: no checkpoint to restore the trained pretext heads from")
    try:
        trainer.restore()
    except Exception as e:  # noqa: BLE001 - a checkpoint of another model, or corrupt
        first = (str(e).strip().splitlines() or [""])[0]
        raise ReportError(f"{trainer.manager.latest_checkpoint}: cannot restore ({type(e).__name__}: {first})") from None
    return pretext, trainer


def predict_heads(cfg, run_dir, images: np.ndarray, pairs: int, seed: int = 0,
                  batch: int = 500) -> dict[str, HeadResult]:
    """Every classification head's labels, predictions and confusion matrix on ``pairs``
    pretext examples of uint8 ``images`` [N, H, W, C] (seeded by ``seed``)."""
    import tensorflow as tf

    from keras_ssl.data.pipeline import pretext_batches

    if pairs < 1:
        raise ValueError(f"--pairs must be >= 1, got {pairs}")
    pretext, trainer = _trainer(cfg, run_dir)
    heads = {name: int(n) for name, n in trainer.method.targets.items()}
    batch = min(batch, pairs)
    steps = -(-pairs // batch)
    predict = tf.function(lambda views: trainer.method(views, training=False))
    true = {h: [] for h in heads}
    pred = {h: [] for h in heads}
    for views, labels in pretext_batches(images, pretext, batch, seed, 0, steps):
        outputs = predict(views)
        for h in heads:
            true[h].append(labels[h].numpy().astype(np.int64))
            pred[h].append(np.argmax(outputs[h].numpy(), axis=-1).astype(np.int64))
    out = {}
    for h, n in heads.items():
        t, p = np.concatenate(true[h])[:pairs], np.concatenate(pred[h])[:pairs]
        out[h] = HeadResult(h, n, t, p, confusion(t, p, n))
    return out


def plot_confusion(head: HeadResult, path: Path, title: str, outputs: Outputs, source: str) -> Path:
    """The head's confusion matrix (counts; rows = true class) as a PNG."""
    plt = pyplot()
    m, n = head.matrix, head.classes
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(m, cmap="Blues", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="examples")
    if n <= ANNOTATE_MAX:
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.tick_params(labelsize=7 if n > 10 else 9)
        hi = m.max() if m.size else 0
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=6 if n > 10 else 8,
                            color="white" if m[i, j] > hi / 2 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}\nhead '{head.name}': {m.sum()} examples, accuracy {head.accuracy:.3f}", fontsize=10)
    fig.tight_layout()
    return outputs.save_figure(fig, path, f"confusion matrix of pretext head '{head.name}' "
                                          f"({m.sum()} examples from {source}; accuracy {head.accuracy:.3f})")
