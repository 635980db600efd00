"""train.precision and train.jit_compile "auto": mixed-precision layers, float32 losses,
float16 loss scaling with the weight decay unscaled, a float32 encoder out."""
from functools import partial

import keras
import numpy as np
import pytest
import tensorflow as tf

import support
from keras_ssl.config import ConfigError
from keras_ssl.training.precision import computes_in_float32, resolve_jit
from support import trainer, weights

cfg = partial(
    support.small_cfg,
    {"name": "classify", "hidden": 32, "dropout": 0.0, "init": "glorot"},
    {"name": "egomotion", "max_shift_px": 2, "max_rotation_deg": 10, "rotation_bins": 4},
    seed=3, encoder={"name": "convnet", "filters": [8, 16]}, steps=8, checkpoint_every=8,
    learning_rate=0.05)


def test_bfloat16_layers_compute_in_bfloat16_weights_and_losses_stay_float32(tmp_path, digits):
    images, _ = digits(64)
    t = trainer(cfg(precision="mixed_bfloat16", steps=40), tmp_path)
    assert keras.config.dtype_policy().name == "float32"      # the global policy is left alone
    conv = t.encoder.layers[1]
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    assert t.method.network.get_layer("tx").compute_dtype == "bfloat16"
    seen = {}
    per_example = t.method.per_example

    def spy(outputs, labels):
        seen.update({k: v.dtype for k, v in outputs.items()})
        return per_example(outputs, labels)

    t.method.per_example = spy
    s = t.train(images)
    assert set(seen.values()) == {tf.float32}, seen            # the loss sees float32 logits
    assert s["final"]["loss"] < np.log(5) + np.log(5) + np.log(4)   # it learns in bfloat16


def test_the_encoder_out_of_a_mixed_run_is_float32_with_the_same_weights(tmp_path, digits):
    images, _ = digits(64)
    t = trainer(cfg(precision="mixed_bfloat16"), tmp_path)
    t.train(images)
    out = t.float32_encoder()
    assert not computes_in_float32(t.encoder) and computes_in_float32(out)
    assert out.taps == t.encoder.taps
    for a, b in zip(t.encoder.get_weights(), out.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = images[:16].astype(np.float32) / 255.0
    f16, f32 = np.asarray(t.encoder(x), np.float32), out(x).numpy()
    assert out(x).dtype == tf.float32
    np.testing.assert_allclose(f16, f32, rtol=0.05, atol=0.05 * np.abs(f32).max())   # bfloat16's rounding
    plain = trainer(cfg(), tmp_path / "f32")
    assert plain.float32_encoder() is plain.encoder


def one_step(tmp_path, digits, precision, weight_decay):
    images, _ = digits(64)
    t = trainer(cfg(precision=precision, steps=1, steps_per_execution=1, weight_decay=weight_decay,
                    learning_rate=0.01, momentum=0.0), tmp_path / precision)
    before = weights(t)
    t.train(images)
    return t, [a - b for a, b in zip(weights(t), before)]


def test_float16_scales_the_loss_and_its_update_matches_float32_with_weight_decay(tmp_path, digits):
    """One SGD step: float16 with dynamic loss scaling moves the weights as float32 does,
    with a weight decay large enough to dominate the kernels' update (were the decay
    added to the scaled gradients without the scale, it would be 2^15 times too small)."""
    t16, d16 = one_step(tmp_path, digits, "mixed_float16", 0.5)
    _, d32 = one_step(tmp_path, digits, "float32", 0.5)
    assert isinstance(t16.optimizer, keras.optimizers.LossScaleOptimizer)
    assert float(t16.optimizer.dynamic_scale.numpy()) > 1.0
    kernels = [i for i, w in enumerate(t16.method.trainable_weights) if w.path.endswith("kernel")]
    for i in kernels:
        scale = np.abs(d32[i]).max()
        assert scale > 0
        np.testing.assert_allclose(d16[i], d32[i], atol=0.05 * scale)


def test_lrn_under_bfloat16_matches_float32():
    from keras_ssl.encoders.layers import LocalResponseNorm

    x = np.random.default_rng(0).uniform(0, 40, (2, 3, 3, 16)).astype(np.float32)   # a ~10% effect
    ref = tf.nn.local_response_normalization(x, depth_radius=2, bias=1.0, alpha=1e-4 / 5, beta=0.75).numpy()
    layer = LocalResponseNorm(dtype="mixed_bfloat16")
    y = layer(x)
    assert y.dtype == tf.bfloat16
    assert np.abs(ref - x).max() > 0.05 * np.abs(x).max()
    np.testing.assert_allclose(np.asarray(y, np.float32), ref, rtol=0.01, atol=0.01)


def test_a_bfloat16_job_exports_and_saves_a_float32_encoder(tmp_path):
    from keras_ssl.config import load_config
    from keras_ssl.training.job import run

    c = load_config(support.CONFIGS / "mnist_egomotion.json", overrides={"train.precision": "mixed_bfloat16"},
                    smoke=True)
    run(c, tmp_path, progress=False, log=lambda *_: None)
    support.check_smoke_run(c, tmp_path)
    import keras_ssl.encoders  # noqa: F401

    saved = keras.models.load_model(tmp_path / "encoder.keras")
    assert computes_in_float32(saved)
    served = tf.saved_model.load(str(tmp_path / "export" / "mnist_egomotion" / "1"))
    sig = served.signatures["serving_default"]
    assert all(s.dtype == tf.float32 for s in sig.structured_outputs.values())


def test_jit_compile_auto_and_the_union_errors():
    from keras_ssl.config import config_from_dict as from_dict

    def config_from_dict(raw):
        return from_dict({"name": "t", "encoder": {"name": "bcnn"}, "pretext": {"name": "egomotion"},
                          "method": {"name": "classify"}, **raw})

    assert resolve_jit("auto") is bool(tf.config.list_physical_devices("GPU"))
    assert resolve_jit(True) is True and resolve_jit(False) is False
    assert config_from_dict({"train": {"jit_compile": "auto"}}).train.jit_compile == "auto"
    assert config_from_dict({"train": {"jit_compile": True}}).train.jit_compile is True
    with pytest.raises(ConfigError, match=r"'train.jit_compile' must be true or false or one of 'auto', got 'yes'"):
        config_from_dict({"train": {"jit_compile": "yes"}})
    with pytest.raises(ConfigError, match=r"'train.precision' must be one of .*mixed_bfloat16"):
        config_from_dict({"train": {"precision": "bfloat16"}})


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_under_two_replicas_matches_one_device(tmp_path, digits, precision):
    """The loss scale and the casts work inside MirroredStrategy's replica context:
    2 logical CPUs end 4 steps where 1 device ends (within 16-bit rounding)."""
    images, _ = digits(64)
    c = cfg(precision=precision, steps=4, steps_per_execution=2)
    one = trainer(c, tmp_path / "one", tf.distribute.OneDeviceStrategy("/cpu:0"))
    two = trainer(c, tmp_path / "two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    for w1, w2 in zip(one.method.trainable_weights, two.method.trainable_weights):
        w2.assign(w1)
    before = weights(one)
    s1, s2 = one.train(images), two.train(images)
    assert np.isclose(s1["final"]["loss"], s2["final"]["loss"], rtol=0.02)
    for a, b, w0 in zip(weights(one), weights(two), before):
        moved = np.abs(a - w0).max()
        np.testing.assert_allclose(a, b, atol=0.1 * moved + 1e-6)


def test_a_run_directory_from_before_the_setting_resumes_in_float32_only(tmp_path):
    """A config.json written before train.precision existed trained in float32: it
    resumes under float32 and is refused under bfloat16 (what the weights learn changes)."""
    import json

    from keras_ssl.training.run_dir import prepare_run_dir

    run_dir = tmp_path / "run"
    prepare_run_dir(run_dir, cfg())
    (run_dir / "checkpoints").mkdir()
    old = json.loads((run_dir / "config.json").read_text())
    del old["train"]["precision"]
    (run_dir / "config.json").write_text(json.dumps(old))
    prepare_run_dir(run_dir, cfg())
    assert json.loads((run_dir / "config.json").read_text())["train"]["precision"] == "float32"
    with pytest.raises(ConfigError, match="differs in: train"):
        prepare_run_dir(run_dir, cfg(precision="mixed_bfloat16"))
