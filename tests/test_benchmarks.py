"""The benchmark scripts' own logic (their timed runs are benchmarks, not tests)."""
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def method_costs():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        yield importlib.import_module("method_costs")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def bench_line(rate, views=2, ratio=1.0):
    return {"pairs_per_s": rate, "views": views, "pipeline_ratio": ratio}


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
