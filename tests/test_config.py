import json

import pytest
from support import ROOT, experiment_configs

from keras_ssl.config import ConfigError, apply_overrides, load_config, parse_override, to_dict

BASE = {"encoder": {"name": "bcnn"}, "pretext": {"name": "egomotion"}, "method": {"name": "classify"}}


def write(tmp_path, data, name="exp.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


def test_loads_and_defaults(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.name == "exp"
    assert cfg.encoder.name == "bcnn" and cfg.encoder.params.conv1_filters == 96
    assert cfg.pretext.params.max_shift_px == 3
    assert cfg.eval.label_counts == (100, 300, 1000, 10000)


@pytest.mark.parametrize("data, key", [
    ({**BASE, "trian": {}}, "trian"),
    ({**BASE, "train": {"stepz": 3}}, "train.stepz"),
    ({**BASE, "pretext": {"name": "egomotion", "max_shift": 2}}, "pretext.max_shift"),
])
def test_unknown_key_names_key_and_file(tmp_path, data, key):
    p = write(tmp_path, data)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert f"'{key}'" in str(e.value) and str(p) in str(e.value)


@pytest.mark.parametrize("section, value, key", [
    ({"train": {"steps": "many"}}, None, "train.steps"),
    ({"train": {"steps": 0}}, None, "train.steps"),
    ({"train": {"learning_rate": 0.0}}, None, "train.learning_rate"),
    ({"eval": {"head_dropout": 1.5}}, None, "eval.head_dropout"),
    ({"train": {"optimizer": "rmsprop"}}, None, "train.optimizer"),
    ({"train": {"jit_compile": "yes"}}, None, "train.jit_compile"),
])
def test_wrong_type_or_range(tmp_path, section, value, key):
    p = write(tmp_path, {**BASE, **section})
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(p)


def test_unknown_component_lists_known(tmp_path):
    with pytest.raises(ConfigError, match="known: .*bcnn"):
        load_config(write(tmp_path, {**BASE, "encoder": {"name": "resnet9000"}}))


def test_component_validate(tmp_path):
    bad = {**BASE, "pretext": {"name": "egomotion", "rotation_bins": 7}}
    with pytest.raises(ConfigError, match="rotation_bins"):
        load_config(write(tmp_path, bad))


def test_invalid_json_and_missing_file(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text("{ not json")
    with pytest.raises(ConfigError, match="invalid JSON at line 1"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.json")


def test_overrides_and_smoke(tmp_path):
    p = write(tmp_path, {**BASE, "smoke": {"train.steps": 3}})
    key, value = parse_override("train.batch_size=16")
    cfg = load_config(p, {key: value, "eval.seeds": [4, 5]}, smoke=True)
    assert cfg.train.batch_size == 16 and cfg.eval.seeds == (4, 5)
    assert cfg.train.steps == 3                      # the config's own smoke section wins
    assert cfg.data.max_pretrain_images == 512       # default smoke overrides apply
    with pytest.raises(ConfigError):
        apply_overrides({"train": 3}, {"train.steps": 1}, "x")


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    again = load_config(write(tmp_path, to_dict(cfg), "again.json"))
    assert again == cfg.__class__(**{**cfg.__dict__, "name": "exp"})


def test_every_shipped_config_loads():
    paths = experiment_configs()      # every JSON under configs/ but the tuning configs
    assert paths
    for p in paths:
        load_config(p)
        load_config(p, smoke=True)


def test_a_scratch_baseline_shorter_than_the_head_is_refused():
    path = ROOT / "configs" / "mnist_egomotion.json"
    with pytest.raises(ConfigError, match=r"'eval'.*scratch_steps \(1\) must be >= head_steps \(4000\)"):
        load_config(path, {"eval.scratch_steps": 1})
    assert load_config(path, {"eval.scratch_steps": 40000}).eval.scratch_steps == 40000
    assert not load_config(path, {"eval.scratch_steps": 1, "eval.scratch": False}).eval.scratch
