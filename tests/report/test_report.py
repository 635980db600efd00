"""keras_ssl.report on one tiny finished run (rotation on synthetic digits, 6 steps), made
once per module by the real job (python -m keras_ssl.train's ``run``) and reported once."""
import dataclasses
import json
import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_ssl.config import EvalConfig, ExportConfig
from keras_ssl.data.core import ImageSet
from keras_ssl.evaluation.results import write_results
from support import ROOT, SUBPROCESS_ENV, small_cfg, synthetic_digits

PAIRS = 300           # pretext examples per confusion matrix
TSNE_IMAGES = 120
VALIDATION = 100      # validation-split images (the pretext examples are made of them)


@pytest.fixture(scope="module")
def sets():
    (x, y), (xt, yt) = synthetic_digits(1300, seed=0), synthetic_digits(300, seed=1)
    return ImageSet(x, y), ImageSet(xt, yt)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, sets):
    """A run directory as python -m keras_ssl.train leaves it (no export), scored on the
    test set and, as results_validation.json, on the validation split."""
    import keras_ssl.data
    from keras_ssl.training.job import run

    train, test = sets
    cfg = small_cfg(name="tiny", steps=6, monitor_every=2, data={"validation_images": VALIDATION})
    cfg = dataclasses.replace(
        cfg, export=ExportConfig(enabled=False),
        eval=EvalConfig(label_counts=(20, 50), seeds=(0, 1), head_steps=10, scratch_steps=10,
                        random_frozen=False, linear_probe=False, max_test_images=200))
    run_dir = tmp_path_factory.mktemp("runs") / "tiny_rotation"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keras_ssl.data, "load_pretrain", lambda data_cfg: ImageSet(train.images, None))
        mp.setattr(keras_ssl.data, "load_labeled", lambda *a, **k: (train, test))
        run(cfg, run_dir, progress=False, export=False, log=lambda *_: None)
    doc = json.loads((run_dir / "results.json").read_text())
    doc["split"] = doc["protocol"]["split"] = "validation"
    for r in doc["rows"]:
        r["values"] = [round(v * 0.9, 4) for v in r["values"]]
        r["mean"], r["std"] = float(np.mean(r["values"])), float(np.std(r["values"]))
    write_results(doc, run_dir, title="tiny: validation")
    return run_dir


@pytest.fixture(scope="module")
def reported(finished_run, sets, tmp_path_factory):
    from keras_ssl.report.runner import report

    out = tmp_path_factory.mktemp("report")
    res = report([finished_run], out, pairs=PAIRS, tsne_images=TSNE_IMAGES, progress=False,
                 log=print, labeled=lambda cfg: sets, command="python -m keras_ssl.report RUN")
    return res, out, res["runs"][finished_run.name]


def _cells(md: str, first: str) -> list[list[float]]:
    """The numbers (mean, std) of each accuracy cell of the table row starting ``| first |``
    (other cells, e.g. compare's "training" column, "2.5K x 125", are left out)."""
    prefix = f"| {first} |"
    row = next(l for l in md.splitlines() if l.startswith(prefix))
    cells = [c for c in row[len(prefix):].strip("|").split("|") if re.fullmatch(r" *\d\.\d+( ± \d\.\d+)? *", c)]
    return [[float(x) for x in re.findall(r"\d+\.\d+", c)] for c in cells]


def _section(md: str, split: str) -> str:
    return next(s for s in md.split("\n## ") if f"{split} split" in s.splitlines()[0])


@pytest.mark.parametrize("split,stem", [("test", "results"), ("validation", "results_validation")])
def test_tables_hold_the_numbers_of_the_results_files(reported, finished_run, split, stem):
    res, out, run = reported
    rows = json.loads((finished_run / f"{stem}.json").read_text())["rows"]
    per_run = (run["folder"] / "tables.md").read_text()
    assert per_run.startswith("Written by `python -m keras_ssl.report RUN`.")
    section = _section(per_run, split)
    combined = res["tables"][split]["markdown"]
    assert combined in (out / "tables.md").read_text()
    counts = sorted({r["labels"] for r in rows})      # the tables' columns
    for method, protocol, table, first in [("rotation", "frozen_mlp", section, "rotation | frozen_mlp"),
                                           ("scratch", "scratch", section, "scratch | scratch"),
                                           ("rotation", "knn", section, "rotation | knn"),
                                           ("rotation", "frozen_mlp", combined, "tiny")]:
        for n, cell in zip(counts, _cells(table, first)):
            r = next(r for r in rows if (r["method"], r["protocol"], r["labels"]) == (method, protocol, n))
            assert cell == pytest.approx([r["mean"], r["std"]], abs=5e-4 + 1e-9)
    assert "| thesis: egomotion | reported |" in section


def _png(path):
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        return np.asarray(im)


def test_filter_grid_has_one_normalised_cell_per_conv1_filter(reported, finished_run):
    import keras

    import keras_ssl.encoders  # noqa: F401
    from keras_ssl.report.filters import GAP

    _, _, run = reported
    encoder = keras.models.load_model(finished_run / "encoder.keras", compile=False)
    kernel = keras.ops.convert_to_numpy(encoder.get_layer("conv1").kernel)
    kh, kw, _, n = kernel.shape
    lay = run["filters"]
    cols = math.ceil(math.sqrt(n))
    assert (lay.filters, lay.cols, lay.rows) == (n, cols, math.ceil(n / cols))
    img = _png(run["folder"] / "conv1_filters.png")
    assert img.shape == (lay.rows * (kh * lay.scale + GAP) + GAP, cols * (kw * lay.scale + GAP) + GAP)
    for i in range(n):
        cell = img[lay.cell(i)].astype(float)
        f = kernel[..., 0, i]
        want = np.kron((f - f.min()) / (f.max() - f.min()), np.ones((lay.scale, lay.scale))) * 255
        np.testing.assert_allclose(cell, want, atol=0.51)


def test_curves_and_plots_decode_with_their_sizes(reported, finished_run):
    from keras_ssl.report import curves

    res, out, run = reported
    assert set(run["curves"]) == {"loss", "rotation_acc", "learning_rate", "examples_per_s", "knn_val"}
    w, h = curves.figure_pixels(len(run["curves"]))
    assert _png(run["folder"] / "training_curves.png").shape[:2] == (h, w)
    steps, _ = curves.read_scalars(finished_run / "tb" / "pretrain")["loss"]
    assert list(steps) == [2, 4, 6]
    assert _png(run["folder"] / "confusion_rotation.png").shape[:2] == (560, 640)
    assert _png(run["folder"] / "tsne.png").shape[:2] == (650, 750)
    for path in [run["folder"] / "accuracy_vs_labels.png", run["folder"] / "accuracy_vs_labels_validation.png",
                 out / "combined" / "test" / "comparison.png", out / "combined" / "validation" / "comparison.png"]:
        assert _png(path).ndim == 3


def test_confusion_matrix_counts_every_pretext_example(reported, finished_run, sets):
    from keras_ssl import registry
    from keras_ssl.config import config_from_dict
    from keras_ssl.data import split_validation
    from keras_ssl.data.pipeline import pretext_batches

    _, _, run = reported
    head = run["heads"]["rotation"]
    assert head.matrix.shape == (4, 4) and head.matrix.sum() == PAIRS
    accuracy = np.mean(head.true == head.pred)          # from the same predictions
    assert np.trace(head.matrix) / PAIRS == pytest.approx(accuracy)
    # the examples are the run's sampler on the validation split at seed 0
    cfg = config_from_dict(json.loads((finished_run / "config.json").read_text()))
    val = split_validation(sets[0], VALIDATION, cfg.seed)[1]
    pretext = registry.build("pretext", cfg.pretext, (28, 28, 1))
    _, labels = next(iter(pretext_batches(val.images, pretext, PAIRS, 0, 0, 1)))
    np.testing.assert_array_equal(head.true, labels["rotation"].numpy())


def test_tsne_and_projector_have_one_point_per_image(reported, finished_run, sets):
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    from keras_ssl.report.tensorboard import EMBEDDING_TENSOR

    _, _, run = reported
    assert run["embedding"]["points"].shape == (TSNE_IMAGES, 2) and np.isfinite(run["embedding"]["points"]).all()
    np.testing.assert_array_equal(run["embedding"]["labels"], sets[1].labels[:TSNE_IMAGES])
    d = finished_run / "tb" / "projector"
    labels = (d / "metadata.tsv").read_text().splitlines()
    assert labels == [str(y) for y in run["embedding"]["labels"]]
    emb = tf.train.load_checkpoint(str(d)).get_tensor(EMBEDDING_TENSOR)
    assert emb.shape[0] == len(labels) == TSNE_IMAGES
    np.testing.assert_allclose(emb, run["embedding"]["features"])
    config = text_format.Parse((d / "projector_config.pbtxt").read_text(), projector.ProjectorConfig())
    e = config.embeddings[0]
    assert (e.tensor_name, e.metadata_path, list(e.sprite.single_image_dim)) == (
        EMBEDDING_TENSOR, "metadata.tsv", [28, 28])
    side = math.ceil(math.sqrt(TSNE_IMAGES)) * 28
    assert _png(d / e.sprite.image_path).shape == (side, side)


def test_tensorboard_images_and_hparams(reported, finished_run):
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    _, _, run = reported
    acc = ea.EventAccumulator(str(finished_run / "tb" / "report"), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    assert set(acc.Tags()["tensors"]) == {"conv1_filters", "confusion/rotation"}
    assert acc.SummaryMetadata("conv1_filters").plugin_data.plugin_name == "images"
    acc = ea.EventAccumulator(str(finished_run / "tb" / "hparams"), size_guidance={ea.TENSORS: 0})
    acc.Reload()
    data = plugin_data_pb2.HParamsPluginData.FromString(
        acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content)
    hp = data.session_start_info.hparams
    assert hp["train.learning_rate"].number_value == pytest.approx(0.1)
    assert hp["pretext.name"].string_value == "rotation" and "description" not in hp
    rows = json.loads((finished_run / "results.json").read_text())["rows"]
    for r in (r for r in rows if r["protocol"] == "frozen_mlp"):
        tag = f"frozen_mlp/{r['labels']}_labels"
        assert float(tensor_util.make_ndarray(acc.Tensors(tag)[0].tensor_proto)) == pytest.approx(r["mean"])
    assert "validation/frozen_mlp/20_labels" in acc.Tags()["tensors"]


def test_index_lists_every_file_written(reported, finished_run):
    res, out, _ = reported
    index = (out / "index.md").read_text()
    assert "Written by `python -m keras_ssl.report RUN`." in index
    listed = re.findall(r"^- `([^`]+)`: .+$", index, flags=re.M)
    under_out = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert under_out <= set(listed) and len(listed) == len(set(listed))
    for sub in ("report", "projector", "hparams"):
        for p in (finished_run / "tb" / sub).iterdir():
            assert str(p) in listed


def _bad_run(root, good, case):
    """A copy of ``good``'s config.json and results.json beside a broken encoder, then broken by ``case``."""
    d = root / case
    if case != "missing":
        d.mkdir(parents=True)
    if case in ("no_results", "bad_json", "no_encoder"):
        for f in ("config.json", "results.json"):
            shutil.copy(good / f, d / f)
        (d / "encoder.keras").write_bytes(b"not a model")
        for f in {"no_results": ["results.json"], "no_encoder": ["encoder.keras"]}.get(case, []):
            (d / f).unlink()
    if case == "bad_json":
        (d / "results.json").write_text('{"rows": [')
    return d


@pytest.mark.parametrize("case,names", [("missing", ""), ("empty", "config.json"),
                                        ("no_results", "results.json"), ("bad_json", "results.json"),
                                        ("no_encoder", "encoder.keras")])
def test_a_bad_input_is_one_line_naming_the_file_exit_2(finished_run, tmp_path, capsys, case, names):
    from keras_ssl.report.cli import main

    bad, out = _bad_run(tmp_path / "bad", finished_run, case), tmp_path / "out"
    assert main([str(finished_run), str(bad), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad / names).rstrip("/") in err, err
    assert not out.exists()            # checked before any work: nothing written


def test_a_late_failure_keeps_the_files_written_and_skips_are_honoured(finished_run, tmp_path, capsys):
    from keras_ssl.report.cli import main

    broken = tmp_path / "broken"
    shutil.copytree(finished_run, broken, ignore=shutil.ignore_patterns("report", "projector", "hparams"))
    (broken / "encoder.keras").write_bytes(b"not a model")
    out = tmp_path / "out"
    code = main([str(finished_run), str(broken), "--out", str(out), "--no-progress", "--skip-tsne",
                 "--skip-confusion", "--skip-tensorboard"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(broken / "encoder.keras") in err
    good = out / finished_run.name
    assert (good / "tables.md").is_file() and (good / "conv1_filters.png").is_file()
    assert not list(good.glob("confusion_*.png")) and not (good / "tsne.png").exists()
    index = (out / "index.md").read_text()
    assert "Stopped early" in index and f"`{finished_run.name}/conv1_filters.png`" in index
    assert not (broken / "tb" / "report").exists()


def test_methods_without_classification_heads_are_skipped_with_a_reason(tmp_path):
    from keras_ssl.report.confusion import NoHeads, predict_heads

    cfg = small_cfg(method={"name": "contrastive"}, pretext={"name": "sfa_pairs"})
    with pytest.raises(NoHeads, match="pretext 'sfa_pairs' has no classification targets"):
        predict_heads(cfg, tmp_path, np.zeros((4, 28, 28, 1), np.uint8), 10)


def test_the_command_runs_as_a_module(tmp_path):
    p = subprocess.run([sys.executable, "-m", "keras_ssl.report", str(tmp_path / "nowhere"), "--out",
                        str(tmp_path / "o")], cwd=ROOT, env=SUBPROCESS_ENV, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nowhere'}: not a directory (expected a run directory of python -m keras_ssl.train)"]


def test_rgb_filters_are_colour_cells_and_a_new_report_replaces_the_old_summaries(tmp_path):
    from keras_ssl.report import tensorboard as tb
    from keras_ssl.report.filters import filter_grid
    from keras_ssl.report.outputs import Outputs

    kernel = np.random.default_rng(0).normal(size=(5, 5, 3, 6))
    img, lay = filter_grid(kernel)
    assert (lay.rows, lay.cols, lay.channels) == (2, 3, 3) and img.shape == lay.size + (3,)
    assert img[lay.cell(5)].min() == 0 and img[lay.cell(5)].max() == 255
    o = Outputs(tmp_path, "cmd")
    for _ in range(2):
        tb.write_images(tmp_path / "tb", {"conv1_filters": (img, "grid")}, 3, o)
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1
