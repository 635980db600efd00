"""The encoder's final features of test images, and their t-SNE map coloured by class.

Contract: :func:`final_features` -> float32 [N, D], the encoder's output
(``features``) in inference mode, flattened, one row per image in order
(:func:`keras_ssl.evaluation.features.encode`); :func:`tsne_points` -> float
[N, 2], ``sklearn.manifold.TSNE`` with a fixed ``random_state`` and PCA
initialisation (same features and seed, same map), perplexity capped below
N / 3 for small N; :func:`plot_tsne` draws one colour per class with a legend.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_ssl.report.outputs import Outputs, pyplot

PERPLEXITY = 30.0


def first_images(images: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images and labels (all when fewer)."""
    n = min(int(n), len(images))
    return images[:n], np.asarray(labels[:n], np.int64)


def final_features(encoder, images: np.ndarray) -> np.ndarray:
    """The encoder's final features of uint8 ``images``: float32 [N, D]."""
    from keras_ssl.evaluation.features import encode

    feats = encode(encoder, images)[-1]
    return np.asarray(feats, np.float32).reshape(len(images), -1)


def tsne_points(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE map of ``features`` [N, D] (N >= 2)."""
    from sklearn.manifold import TSNE

    n = len(features)
    if n < 2:
        raise ValueError(f"t-SNE needs at least 2 images, got {n}")
    perplexity = min(PERPLEXITY, max(1.0, (n - 1) / 3.0))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed)
    return tsne.fit_transform(np.asarray(features, np.float64))


def plot_tsne(points: np.ndarray, labels: np.ndarray, path: Path, title: str, outputs: Outputs,
              source: str) -> Path:
    """Scatter of ``points`` [N, 2], one colour and legend entry per class."""
    plt = pyplot()
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    size = 8 if len(points) > 1000 else 14
    for i, c in enumerate(classes):
        sel = labels == c
        ax.scatter(points[sel, 0], points[sel, 1], s=size, alpha=0.75, color=cmap(i % cmap.N),
                   label=str(c), linewidths=0)
    ax.legend(title="class", fontsize=8, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return outputs.save_figure(fig, path, f"t-SNE of the final features of {len(points)} {source}, "
                                          f"coloured by class")
