"""Few-label evaluation of an encoder (the thesis protocol, plus probes).

For every label count n and seed s, a class-stratified subset of n labeled
training images (seeded by (n, s), :mod:`.subsets`) is drawn from the
training set minus the validation split, and these are trained on it and
scored on the test set (``eval.split: "test"``, the report, once) or on the
validation split (``"validation"``, every choice between variants; the same
subsets either way):

- ``frozen_mlp``: the encoder frozen, its features fed to a head dense 500,
  ReLU, dropout, dense K (thesis protocol: 4,000 iterations, SGD lr 0.01,
  momentum 0.9, batch 125, weight decay 5e-4);
- ``random_frozen``: ``frozen_mlp`` on a freshly initialised encoder (what the
  head gets from the architecture alone, the floor pretraining must clear);
- ``linear:<layer>``: softmax regression on each tapped layer's features;
- ``random_linear:<layer>``: the same on the random encoder of ``random_frozen`` (the
  same weights), the floor of each layer's probe (``eval.random_linear``);
- ``knn``: k-nearest neighbours (cosine) on the final features;
- ``scratch``: the same classifier with a freshly initialised encoder, every
  layer trained, for ``scratch_steps`` (>= ``head_steps``) iterations;
- ``finetune``: the same, but the encoder starts from the evaluated encoder's
  weights (the fair alternative to freezing it: same head init, same budget).

K, the number of classes, is taken from the training labels (:func:`.subsets.class_count`).

Contracts:

- A protocol is a function ``(SubsetContext) -> {(row method, protocol): accuracy}``
  listed in :data:`PROTOCOLS` with the predicate on the eval config that
  enables it. Rows measuring the evaluated encoder are named
  ``SubsetContext.encoder_label``; baselines name their own (``random``,
  ``scratch``).
- Reproducibility: each protocol reseeds Keras with ``subset_seed(n, s)``
  before it builds a model and trains with stateless ops seeded by ``s``, so
  the same encoder, data, config and seeds give the same numbers, and
  turning a protocol off changes none of the others' (both checked in
  tests/evaluation/test_evaluate.py). The table's order is the rows' order.
- ``results["protocol_seconds"]``: the wall time of each enabled protocol over all
  subsets (where the evaluation's time goes; the features of the scored images are
  computed once per encoder, the subset's once per subset, shared by every protocol).
- A classifier that did not train is flagged, not hidden: when a trained classifier
  predicts one class for every scored image (scored images of several classes), its
  score is a :class:`Score` with ``collapsed`` set, and the row's ``collapsed_seeds``
  lists those seeds (its mean still counts them; ``results.md`` marks the cell and gives
  the mean without them). kNN trains nothing and is never flagged.
- Nothing looks at the test set before scoring: step counts and
  hyperparameters are fixed by the config, and each model is scored once.
  ``results["protocol"]`` records what identifies the labeled subsets
  (``validation_seed``, ``validation_images``, ``labeled_pool``, ``split``,
  the scored images) so that two runs are compared only on the same ones.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping

import keras
import numpy as np

from keras_ssl.config import EvalConfig
from keras_ssl.data import split_validation
from keras_ssl.data.core import ImageSet
from keras_ssl.data.pipeline import to_float
from keras_ssl.encoders import tap_outputs
from keras_ssl.evaluation import classifier
from keras_ssl.evaluation.classifier import predict, train_classifier
from keras_ssl.evaluation.features import encode, knn_accuracy
from keras_ssl.evaluation.subsets import class_count, labeled_subset, subset_seed

#: The final features' tap: always evaluated, always last in ``SubsetContext.features``.
FINAL = "features"


@dataclass(frozen=True)
class Score:
    """A trained classifier's accuracy on the scored images; ``collapsed``: it predicted
    one class for all of them (they hold several): it did not train (a learning rate too
    high for the features' scale, dead units), so its accuracy is the class's share."""
    accuracy: float
    collapsed: bool = False

    @classmethod
    def of(cls, predicted: np.ndarray, labels: np.ndarray) -> "Score":
        labels = np.asarray(labels)
        collapsed = len(np.unique(predicted)) == 1 and len(np.unique(labels)) > 1
        return cls(float(np.mean(predicted == labels)), bool(collapsed))


@dataclass(frozen=True)
class SubsetContext:
    """What every protocol reads for one (label count, seed); built once, never changed.

    ``features`` / ``test_features``: tap name -> the frozen encoder's features of
    ``subset`` / ``test`` at that tap, in tap order, the final features (:data:`FINAL`) last.
    ``test``: the scored images (the test set, or the validation split: ``eval.split``).
    """
    labels: int                                # n, the label count
    seed: int                                  # s, the evaluation seed
    subset: ImageSet                           # the n labeled training images
    features: Mapping[str, np.ndarray]
    test_features: Mapping[str, np.ndarray]
    test: ImageSet
    eval_cfg: EvalConfig
    num_classes: int
    new_encoder: Callable[[], keras.Model]     # a freshly initialised encoder per call
    encoder_label: str                         # the row method of the evaluated encoder
    encoder: keras.Model                       # the evaluated encoder (never trained here)
    _random: dict = field(default_factory=dict, repr=False)   # random_features()' cache

    def random_features(self) -> tuple[dict, dict]:
        """The random encoder's features of ``subset`` and ``test`` (tap name -> array):
        a fresh encoder built after :meth:`reseed`, so its weights are those of (n, s);
        at every tap of ``features`` when ``eval.random_linear`` probes them, else the
        final features alone. Built and encoded once per subset, shared by
        ``random_frozen`` and ``random_linear``."""
        if not self._random:
            self.reseed()
            layers = list(self.features) if self.eval_cfg.random_linear else [FINAL]
            model = tap_outputs(self.new_encoder(), layers)
            self._random["train"] = dict(zip(layers, encode(model, self.subset.images)))
            self._random["test"] = dict(zip(layers, encode(model, self.test.images)))
        return self._random["train"], self._random["test"]

    def reseed(self) -> None:
        """Keras's seed for the next model built (its initial weights, its dropout)."""
        keras.utils.set_random_seed(subset_seed(self.labels, self.seed))

    def fit_and_score(self, model: keras.Model, x_train, x_test, steps: int,
                      learning_rate: float | None = None) -> Score:
        """Train ``model`` on (``x_train``, subset labels) with the head's optimiser
        settings (``learning_rate``: another rate) for ``steps``; its :class:`Score` on
        (``x_test``, test labels)."""
        e = self.eval_cfg
        train_classifier(model, x_train, self.subset.labels, steps, e.head_batch_size,
                         learning_rate or e.head_learning_rate, e.head_momentum, e.head_weight_decay, self.seed)
        return Score.of(predict(model, x_test), self.test.labels)

    def head(self, in_dim: int, *, hidden: int, dropout: float, name: str = "head") -> keras.Model:
        """A fresh head for this subset: reseeds first, so its weights are those of (n, s)."""
        self.reseed()
        return classifier.mlp_head(in_dim, hidden, dropout, num_classes=self.num_classes, name=name)


#: (row method, protocol) -> accuracy (a float: nothing trained) or a trained classifier's Score.
Scores = dict[tuple[str, str], "float | Score"]


def _frozen_head_score(ctx: SubsetContext, train_f: np.ndarray, test_f: np.ndarray) -> Score:
    """The thesis head trained on frozen features ``train_f``, scored on ``test_f``."""
    e = ctx.eval_cfg
    head = ctx.head(train_f.shape[1], hidden=e.head_hidden, dropout=e.head_dropout)
    return ctx.fit_and_score(head, train_f, test_f, e.head_steps)


def frozen_mlp(ctx: SubsetContext) -> Scores:
    """The thesis protocol: the head on the evaluated encoder's frozen final features."""
    acc = _frozen_head_score(ctx, ctx.features[FINAL], ctx.test_features[FINAL])
    return {(ctx.encoder_label, "frozen_mlp"): acc}


def random_frozen(ctx: SubsetContext) -> Scores:
    """The thesis protocol on a freshly initialised encoder: the architecture's floor."""
    f_tr, f_te = ctx.random_features()
    return {("random", "random_frozen"): _frozen_head_score(ctx, f_tr[FINAL], f_te[FINAL])}


def linear_per_layer(ctx: SubsetContext) -> Scores:
    """Softmax regression on each tap's frozen features, in tap order."""
    out = {}
    for layer, f_tr in ctx.features.items():
        lin = ctx.head(f_tr.shape[1], hidden=0, dropout=0.0, name="linear")
        out[(ctx.encoder_label, f"linear:{layer}")] = ctx.fit_and_score(
            lin, f_tr, ctx.test_features[layer], ctx.eval_cfg.linear_probe_steps)
    return out


def random_linear(ctx: SubsetContext) -> Scores:
    """``linear:<layer>`` on ``random_frozen``'s freshly initialised encoder (the same one,
    :meth:`SubsetContext.random_features`): what each layer's probe gets from the
    architecture alone."""
    f_tr, f_te = ctx.random_features()
    out = {}
    for layer in ctx.features:         # the evaluated encoder's taps, then the final features
        lin = ctx.head(f_tr[layer].shape[1], hidden=0, dropout=0.0, name="linear")
        out[("random", f"random_linear:{layer}")] = ctx.fit_and_score(
            lin, f_tr[layer], f_te[layer], ctx.eval_cfg.linear_probe_steps)
    return out


def knn(ctx: SubsetContext) -> Scores:
    """k nearest labeled neighbours (cosine) on the final features; nothing trained."""
    acc = knn_accuracy(ctx.features[FINAL], ctx.subset.labels, ctx.test_features[FINAL],
                       ctx.test.labels, ctx.eval_cfg.knn_k, num_classes=ctx.num_classes)
    return {(ctx.encoder_label, "knn"): acc}


def _train_all(ctx: SubsetContext, init_from: keras.Model | None) -> Score:
    """Encoder + thesis head trained together on the images for ``scratch_steps``; the
    encoder freshly initialised, or a copy of ``init_from``'s weights (the head is fresh
    and the same in both: one seed, drawn in the same order)."""
    e = ctx.eval_cfg
    ctx.reseed()    # one seed for encoder and head, drawn in this order
    enc = ctx.new_encoder()
    if init_from is not None:
        enc.set_weights(init_from.get_weights())
    head = classifier.mlp_head(enc.output.shape[-1], e.head_hidden, e.head_dropout,
                                num_classes=ctx.num_classes)
    x_in = keras.Input(enc.input.shape[1:], name="images")
    clf = keras.Model(x_in, head(enc(x_in)), name="scratch")
    return ctx.fit_and_score(clf, to_float(ctx.subset.images), to_float(ctx.test.images).numpy(),
                             e.scratch_steps, e.scratch_learning_rate)


def scratch(ctx: SubsetContext) -> Scores:
    """Encoder + thesis head, both freshly initialised and trained on the images."""
    return {("scratch", "scratch"): _train_all(ctx, None)}


def finetune(ctx: SubsetContext) -> Scores:
    """The evaluated encoder as the initialisation, then all layers trained as ``scratch``."""
    return {(ctx.encoder_label, "finetune"): _train_all(ctx, ctx.encoder)}


#: The protocols in the order they run for each subset: name -> (function, enabled?).
#: The order is that of results.json's rows (and the order the protocol always ran in).
PROTOCOLS: dict[str, tuple[Callable[[SubsetContext], Scores], Callable[[EvalConfig], bool]]] = {
    "frozen_mlp": (frozen_mlp, lambda e: True),
    "random_frozen": (random_frozen, lambda e: e.random_frozen),
    "linear": (linear_per_layer, lambda e: e.linear_probe),
    "random_linear": (random_linear, lambda e: e.random_linear),
    "knn": (knn, lambda e: e.knn),
    "scratch": (scratch, lambda e: e.scratch),
    "finetune": (finetune, lambda e: e.finetune),
}


def evaluate_encoder(encoder: keras.Model, new_encoder: Callable[[], keras.Model], eval_cfg: EvalConfig,
                     train: ImageSet, test: ImageSet, *, validation_images: int, seed: int,
                     encoder_label: str, progress: bool = True, datasets: Mapping[str, str] = {}) -> dict:
    """Run the few-label protocol; returns the ``results.json`` document.

    ``encoder_label`` names the rows that measure ``encoder`` (the job passes the
    pretext's name); ``new_encoder`` builds a freshly initialised encoder of the
    same architecture for the baselines; ``datasets`` (``dataset``, ``eval_dataset``)
    are recorded in the protocol. ``eval_cfg.split`` picks what is scored: ``test``
    (first ``max_test_images``) or the validation split of ``train``.
    """
    from tqdm.auto import tqdm

    e = eval_cfg
    num_classes = class_count(train.labels, test.labels)
    pool, val = split_validation(train, validation_images, seed)
    if e.max_test_images:
        test = test.take(np.arange(min(e.max_test_images, len(test))))
    test_images = len(test)
    if e.split == "validation":
        if len(val) == 0:
            raise ValueError("eval.split 'validation' needs data.validation_images > 0")
        test = val
    taps = list(getattr(encoder, "taps", ()) or ())
    taps = [t for t in taps if t != FINAL] if e.linear_probe else []
    probe_model = tap_outputs(encoder, taps + [FINAL])
    test_feats = dict(zip(taps + [FINAL], encode(probe_model, test.images)))
    enabled = [(name, fn) for name, (fn, on) in PROTOCOLS.items() if on(e)]
    spent = {name: 0.0 for name, _ in enabled}     # seconds per protocol, over all subsets

    counts = tuple(k * num_classes for k in e.per_class) if e.per_class else tuple(e.label_counts)
    tasks = [(n, s) for n in counts for s in e.seeds]
    runs: dict[tuple, list] = {}
    collapsed: dict[tuple, list] = {}     # row key -> seeds whose classifier predicted one class
    t0 = time.perf_counter()
    bar = tqdm(tasks, desc="evaluate", unit="subset", disable=not progress, dynamic_ncols=True)
    for n, s in bar:
        bar.set_postfix(labels=n, seed=s)
        sub = labeled_subset(pool, n, s)
        ctx = SubsetContext(labels=n, seed=s, subset=sub,
                            features=dict(zip(taps + [FINAL], encode(probe_model, sub.images))),
                            test_features=test_feats, test=test, eval_cfg=e, num_classes=num_classes,
                            new_encoder=new_encoder, encoder_label=encoder_label, encoder=encoder)
        for protocol_name, protocol in enabled:
            t_p = time.perf_counter()
            for (method, name), score in protocol(ctx).items():
                score = score if isinstance(score, Score) else Score(float(score))
                runs.setdefault((method, name, n), []).append(score.accuracy)
                if score.collapsed:
                    collapsed.setdefault((method, name, n), []).append(s)
            spent[protocol_name] += time.perf_counter() - t_p
    bar.close()
    rows = [{"method": method, "protocol": protocol, "labels": n,
             "mean": float(np.mean(vals)), "std": float(np.std(vals)), "values": [float(v) for v in vals],
             "collapsed_seeds": collapsed.get((method, protocol, n), [])}
            for (method, protocol, n), vals in runs.items()]
    return {"split": e.split,
            "protocol": {**asdict(e), "label_counts": list(counts), "per_class": list(e.per_class),
                         "num_classes": num_classes, "seeds": list(e.seeds),
                         **dict(datasets), "validation_seed": seed, "test_images": test_images,
                         "scored_images": len(test), "labeled_pool": len(pool),
                         "validation_images": validation_images,
                         "subset_seeds": {f"{n}/{s}": subset_seed(n, s) for n, s in tasks}},
            "rows": rows, "seconds": time.perf_counter() - t0,
            "protocol_seconds": {k: round(v, 3) for k, v in spent.items()}}
