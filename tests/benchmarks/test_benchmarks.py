"""The benchmark scripts' own logic (their timed runs are benchmarks, not tests)."""
import importlib
import sys
from pathlib import Path

import pytest

from support import ROOT  # noqa: E402


def benchmark_module(name):
    """A script of benchmarks/ imported as a module (they import each other by name)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def method_costs():
    return benchmark_module("method_costs")


def bench_line(rate, views=2, ratio=1.0):
    return {"examples_per_s": rate, "views": views, "pipeline_ratio": ratio}


def test_cost_is_the_median_of_per_round_ratios(method_costs):
    # Round 2 ran on a machine twice as slow: the relative cost must not move.
    rounds = [{"a": bench_line(1000.0), "b": bench_line(250.0, views=10, ratio=0.9)},
              {"a": bench_line(500.0), "b": bench_line(125.0, views=10, ratio=0.95)},
              {"a": bench_line(1000.0), "b": bench_line(200.0, views=10, ratio=1.0)}]
    rows = {r["config"]: r for r in method_costs.cost_table(rounds)}
    assert rows["a"]["relative_cost"] == 1.0
    assert rows["b"]["relative_cost"] == pytest.approx(4.0)      # ratios 4, 4, 5
    assert rows["b"]["examples_per_s"] == 200.0 and rows["b"]["views"] == 10
    assert rows["b"]["ms_per_example"] == pytest.approx(5.0)
    md = method_costs.markdown(list(rows.values()), 3, 200)
    assert "| b | 10 | 200 | 5.000 | 4.00x | 0.95 |" in md and "cost vs a" in md


def test_shifted_input_trains_only_the_head():
    hv = benchmark_module("head_variants")
    import keras
    import numpy as np

    from keras_ssl.evaluation.classifier import mlp_head
    inp = keras.Input((28, 28, 1))
    enc = keras.Model(inp, keras.layers.Flatten()(keras.layers.Conv2D(2, 3, strides=4)(inp)))
    model = hv.ShiftedInput(enc, mlp_head(enc.output.shape[-1], 8, 0.0, num_classes=10), shift=2)
    x = np.zeros((3, 28, 28, 1), np.float32)
    x[:, 14, 14] = 1.0
    assert model(x).shape == (3, 10)
    assert {id(v) for v in model.trainable_variables} == {id(v) for v in model.head.trainable_variables}
    # Training-mode calls move the input by at most `shift` px; inference-mode calls do not.
    probe = hv.ShiftedInput(keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten()]),
                            keras.layers.Identity(), shift=2)
    assert np.array_equal(probe(x, training=False), x.reshape(3, -1))
    moved = [np.argwhere(np.asarray(probe(x, training=True))[0].reshape(28, 28))[0] for _ in range(20)]
    assert all(np.abs(m - 14).max() <= 2 for m in moved) and any((m != 14).any() for m in moved)


def test_pipeline_settings_best_window_over_the_fixed_batch():
    ps = benchmark_module("pipeline_settings")
    rounds = [{"config": 900.0, "config (control)": 880.0, "one call": 950.0, "fixed batch": 1000.0},
              {"config": 940.0, "config (control)": 870.0, "one call": 800.0, "fixed batch": 980.0}]
    ratios = ps.best_ratios(rounds)
    assert set(ratios) == {"config", "config (control)", "one call"}
    assert ratios["config"] == (940.0, pytest.approx(0.94)) and ratios["one call"][1] == pytest.approx(0.95)
    md = ps.markdown(ratios, 1000.0, 2, 300)
    assert "| one call | 950 | 0.950 |" in md and "noise floor (the config's pipeline twice): 0.060" in md
    controls = [kw for name, kw in ps.SETTINGS.items() if name.startswith("config")]
    assert controls == [{}, {}]
