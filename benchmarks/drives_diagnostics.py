"""Why an egomotion-from-odometry config does or does not learn: three checks, one command.

    python benchmarks/drives_diagnostics.py --config configs/drives_egomotion.json \
        [--set KEY=VALUE ...] [--run-dir RUN] [--pairs 512] [--overfit-steps 300]

1. **Are the labels visible in the crops?** The horizontal shift between the two crops of
   ``--pairs`` random pairs, found by phase correlation (scikit-image), against the yaw from
   the poses: its Pearson and Spearman correlations (and the vertical shift's, which yaw
   should not explain).
2. **Can the network learn?** ``--overfit-steps`` Adam steps (lr 3e-4, dropout 0) on one
   fixed batch of the config's pairs: the pretext loss and accuracies every 25 steps. A
   loss that falls far below chance says gradients reach every layer.
3. **Where does a run stand?** With ``--run-dir``: its latest checkpoint restored, the
   spread over one batch of each tapped layer's activations and of each head's logits
   (logits that do not vary over the batch: the top sits on the class prior).

docs/sequences.md, "What learns", gives the figures measured with it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup(config: str, run_dir: str | None, overrides: dict):
    import atexit
    import shutil
    import tempfile

    from keras_ssl import registry
    from keras_ssl.config import load_config
    from keras_ssl.training.job import _image_shape, _pretrain_images
    from keras_ssl.training.loop import Pretrainer

    cfg = load_config(f"{run_dir}/config.json" if run_dir else config, overrides)
    pretext = registry.build("pretext", cfg.pretext, _image_shape(cfg))
    pairs = pretext.prepare(_pretrain_images(cfg, lambda _: None)[0])
    if run_dir is None:
        run_dir = tempfile.mkdtemp(prefix="drives_diag_")
        atexit.register(shutil.rmtree, run_dir, ignore_errors=True)
    trainer = Pretrainer(cfg, run_dir, pretext,
                         num_images=len(pairs), progress=False)
    return cfg, pretext, pairs, trainer


def labels_visible(pretext, pairs, n: int) -> dict:
    from scipy.stats import spearmanr
    from skimage.registration import phase_cross_correlation

    shifts, yaw = [], []
    for views, labels in pretext.batches(pairs, n, 0, 0, 1):
        a, b = views["first"].numpy().mean(-1), views["second"].numpy().mean(-1)
        shifts = [phase_cross_correlation(x, y, upsample_factor=4, normalization=None)[0] for x, y in zip(a, b)]
        yaw = pairs.motion.yaw[labels["pair"].numpy()]
    shifts = np.asarray(shifts)
    return {"pairs": len(yaw), "pearson_dx_yaw": float(np.corrcoef(shifts[:, 1], yaw)[0, 1]),
            "spearman_dx_yaw": float(spearmanr(shifts[:, 1], yaw).statistic),
            "pearson_dy_yaw": float(np.corrcoef(shifts[:, 0], yaw)[0, 1])}


def overfit(trainer, pretext, pairs, batch: int, steps: int) -> list[dict]:
    import keras
    import tensorflow as tf

    method = trainer.method
    views, labels = next(iter(pretext.batches(pairs, batch, 0, 0, 1)))
    opt = keras.optimizers.Adam(3e-4)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss, metrics = method.per_example(method(views, training=True), labels)
            loss = tf.reduce_mean(loss)
        grads = tape.gradient(loss, method.trainable_variables)
        opt.apply_gradients(zip(grads, method.trainable_variables))
        return loss, {k: tf.reduce_mean(v) for k, v in metrics.items()}

    out = []
    for s in range(steps):
        loss, metrics = step()
        if s % 25 == 0 or s == steps - 1:
            out.append({"step": s, "loss": round(float(loss), 3),
                        **{k: round(float(v), 3) for k, v in metrics.items()}})
            print(out[-1], file=sys.stderr, flush=True)
    return out


def spread(trainer, pretext, pairs, batch: int) -> dict:
    import keras

    step = trainer.restore()
    views, _ = next(iter(pretext.batches(pairs, batch, 0, 0, 1)))
    enc = trainer.encoder
    taps = keras.Model(enc.inputs, [enc.get_layer(n).output for n in enc.taps])
    layers = {n: float(np.asarray(a).std(0).mean()) for n, a in zip(enc.taps, taps(views["first"]))}
    heads = {k: float(np.asarray(v).std(0).mean()) for k, v in trainer.method(views, training=False).items()
             if k in pretext.targets}
    return {"step": int(step), "activation_std_over_batch": layers, "logit_std_over_batch": heads}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/drives_egomotion.json")
    ap.add_argument("--run-dir", help="also report where this run's latest checkpoint stands")
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--overfit-steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value for checks 1 and 2 (JSON value), e.g. encoder.conv1_stride=4")
    args = ap.parse_args(argv)
    import json

    overrides = {"method.dropout": 0.0}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    cfg, pretext, pairs, trainer = setup(args.config, None, overrides)
    report = {"config": cfg.name, "labels_visible": labels_visible(pretext, pairs, args.pairs)}
    print(report["labels_visible"], file=sys.stderr, flush=True)
    if args.overfit_steps:
        report["overfit_one_batch"] = overfit(trainer, pretext, pairs, args.batch, args.overfit_steps)
    if args.run_dir:
        _, pretext, pairs, trainer = setup(args.config, args.run_dir, {})
        report["run"] = spread(trainer, pretext, pairs, args.batch)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
