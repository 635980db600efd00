"""The report of finished runs, stage by stage: what ``python -m keras_ssl.report`` does.

Order of work (so that a bad input costs nothing and loses nothing):

1. every run directory is checked (:func:`keras_ssl.report.run.check_run`, JSON only)
   before anything is written: a bad one stops the report at once;
2. the combined tables and plots of every run: ``python -m keras_ssl.compare``'s files per
   scored split under ``--out/combined/<split>/``, and ``--out/tables.md``;
3. each run in turn, into ``--out/<run>/``: its tables and plot, training curves,
   conv1's filters, the pretext heads' confusion matrices, the t-SNE map, then
   its TensorBoard summaries under ``RUN/tb/{report,projector,hparams}``;
4. ``--out/index.md``, one line per file written, also when a run fails in
   step 3 (the index then says why it stopped; earlier runs' files stay).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from keras_ssl.report import curves, filters, tables
from keras_ssl.report.outputs import Outputs
from keras_ssl.report.run import (ReportError, RunInputs, check_run, experiment_config, load_encoder,
                                  load_labeled_sets, unique_names)

#: Where the pretext examples of the confusion matrices come from.
PRETEXT_IMAGES = ("validation", "test")


def _stages(opts: dict) -> list[str]:
    out = ["tables", "curves", "filters"]
    out += [] if opts["skip_confusion"] else ["confusion"]
    out += [] if opts["skip_tsne"] and opts["skip_tensorboard"] else ["features"]
    out += [] if opts["skip_tensorboard"] else ["tensorboard"]
    return out


class _Data:
    """The evaluation sets, loaded once per (dataset, geometry)."""

    def __init__(self, labeled: Callable):
        self.labeled, self.cache = labeled, {}

    def __call__(self, cfg):
        d = cfg.data
        key = (d.eval_dataset, d.image_size, d.channels, d.tfds_data_dir)
        if key not in self.cache:
            self.cache[key] = self.labeled(cfg)
        return self.cache[key]


def _pretext_images(cfg, train, test, which: str, say) -> tuple[np.ndarray, str]:
    """(uint8 images, what they are) for the confusion matrices."""
    from keras_ssl.data import split_validation

    if which == "validation":
        n = cfg.data.validation_images
        if n and n < len(train):
            return split_validation(train, n, cfg.seed)[1].images, f"the {n} validation-split images"
        say("confusion: no validation split (data.validation_images is 0): using the test images")
    return test.images, f"the {len(test)} test images of {cfg.data.eval_dataset}"


def _one_run(run: RunInputs, o: Outputs, opts: dict, data: _Data, tick, say) -> dict:
    folder = o.out / run.name
    res = {"folder": folder}
    tick("tables")
    tables.write_run(run, opts["protocol"], o, folder)
    tick("curves")
    scalars = curves.read_scalars(run.dir / "tb" / "pretrain")
    if scalars:
        res["curves"] = curves.plot_curves(scalars, folder / "training_curves.png",
                                           f"{run.label}: pretraining", o)
    else:
        say(f"curves: skipped for {run.dir}: no scalars in {run.dir / 'tb' / 'pretrain'}")
    cfg = experiment_config(run)
    encoder = load_encoder(run)
    tick("filters")
    pictures = {}
    try:
        grid, layout, layer = filters.conv1_grid(encoder)
    except ValueError as e:
        say(f"filters: skipped for {run.dir}: {e}")
    else:
        res["filters"] = layout
        what = (f"{layer}'s {layout.filters} filters ({layout.cell_h // layout.scale}x"
                f"{layout.cell_w // layout.scale}, each min-max normalised, x{layout.scale})")
        o.save_image(grid, folder / "conv1_filters.png", what)
        pictures["conv1_filters"] = (grid, what)
    needs_data = not (opts["skip_confusion"] and opts["skip_tsne"] and opts["skip_tensorboard"])
    train, test = data(cfg) if needs_data else (None, None)
    if not opts["skip_confusion"]:
        tick("confusion")
        res["heads"] = _confusion(run, cfg, train, test, folder, o, opts, pictures, say)
    if "features" in _stages(opts):
        tick("features")
        res["embedding"] = _embedding(run, encoder, test, folder, o, opts)
    if not opts["skip_tensorboard"]:
        tick("tensorboard")
        res["tensorboard"] = _tensorboard(run, cfg, res.get("embedding"), pictures, o)
    return res


def _confusion(run, cfg, train, test, folder, o, opts, pictures, say) -> dict:
    from keras_ssl.report import confusion
    from keras_ssl.report.tensorboard import read_png

    images, source = _pretext_images(cfg, train, test, opts["pretext_images"], say)
    try:
        heads = confusion.predict_heads(cfg, run.dir, images, opts["pairs"], seed=opts["seed"])
    except confusion.NoHeads as e:
        say(f"confusion: skipped for {run.dir}: {e}")
        return {}
    for name, head in heads.items():
        path = confusion.plot_confusion(head, folder / f"confusion_{name}.png",
                                        f"{run.label}: pretext '{cfg.pretext.name}'", o, source)
        pictures[f"confusion/{name}"] = (read_png(path), o.files[path])
    return heads


def _embedding(run, encoder, test, folder, o, opts) -> dict:
    from keras_ssl.report import embedding

    if test.labels is None:
        raise ReportError(f"{run.dir / 'config.json'}: data.eval_dataset has no labels to colour the t-SNE by")
    images, labels = embedding.first_images(test.images, test.labels, opts["tsne_images"])
    out = {"images": images, "labels": labels, "features": embedding.final_features(encoder, images),
           "source": "test images"}
    if not opts["skip_tsne"]:
        out["points"] = embedding.tsne_points(out["features"], seed=opts["seed"])
        embedding.plot_tsne(out["points"], labels, folder / "tsne.png",
                            f"{run.label}: t-SNE of the final features ({len(images)} test images)", o,
                            "test images")
    return out


def _tensorboard(run, cfg, emb, pictures, o) -> dict:
    from keras_ssl.report import tensorboard as tb

    tb_dir, step = run.dir / "tb", int(cfg.train.steps)
    out = {}
    if pictures:
        out["images"] = tb.write_images(tb_dir / "report", pictures, step, o)
    if emb is not None:
        out["projector"] = tb.write_projector(tb_dir / "projector", emb["features"], emb["labels"],
                                              emb["images"], o, emb["source"])
    out["hparams"] = tb.write_hparams(tb_dir / "hparams", run.config, run.results, str(run.dir), step, o)
    return out


def report(run_dirs, out="report", *, protocol: str = "frozen_mlp", pairs: int = 2000,
           tsne_images: int = 2000, seed: int = 0, pretext_images: str = "validation",
           skip_tsne: bool = False, skip_confusion: bool = False, skip_tensorboard: bool = False,
           progress: bool = True, log: Callable = print, labeled: Optional[Callable] = None,
           command: Optional[str] = None) -> dict:
    """Write the report of ``run_dirs`` under ``out``; returns what each stage produced.

    ``labeled``: ``cfg -> (train, test)`` labeled sets of the run's evaluation dataset
    (default: :func:`keras_ssl.report.run.load_labeled_sets`). ReportError on a bad input.
    """
    if not run_dirs:
        raise ReportError("no run directories given (e.g. python -m keras_ssl.report runs/*)")
    if pretext_images not in PRETEXT_IMAGES:
        raise ReportError(f"--pretext-images must be one of {list(PRETEXT_IMAGES)}, got {pretext_images!r}")
    if pairs < 1 or tsne_images < 2:
        raise ReportError(f"--pairs must be >= 1 and --tsne-images >= 2 (got {pairs}, {tsne_images})")
    opts = dict(protocol=protocol, pairs=pairs, tsne_images=tsne_images, seed=seed,
                pretext_images=pretext_images, skip_tsne=skip_tsne, skip_confusion=skip_confusion,
                skip_tensorboard=skip_tensorboard)
    runs = [check_run(d, name) for d, name in zip(run_dirs, unique_names(run_dirs, (tables.COMBINED,)))]
    o = Outputs(out, command or tables.command_line([str(d) for d in run_dirs] + ["--out", str(out)]))
    result = {"outputs": o, "runs": {}}
    stopped = ""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(runs) * len(_stages(opts)), desc="report", unit="stage",
               disable=not progress, dynamic_ncols=True)
    say = bar.write if progress else log
    try:
        result["tables"] = tables.write_combined(runs, protocol, o, say)
        data = _Data(labeled or load_labeled_sets)
        _quiet_tensorflow()
        running = []          # the stage in progress: counted done when the next starts
        for run in runs:
            def tick(stage, run=run):
                if running:
                    bar.update(1)
                running[:] = [stage]
                bar.set_description(run.name)
                bar.set_postfix_str(stage)
            result["runs"][run.name] = _one_run(run, o, opts, data, tick, say)
        if running:
            bar.update(1)
    except ReportError as e:
        stopped = str(e)
        raise
    except Exception as e:
        stopped = f"{type(e).__name__}: {e}"
        raise
    finally:
        bar.close()
        result["index"] = o.write_index(stopped)
    return result


def _quiet_tensorflow() -> None:
    """Features and predictions build a fresh tf.function per run: TensorFlow's retracing
    warnings there are expected, not a user's concern."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
