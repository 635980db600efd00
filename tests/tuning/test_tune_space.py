"""The search space (keras_ssl.tuning.space): narrowing coarse -> fine and KerasTuner
hyperparameters."""
import math

import pytest

from keras_ssl.tuning.config import SearchDim
from keras_ssl.tuning.space import Fixed, kt_hyperparameters, narrow_space


# --------------------------------------------------------------------------
# Narrowing coarse -> fine
# --------------------------------------------------------------------------

def test_narrowing_is_in_log_space_for_log_keys():
    space = {"lr": SearchDim("float", 1e-4, 1e-1, log=True),
             "drop": SearchDim("float", 0.0, 1.0, step=0.1)}
    top = [{"lr": 1e-3, "drop": 0.2}, {"lr": 1e-2, "drop": 0.4}]
    out = narrow_space(space, top, top[0], margin=0.0)
    assert out["lr"].min == pytest.approx(1e-3) and out["lr"].max == pytest.approx(1e-2)
    assert out["lr"].log
    # margin: 10% of the previous range's width, measured in log space (3 decades)
    out = narrow_space(space, top, top[0], margin=0.1)
    assert out["lr"].min == pytest.approx(1e-3 / 10 ** 0.3)
    assert out["lr"].max == pytest.approx(1e-2 * 10 ** 0.3)
    assert math.log10(out["lr"].max / out["lr"].min) == pytest.approx(1.6)
    # a linear key widens linearly and snaps to its step grid
    assert out["drop"].min == pytest.approx(0.1) and out["drop"].max == pytest.approx(0.5)
    # clipped to the previous range
    out = narrow_space(space, [{"lr": 1e-4, "drop": 0.0}, {"lr": 2e-4, "drop": 0.1}],
                       {"lr": 1e-4, "drop": 0.0}, margin=0.5)
    assert out["lr"].min == pytest.approx(1e-4) and out["drop"].min == 0.0


def test_narrowing_choices_ints_and_pins():
    space = {"bins": SearchDim("choice", values=(10, 20, 30, 60)),
             "bs": SearchDim("choice", values=(64, 125, 256)),
             "hidden": SearchDim("int", 250, 2000, log=True),
             "wd": SearchDim("float", 1e-5, 1e-2, log=True)}
    top = [{"bins": 30, "bs": 125, "hidden": 400, "wd": 1e-3},
           {"bins": 10, "bs": 125, "hidden": 700, "wd": 1e-4}]
    out = narrow_space(space, top, top[0], margin=0.0, pin=("wd",))
    assert out["bins"].values == (10, 30)              # original order kept
    assert out["bs"] == Fixed(125)                     # one value left -> pinned
    assert out["wd"] == Fixed(1e-3)                    # pinned to the best trial's value
    assert (out["hidden"].min, out["hidden"].max) == (400, 700)
    assert isinstance(out["hidden"].min, int)


def test_fine_stage_hyperparameters_pin_with_fixed():
    import keras_tuner as kt

    space = {"lr": SearchDim("float", 1e-3, 1e-2, log=True), "bs": Fixed(125),
             "bins": SearchDim("choice", values=(10, 20))}
    hp = kt_hyperparameters(space, "random")
    by = {p.name: p for p in hp.space}
    assert isinstance(by["bs"], kt.engine.hyperparameters.Fixed) and by["bs"].value == 125
    assert by["lr"].sampling == "log"
    grid = kt_hyperparameters(space, "grid", grid_points=3)
    values = {p.name: p for p in grid.space}["lr"].values
    assert values[0] == pytest.approx(1e-3) and values[1] == pytest.approx(10 ** -2.5, rel=1e-4)
