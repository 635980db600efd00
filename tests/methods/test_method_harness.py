"""The harness every registered method passes, with no test of its own.

Parametrised over ``registry.names("method")``, so a new method is picked up as
soon as it registers; :data:`CASES` gives it a compatible pretext, settings for
a tiny run and the outputs that pretext implies, and
``test_every_registered_method_has_a_case`` fails until that row is written.

For each method, one tiny run through the Pretrainer (a 2-block convnet, one
chunk of 2 steps of 8 synthetic images, SGD without weight decay) and:

(a) the network's outputs have the shapes the pretext's targets / views imply,
    and the loss and metrics are one finite value per example;
(b) the steps give a finite loss and change every trainable weight: the loss's
    gradient reaches the encoder and every head (no weight decay, so a weight
    moves only if the loss depends on it);
(c) the trained encoder saved as ``.keras`` and loaded with
    ``keras.models.load_model`` gives the same features as before saving, and
    not those of the untrained encoder (the weights travel).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import pytest

import keras_ssl.encoders  # noqa: F401  (registers the project's layers for load_model)
from keras_ssl import registry
from support import TINY_CONVNET, as_float, sample, small_cfg, synthetic_digits, trainer, weights

N_IMAGES = 32
BATCH = 8


@dataclass(frozen=True)
class Case:
    """How the harness runs one method."""
    pretext: dict          # a compatible pretext's config section
    method: dict           # the method's settings for a tiny run (its other params: defaults)
    outputs: Callable      # (pretext, method params) -> {output name: shape after the batch dim}
    data: dict = None      # the data section (None: 28x28x1 images; colour methods: channels 3)
    encoder: dict = None   # the encoder section (None: support.TINY_CONVNET)


#: method -> its harness case. A new method gets a row here (the table must be complete).
CASES = {
    "classify": Case({"name": "rotation"}, {"hidden": 16},
                     lambda pre, p: {t: (n,) for t, n in pre.targets.items()}),
    "contrastive": Case({"name": "sfa_pairs"}, {"hidden": 16, "embedding": 8},
                        lambda pre, p: {v: (p.embedding,) for v in pre.view_names}),
    "autoencoder": Case({"name": "reconstruction"}, {"channels": 8},
                        lambda pre, p: {"reconstruction": tuple(pre.view_shape)}),
    "inpainting": Case({"name": "inpainting", "mask": "random_blocks"}, {"channels": 8},
                       lambda pre, p: {"reconstruction": tuple(pre.view_shape)}),
    "npid": Case({"name": "augment"}, {"negatives": 16, "embedding": 16},
                 lambda pre, p: {"embedding": (p.embedding,)}),
    # PIRL's jigsaw transform on a 2x2 grid: four tiles, and no 4 s search for 100 permutations
    "pirl": Case({"name": "pirl", "transform": {"name": "jigsaw", "grid": 2, "region_px": 20,
                                                "tile_px": 8, "permutations": 6}},
                 {"negatives": 16, "embedding": 16},
                 lambda pre, p: {"image": (p.embedding,), "transformed": (p.embedding,)}),
    # rotation + a 2x2 jigsaw of 6 permutations, one classify head each, losses summed
    "multitask": Case({"name": "multitask", "tasks": ["rotation", {"name": "jigsaw", "grid": 2, "region_px": 20,
                                                                   "tile_px": 8, "permutations": 6}]},
                      {"tasks": [{"task": "rotation", "method": {"name": "classify", "hidden": 16}},
                                 {"task": "jigsaw", "method": {"name": "classify", "hidden": 16}, "weight": 0.5}]},
                      lambda pre, p: {t: (n,) for t, n in pre.targets.items()}),
    # a queue of 20 keys: the 2 steps of 8 keys wrap it
    "moco": Case({"name": "augment", "views": 2}, {"embedding": 16, "head_hidden": 16, "queue_size": 20,
                                                   "momentum": 0.9},
                 lambda pre, p: {"query": (p.embedding,), "key": (p.embedding,)}),
    # 4 clusters of the 32 images, reclustered before step 1 (the 2 steps end before the next)
    "deepcluster": Case({"name": "augment"}, {"clusters": 4, "pca_dim": 4},
                        lambda pre, p: {"logits": (p.clusters,)}),
    # RGB images (28x28x3): the pretext's views are L; targets on the 7x7 grid of stride 4
    "colorization": Case({"name": "colorization"}, {"channels": 8},
                         lambda pre, p: {"ab_logits": (7, 7, 262)}, data={"channels": 3}),
    # the channel_split encoder of two tiny convnets, one on L, one on ab
    "split_brain": Case({"name": "split_brain"}, {"channels": 8, "l_bins": 10},
                        lambda pre, p: {"ab_logits": (7, 7, 262), "L_logits": (7, 7, p.l_bins)},
                        data={"channels": 3}, encoder={"name": "channel_split", "encoder": TINY_CONVNET}),
}

METHODS = registry.names("method")


def test_every_registered_method_has_a_case():
    missing = sorted(set(METHODS) - set(CASES))
    assert not missing, f"registered methods without a harness case in CASES: {missing}"
    assert sorted(CASES) == METHODS, f"CASES rows for unregistered methods: {sorted(set(CASES) - set(METHODS))}"


@dataclass
class Run:
    trainer: object
    before: list           # trainable weights before the steps
    features_before: np.ndarray
    summary: dict
    x: object              # float images [N, 28, 28, C] (C: the case's data.channels)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """method name -> its tiny run, trained once per module."""
    done = {}

    def get(name) -> Run:
        if name not in done:
            case = CASES[name]
            cfg = small_cfg({"name": name, **case.method}, case.pretext, seed=1, batch_size=BATCH,
                            steps=2, steps_per_execution=2, checkpoint_every=2, log_every=2,
                            sample_examples=0, weight_decay=0.0, data=case.data, encoder=case.encoder)
            images, _ = synthetic_digits(N_IMAGES, channels=cfg.data.channels)
            x = as_float(images)
            t = trainer(cfg, tmp_path_factory.mktemp(name), num_images=N_IMAGES)
            before, features = weights(t), t.encoder(x, training=False).numpy()
            done[name] = Run(t, before, features, t.train(images), x)
        return done[name]

    return get


@pytest.mark.parametrize("name", METHODS)
def test_outputs_have_the_shapes_the_pretext_implies(runs, name):
    run = runs(name)
    t, pre = run.trainer, run.trainer.pretext
    expected = CASES[name].outputs(pre, t.cfg.method.params)
    views, labels = sample(pre, run.x[:BATCH])
    assert set(views) == set(pre.view_names)
    assert all(tuple(views[v].shape) == (BATCH, *pre.view_shape) for v in pre.view_names)
    assert set(labels) >= set(pre.targets)
    outputs = t.method(views, training=False)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {k: (BATCH, *s) for k, s in expected.items()}
    loss, metrics = t.method.per_example(outputs, labels)
    assert tuple(loss.shape) == (BATCH,) and np.all(np.isfinite(loss.numpy()))
    assert metrics and all(tuple(m.shape) == (BATCH,) for m in metrics.values()), metrics


@pytest.mark.parametrize("name", METHODS)
def test_steps_give_a_finite_loss_and_change_every_weight(runs, name):
    run = runs(name)
    assert run.summary["start_step"] == 0 and int(run.trainer.step.numpy()) == 2
    assert np.isfinite(run.summary["final"]["loss"])
    variables = run.trainer.method.trainable_weights
    assert len(variables) == len(run.before) and len(variables) > len(run.trainer.encoder.trainable_weights)
    unchanged = [v.path for v, w0 in zip(variables, run.before) if np.array_equal(v.numpy(), w0)]
    assert not unchanged, f"weights the steps did not change: {unchanged}"
    assert all(np.all(np.isfinite(v.numpy())) for v in variables)


@pytest.mark.parametrize("name", METHODS)
def test_encoder_save_load_round_trip(runs, name, tmp_path):
    run = runs(name)
    encoder = run.trainer.encoder
    path = tmp_path / "encoder.keras"
    encoder.save(path)
    loaded = keras.models.load_model(path)
    got = np.asarray(loaded(run.x, training=False))
    np.testing.assert_allclose(got, encoder(run.x, training=False).numpy(), rtol=1e-5, atol=1e-6)
    assert got.shape == run.features_before.shape
    assert not np.allclose(got, run.features_before, rtol=1e-4, atol=1e-6), "the untrained encoder's features"
