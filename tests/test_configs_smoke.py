"""Every shipped config under configs/, found by glob: its ``--smoke`` job
(pretrain, few-label evaluation, results, export) and what its numbers promise.

A new experiment config is run without editing this file. Tuning configs (those
with ``stages``) are run by tests/tuning; here their base must be a shipped
experiment config. A config whose smoke run another test already does with more
checks is listed in :data:`ELSEWHERE` (the default suite runs each smoke once);
one whose smoke run is slow, in :data:`SLOW`.
"""
import json
import os
from fnmatch import fnmatch
from pathlib import Path

import pytest
import tensorflow as tf

from keras_ssl import registry
from keras_ssl.config import load_config
from keras_ssl.methods.memory_bank import MemoryBankParams
from support import CONFIGS, ROOT, check_smoke_run, experiment_configs, is_selection_file, is_tune_config

#: config (path under configs/) -> the test that runs its --smoke job with every check
#: of :func:`support.check_smoke_run` and more (the CLI's output, resume, re-evaluation).
ELSEWHERE = {
    "mnist_egomotion.json": "tests/training/test_train_cli.py::test_main_config_smoke_end_to_end",
    # needs rendered data: the test renders a few frames and scenes first
    "drives_egomotion.json": "tests/pretext/test_odometry.py::test_drives_config_renders_trains_and_transfers_to_scenes",
    "drives_sfa_time.json": "tests/pretext/test_odometry.py::test_drives_config_renders_trains_and_transfers_to_scenes",
    "drives_shuffle_learn.json": "tests/pretext/test_odometry.py::test_drives_config_renders_trains_and_transfers_to_scenes",
    # the thesis's sizes on real KITTI and SUN397: their --smoke sizes on rendered data there
    "kitti_egomotion.json": "tests/pretext/test_odometry.py::test_drives_config_renders_trains_and_transfers_to_scenes",
    "kitti_sfa.json": "tests/pretext/test_odometry.py::test_drives_config_renders_trains_and_transfers_to_scenes",
    "kitti_shuffle_learn.json": "tests/pretext/test_odometry.py::test_drives_config_renders_trains_and_transfers_to_scenes",
}
#: pattern of paths under configs/ -> why their smoke runs are marked slow.
SLOW = {
    "mnist_jigsaw_ablation/*.json": "mnist_jigsaw with 10/100/1000 permutations: the same code as "
                                    "mnist_jigsaw (run by default), 10-25 s each",
    "mnist_egomotion_paper.json": "mnist_egomotion (run by default) with the BCNN's defaults (Caffe "
                                  "init, last-block features), which tests/encoders and tests/export "
                                  "build, save and export: ~7 s the default suite's budget has not",
    # Slow before the glob test too: their method, bank and checkpoint are covered in the
    # default run by tests/methods (harness; test_memory_bank: resume keeps the bank, PIRL
    # trains and logs); the whole job adds only the shared evaluation and export, ~14 s each.
    "mnist_npid.json": "NPID's whole job: method and bank covered by tests/methods, ~14 s",
    "mnist_pirl.json": "PIRL's whole job: method and bank covered by tests/methods, ~14 s",
    "mnist_pirl_rotation_jigsaw.json": "PIRL's whole job with the jigsaw + rotation set: the set's "
                                       "sampler and method covered by tests/pretext/test_pirl_transform_set.py, "
                                       "the harness and tests/methods/test_pirl.py, ~15 s",
    "mnist_moco.json": "MoCo's whole job: method, momentum weights and queue covered by "
                       "tests/methods (harness; test_moco: queue, momentum update, replicas, resume), ~15 s",
    "mnist_deepcluster.json": "DeepCluster's whole job (two reclusterings of the smoke's 512 images): "
                              "method, reclustering, head reset and checkpointed assignment covered by "
                              "tests/methods (harness; test_deepcluster: k-means, re-seeding, steps, "
                              "replicas, resume), ~15 s",
    # The colour jobs load and resize the skimage sources and estimate the bin distribution
    # before 8 steps: ~30 s each. In the default run: the methods (harness; test_colour_methods:
    # targets, rebalancing, the halves' inputs, short runs, the RGB-in encoder's baselines and
    # export), the data (tests/data/test_skimage_sets.py) and the conversion (tests/colour).
    "photos_*.json": "the colour jobs (skimage crops, colorization, split-brain), ~30 s each: "
                     "methods, data, baselines and export covered by the default run",
}


def _rel(path) -> str:
    return Path(path).relative_to(CONFIGS).as_posix()


def _params():
    for path in experiment_configs():
        rel = _rel(path)
        if rel in ELSEWHERE:
            continue
        slow = any(fnmatch(rel, pattern) for pattern in SLOW)
        yield pytest.param(rel, id=rel[:-len(".json")], marks=[pytest.mark.slow] if slow else [])


SMOKED = list(_params())


@pytest.mark.parametrize("rel", SMOKED)
def test_config_smoke_run(rel, tmp_path):
    """The whole --smoke job, as ``python -m keras_ssl.train --smoke`` runs it
    (3-8 s each on an idle 2-core machine)."""
    from keras_ssl.training.job import run

    cfg = load_config(CONFIGS / rel, smoke=True)
    run(cfg, tmp_path, progress=False, log=lambda *a: None)
    check_smoke_run(cfg, tmp_path)
    if cfg.pretext.name == "jigsaw":
        saved = json.loads((tmp_path / "pretext.json").read_text())
        assert saved["permutations"] == cfg.pretext.params.permutations
        assert (tmp_path / "permutations.json").is_file()
    if issubclass(registry.params_class("method", cfg.method.name), MemoryBankParams):
        names = [n for n, _ in tf.train.list_variables(str(tmp_path / "checkpoints"))]
        assert any(n.startswith("method/bank/entries") for n in names)      # the bank is checkpointed
    if cfg.method.name == "moco":                                          # momentum weights and queue too
        names = [n for n, _ in tf.train.list_variables(str(tmp_path / "checkpoints"))]
        assert any(n.startswith("method/momentum_encoder/weights/") for n in names)
        assert any(n.startswith("method/queue/keys") for n in names)
    if cfg.method.name == "deepcluster":                                   # the assignment too, reclustered
        names = [n for n, _ in tf.train.list_variables(str(tmp_path / "checkpoints"))]
        assert any(n.startswith("method/state/assignment") for n in names)
        summary = json.loads((tmp_path / "summary.json").read_text())
        every = cfg.method.params.recluster_every
        assert [h["step"] for h in summary["pretrain"]["hooks"]] == list(range(0, cfg.train.steps, every))


def test_every_config_file_is_picked_up():
    """Every JSON file under configs/ (walked here, independently of the glob) is a
    tuning config or an experiment config whose smoke runs: here or in ELSEWHERE."""
    walked = sorted(Path(d, f) for d, _, files in os.walk(CONFIGS) for f in files if f.endswith(".json"))
    tune = [p for p in walked if is_tune_config(p)]
    selections = [p for p in walked if is_selection_file(p)]
    experiments = {_rel(p) for p in walked if p not in tune and p not in selections}
    smoked = {p.values[0] for p in SMOKED}
    assert smoked.isdisjoint(ELSEWHERE)
    assert smoked | set(ELSEWHERE) == experiments
    assert len(smoked) + len(ELSEWHERE) + len(tune) + len(selections) == len(walked)
    assert {_rel(p) for p in experiment_configs()} == experiments
    for p in tune:      # a tuning config sweeps a shipped experiment config
        base = (p.parent / json.loads(p.read_text())["base"]).resolve()
        assert _rel(base) in experiments, (p, base)
    for p in selections:    # a selection file loads (every variant's config, strictly) on a shipped config
        from keras_ssl.selection import load_selection
        sel = load_selection(p)
        assert _rel(sel.base) in experiments, (p, sel.base)
        assert all(v.config.eval.split == "validation" for v in sel.variants)


def test_exceptions_name_real_configs_and_tests():
    rels = {_rel(p) for p in experiment_configs()}
    for pattern in SLOW:
        assert any(fnmatch(r, pattern) for r in rels), f"SLOW pattern {pattern!r} matches no config"
    for rel, test in ELSEWHERE.items():
        assert rel in rels
        path, name = test.split("::")
        text = (ROOT / path).read_text()
        # that test defines itself, runs this config with --smoke and applies check_smoke_run
        assert f"def {name}(" in text and f"configs/{rel}" in text and "--smoke" in text
        assert "check_smoke_run(" in text


# -- what the configs promise ---------------------------------------------------

def test_ablation_covers_three_set_sizes():
    paths = sorted((CONFIGS / "mnist_jigsaw_ablation").glob("*.json"))
    sizes = sorted(load_config(p).pretext.params.permutations for p in paths)
    assert sizes == [10, 100, 1000]


@pytest.mark.parametrize("name", ["mnist_npid", "mnist_pirl"])
def test_memory_bank_configs_hold_the_papers_settings(name):
    cfg = load_config(CONFIGS / f"{name}.json")
    assert cfg.method.name == name.split("_")[1] and cfg.train.monitor_every > 0
    assert cfg.method.params.temperature == 0.07 and cfg.method.params.momentum == 0.5
    assert cfg.method.params.embedding == 128 and cfg.method.params.negatives == 4096
    smoke = load_config(CONFIGS / f"{name}.json", smoke=True)
    assert smoke.train.steps <= 8


#: config (path under configs/) -> why it states no expected results yet: a new config
#: whose full run has not been measured. It must say so in its "cost" and carry no
#: "expected"; once measured, it gets its "expected" object and leaves this table.
NOT_MEASURED = {
    "kitti_egomotion.json": "needs KITTI odometry and SUN397, not downloadable here",
    "kitti_sfa.json": "needs KITTI odometry and SUN397, not downloadable here",
    "kitti_shuffle_learn.json": "needs KITTI odometry and SUN397, not downloadable here",
}


def test_every_experiment_config_states_its_expected_results():
    """A config states the result it is expected to give (checked by compare --check):
    the test-split frozen-MLP mean at each label count it evaluates, with its source;
    a config of :data:`NOT_MEASURED` states instead that it is not measured yet."""
    rels = {_rel(p) for p in experiment_configs()}
    assert set(NOT_MEASURED) <= rels, sorted(set(NOT_MEASURED) - rels)
    missing = []
    for path in experiment_configs():
        cfg = load_config(path)
        if _rel(path) in NOT_MEASURED:
            assert not cfg.expected and cfg.cost.lower().startswith("not measured yet"), (path, cfg.cost)
            continue
        rows = (cfg.expected or {}).get("rows", {}).get("frozen_mlp", {})
        if not cfg.expected or cfg.expected.get("split", "test") != "test" or not rows:
            missing.append(_rel(path))
            continue
        assert set(map(int, rows)) <= set(cfg.eval.label_counts), (path, sorted(rows))
    assert not missing, f"configs without expected test results: {missing}"


def test_moco_config_holds_the_papers_settings():
    """MoCo v2's settings (momentum 0.999, temperature 0.2, 128-d, an MLP head) on two views."""
    cfg = load_config(CONFIGS / "mnist_moco.json")
    p = cfg.method.params
    assert cfg.method.name == "moco" and cfg.pretext.name == "augment" and cfg.pretext.params.views == 2
    assert p.momentum == 0.999 and p.temperature == 0.2 and p.embedding == 128 and p.head_hidden > 0
    assert p.queue_size < 60000 and cfg.train.lr_schedule == "cosine" and cfg.train.monitor_every > 0
    assert load_config(CONFIGS / "mnist_moco.json", smoke=True).train.steps <= 8


def test_deepcluster_config_holds_the_papers_settings():
    """DeepCluster's settings: PCA 256 with whitening, 10x the digits' classes as clusters,
    20 k-means iterations, uniform weight over clusters; its smoke reclusters twice."""
    cfg = load_config(CONFIGS / "mnist_deepcluster.json")
    p = cfg.method.params
    assert cfg.method.name == "deepcluster" and cfg.pretext.name == "augment" and cfg.pretext.params.views == 1
    assert p.pca_dim == 256 and p.whiten and p.clusters == 10 * 10 and p.kmeans_iters == 20 and p.balance
    assert p.cluster_images is None and cfg.train.monitor_every > 0
    smoke = load_config(CONFIGS / "mnist_deepcluster.json", smoke=True)
    assert smoke.train.steps <= 8 and smoke.train.steps > smoke.method.params.recluster_every
    assert smoke.method.params.clusters <= smoke.data.max_pretrain_images
