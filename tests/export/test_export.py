"""keras_ssl.export: SavedModels that TF Serving loads unchanged.

Tiny functional encoders on synthetic 28x28 images; every export is checked
with ``saved_model_cli show`` / ``run`` (subprocess) and against the
in-process encoder.
"""
from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import support
from keras_ssl import export as ex
from keras_ssl.encoders import bcnn
from keras_ssl.export.__main__ import main as export_main
from support import ROOT, SUBPROCESS_ENV, images, png

#: Conv -> pool -> dropout -> dense: dropout makes training=True differ from inference.
tiny_encoder = partial(support.tiny_encoder, dropout=0.5)


CONFIG = {"name": "tiny_run", "data": {"image_size": 28, "channels": 1},
          "export": {"enabled": True, "model_name": "", "taps": ["conv1"]}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    enc = tiny_encoder()
    base = tmp_path_factory.mktemp("export")
    path = ex.export_encoder(enc, base, "tiny", config=CONFIG, taps=("conv1",))
    return enc, base, path, tf.saved_model.load(str(path))


def test_layout_and_versions(exported, tmp_path):
    enc, base, path, _ = exported
    assert path == base / "tiny" / "1"
    for rel in ("saved_model.pb", "variables", "assets.extra/config.json",
                "assets.extra/preprocessing.json", "assets.extra/tf_serving_warmup_requests"):
        assert (path / rel).exists(), rel
    # next version, explicit version, never overwrite, no temp dirs left behind
    p2 = ex.export_encoder(enc, tmp_path, "m")
    p3 = ex.export_encoder(enc, tmp_path, "m")
    assert (p2.name, p3.name) == ("1", "2")
    (tmp_path / "m" / "10").mkdir()
    (tmp_path / "m" / "not_a_version").mkdir()
    assert ex.export_encoder(enc, tmp_path, "m").name == "11"
    with pytest.raises(ex.ExportError, match="already exists"):
        ex.export_encoder(enc, tmp_path, "m", version=2)
    assert ex.export_encoder(enc, tmp_path, "m", version=5).name == "5"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "10", "11", "2", "5", "not_a_version"]
    with pytest.raises(ValueError, match="invalid model name"):
        ex.export_encoder(enc, tmp_path, "../evil")


def test_features_match_encoder_and_are_deterministic(exported):
    enc, _, _, loaded = exported
    x = images(5)
    fn = loaded.signatures["serving_default"]
    a = fn(images=tf.constant(x))
    b = fn(images=tf.constant(x))
    np.testing.assert_allclose(a["features"].numpy(), enc(x, training=False).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a["features"].numpy(), b["features"].numpy())
    assert a["features"].dtype == tf.float32 and a["features"].shape == (5, 8)
    # tap: conv1 output flattened to [batch, N]
    conv = keras.Model(enc.inputs[0], enc.get_layer("conv1").output)(x).numpy()
    np.testing.assert_allclose(a["conv1"].numpy(), conv.reshape(5, -1), rtol=1e-5, atol=1e-6)
    # batch dimension unknown in both signatures (TF Serving batching needs it)
    spec = fn.structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, 28, 28, 1]
    assert loaded.signatures["image_bytes"].structured_input_signature[1]["image_bytes"].shape.as_list() == [None]


def test_image_bytes_signature(exported):
    enc, _, _, loaded = exported
    x = images(2)
    fn = loaded.signatures["image_bytes"]
    out = fn(image_bytes=tf.constant([png(x[0]), png(x[1])]))["features"].numpy()
    expect = enc(np.round(x * 255) / 255, training=False).numpy()
    np.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-5)
    # RGB PNG of a different size into the 1-channel model: grayscale + resize
    rgb = images(1, channels=3, size=40)[0]
    jpeg = tf.io.encode_jpeg(np.round(rgb * 255).astype(np.uint8)).numpy()
    for data in (png(rgb), jpeg):
        f = fn(image_bytes=tf.constant([data]))["features"].numpy()
        assert f.shape == (1, 8) and np.all(np.isfinite(f))
    # same size RGB PNG -> exactly the luminance conversion
    rgb28 = images(1, channels=3)[0]
    gray = tf.image.rgb_to_grayscale(np.round(rgb28 * 255) / 255).numpy()[None]
    f = fn(image_bytes=tf.constant([png(rgb28)]))["features"].numpy()
    np.testing.assert_allclose(f, enc(gray, training=False).numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(tf.errors.InvalidArgumentError):
        fn(image_bytes=tf.constant([b"not an image"]))


def _encoded(arr01, fmt: str) -> bytes:
    """``arr01`` (HxWx1 or HxWx3 in [0, 1]) as ``fmt`` bytes, losslessly (Pillow)."""
    import io

    from PIL import Image

    pixels = np.round(arr01 * 255).astype(np.uint8)
    img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buf.getvalue()


def test_every_format_the_contract_lists_decodes_to_the_same_pixels(exported):
    """preprocessing.json's formats, each sent to image_bytes: the features of the
    same pixels sent as PNG (lossless encodings; WebP is decoded to uint8 by
    TensorFlow and must still arrive in [0, 1])."""
    enc, _, path, loaded = exported
    contract = json.loads((path / "assets.extra/preprocessing.json").read_text())
    formats = contract["signatures"]["image_bytes"]["inputs"]["image_bytes"]["formats"]
    assert set(formats) == {"png", "jpeg", "gif", "bmp", "webp"}
    fn = loaded.signatures["image_bytes"]
    for channels in (1, 3):
        x = images(1, channels=channels, seed=channels)[0]
        want = fn(image_bytes=tf.constant([png(x)]))["features"].numpy()
        for fmt in sorted(set(formats) - {"png", "jpeg"}):
            if fmt == "gif" and channels == 3:
                continue     # a GIF holds 256 colours: not lossless for an RGB image
            got = fn(image_bytes=tf.constant([_encoded(x, fmt.upper())]))["features"].numpy()
            np.testing.assert_allclose(got, want, atol=1e-3, err_msg=f"{fmt}, {channels} channel(s)")
    jpeg = tf.io.encode_jpeg(np.round(images(1, channels=3)[0] * 255).astype(np.uint8), quality=100).numpy()
    near = fn(image_bytes=tf.constant([png(images(1, channels=3)[0])]))["features"].numpy()
    np.testing.assert_allclose(fn(image_bytes=tf.constant([jpeg]))["features"].numpy(), near, atol=0.05)


def test_three_channel_model_converts_grayscale(tmp_path):
    enc = tiny_encoder(channels=3)
    path = ex.export_encoder(enc, tmp_path, "rgb")
    loaded = tf.saved_model.load(str(path))
    g = images(1, channels=1)[0]
    f = loaded.signatures["image_bytes"](image_bytes=tf.constant([png(g)]))["features"].numpy()
    rgb = np.repeat(np.round(g * 255) / 255, 3, axis=-1)[None]
    np.testing.assert_allclose(f, enc(rgb, training=False).numpy(), rtol=1e-4, atol=1e-5)
    contract = json.loads((path / "assets.extra/preprocessing.json").read_text())
    assert contract["input"]["channels"] == 3 and contract["input"]["color"] == "rgb"


def test_unknown_tap_lists_layers(tmp_path):
    with pytest.raises(ValueError) as e:
        ex.export_encoder(tiny_encoder(), tmp_path, "m", taps=("conv9",))
    assert "conv9" in str(e.value) and "conv1" in str(e.value) and "fc" in str(e.value)
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").iterdir())


def test_assets_extra(exported):
    enc, _, path, loaded = exported
    extra = path / "assets.extra"
    assert json.loads((extra / "config.json").read_text()) == CONFIG
    c = json.loads((extra / "preprocessing.json").read_text())
    assert c["input"] == {"height": 28, "width": 28, "channels": 1, "dtype": "float32",
                          "range": [0.0, 1.0], "layout": "NHWC", "color": "grayscale"}
    assert set(c["signatures"]) == {"serving_default", "image_bytes"}
    outs = c["signatures"]["serving_default"]["outputs"]
    assert outs["features"]["shape"] == [-1, 8]
    assert outs["conv1"]["shape"] == [-1, 26 * 26 * 4] and outs["conv1"]["layer_shape"] == [-1, 26, 26, 4]
    assert c["version"] == 1 and c["model_name"] == "tiny"
    # warm-up file: TFRecord of PredictionLog whose requests run on the model
    from tensorflow_serving.apis import prediction_log_pb2

    n = 0
    for rec in tf.data.TFRecordDataset(str(extra / "tf_serving_warmup_requests")):
        log = prediction_log_pb2.PredictionLog.FromString(rec.numpy())
        req = log.predict_log.request
        sig = req.model_spec.signature_name
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in req.inputs.items()}
        out = loaded.signatures[sig](**inputs)
        assert set(out) == {"features", "conv1"}
        n += 1
    assert n >= 2


#: TensorFlow's saved_model_cli as a module of the running interpreter: found in a venv used
#: without activation, where the console script is not on PATH.
SAVED_MODEL_CLI = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def test_saved_model_cli_show_and_run(exported, tmp_path):
    enc, _, path, _ = exported
    show = subprocess.run([*SAVED_MODEL_CLI, "show", "--dir", str(path), "--all"],
                          capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=120)
    assert show.returncode == 0, show.stderr[-2000:]
    assert "signature_def['serving_default']" in show.stdout
    assert "signature_def['image_bytes']" in show.stdout
    assert "inputs['images']" in show.stdout and "outputs['features']" in show.stdout
    assert "(-1, 28, 28, 1)" in show.stdout
    x = images(2, seed=7)
    np.save(tmp_path / "x.npy", x)
    outdir = tmp_path / "out"
    run = subprocess.run([*SAVED_MODEL_CLI, "run", "--dir", str(path), "--tag_set", "serve",
                          "--signature_def", "serving_default", "--inputs", f"images={tmp_path / 'x.npy'}",
                          "--outdir", str(outdir)],
                         capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    got = np.load(outdir / "features.npy")
    np.testing.assert_allclose(got, enc(x, training=False).numpy(), rtol=1e-5, atol=1e-6)


def _make_run(tmp_path, enc, name="tiny_run", export=None):
    run = tmp_path / "run"
    run.mkdir()
    enc.save(run / "encoder.keras")
    cfg = {"name": name, "data": {"image_size": 28, "channels": 1},
           "export": export or {"enabled": True, "model_name": "", "taps": []}}
    (run / "config.json").write_text(json.dumps(cfg))
    return run, cfg


def test_cli_exports_run(tmp_path, capsys):
    enc = tiny_encoder()
    run, cfg = _make_run(tmp_path, enc, export={"enabled": True, "model_name": "", "taps": ["conv1"]})
    assert export_main(["--run-dir", str(run)]) == 0
    out = Path(capsys.readouterr().out.strip())
    assert out == run / "export" / "tiny_run" / "1"
    assert json.loads((out / "assets.extra/config.json").read_text()) == cfg
    loaded = tf.saved_model.load(str(out))
    x = images(2)
    res = loaded.signatures["serving_default"](images=tf.constant(x))
    assert set(res) == {"features", "conv1"}
    np.testing.assert_allclose(res["features"].numpy(), enc(x, training=False).numpy(), rtol=1e-5, atol=1e-6)
    # --model-name / --base-path, second export gets version 2 in the same base
    assert export_main(["--run-dir", str(run), "--model-name", "other", "--base-path", str(tmp_path / "b")]) == 0
    assert export_main(["--run-dir", str(run), "--model-name", "other", "--base-path", str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in (tmp_path / "b" / "other").iterdir()) == ["1", "2"]


@pytest.mark.parametrize("case", ["no_run_dir", "no_encoder"])
def test_cli_clear_errors(tmp_path, case):
    run = tmp_path / "run"
    if case == "no_encoder":
        run.mkdir()
        (run / "config.json").write_text("{}")
    p = subprocess.run([sys.executable, "-m", "keras_ssl.export", "--run-dir", str(run)],
                       capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=120, cwd=ROOT)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    expect = "run directory not found" if case == "no_run_dir" else "no trained encoder"
    assert expect in p.stderr and str(run) in p.stderr


@pytest.mark.parametrize("text, expect", [(None, "resolved config file not found"),
                                          ("{bad", "invalid JSON at line 1"),
                                          ("[1]", "top level must be an object")])
def test_run_config_errors_name_the_file(tmp_path, text, expect):
    run = tmp_path / "run"
    run.mkdir()
    (run / "encoder.keras").write_text("not read: the config is checked first")
    if text is not None:
        (run / "config.json").write_text(text)
    with pytest.raises(ex.ExportError, match=expect) as info:
        ex.load_run(run)
    assert str(run / "config.json") in str(info.value)


def test_cli_rejects_config_mismatch(tmp_path, capsys):
    run, _ = _make_run(tmp_path, tiny_encoder(channels=3))
    assert export_main(["--run-dir", str(run)]) == 2
    assert "channels" in capsys.readouterr().err


def test_tap_named_features_is_the_features_output(tmp_path):
    """An encoder whose output layer is named "features" (as the BCNN's) may list it as a tap."""
    inp = keras.Input((28, 28, 1), name="images")
    x = keras.layers.Conv2D(2, 3, name="conv1")(inp)
    out = keras.layers.Flatten(name="features")(x)
    enc = keras.Model(inp, out)
    path = ex.export_encoder(enc, tmp_path, "m", taps=("conv1", "features"))
    res = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.constant(images(1)))
    assert set(res) == {"features", "conv1"}
    assert json.loads((path / "assets.extra/preprocessing.json").read_text())["taps"] == ["conv1"]


def test_cli_exports_project_encoder_with_custom_layers(tmp_path, capsys):
    """encoder.keras with the project's registered layers (BCNN: LocalResponseNorm) loads and exports."""
    enc = bcnn.build_bcnn(bcnn.BCNNParams(), (28, 28, 1))
    taps = list(getattr(enc, "taps", ("conv1",)))
    run, _ = _make_run(tmp_path, enc, export={"enabled": True, "model_name": "bcnn", "taps": taps})
    assert export_main(["--run-dir", str(run)]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == run / "export" / "bcnn" / "1"
    x = images(2)
    res = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.constant(x))
    assert {t for t in taps if t != "features"} <= set(res)
    np.testing.assert_allclose(res["features"].numpy(), enc(x, training=False).numpy(), rtol=1e-4, atol=1e-5)
