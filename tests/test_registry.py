"""The registry (keras_ssl.registry): one ``@register`` is the whole registration,
unknown names fail with the known ones, a name is claimed once; and what every
registered component declares (a documented Params dataclass whose ``Literal``
and range fields check themselves)."""
import ast
import dataclasses
import importlib.util
import sys
import typing

import pytest

from keras_ssl import config, registry
from keras_ssl.evaluation.reference import LABEL_COUNTS
from keras_ssl.registry import Params


def _registered_in_source(kind: str) -> set:
    """Names that the modules of ``kind``'s package register, read from their source:
    every ``@register(kind, "name", ...)`` / ``@registry.register(...)`` decorator."""
    found = set()
    for mod in registry.modules(kind):
        tree = ast.parse(open(importlib.util.find_spec(mod).origin).read())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if not isinstance(deco, ast.Call):
                    continue
                fn = deco.func.attr if isinstance(deco.func, ast.Attribute) else getattr(deco.func, "id", None)
                if fn == "register" and ast.literal_eval(deco.args[0]) == kind:
                    found.add(ast.literal_eval(deco.args[1]))
    return found


@pytest.mark.parametrize("kind", registry.KINDS)
def test_names_are_what_the_packages_register(kind):
    assert registry.names(kind) == sorted(_registered_in_source(kind))
    assert registry.names(kind), kind
    assert all(m in sys.modules for m in registry.modules(kind))      # every module was imported


def test_every_module_of_a_package_is_scanned():
    assert "keras_ssl.methods.npid" in registry.modules("method")
    assert "keras_ssl.pretext.jigsaw" in registry.modules("pretext")
    assert "keras_ssl.encoders.bcnn" in registry.modules("encoder")
    with pytest.raises(ValueError, match="unknown registry kind"):
        registry.modules("optimizer")


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry's state, restored after the test (which may register names)."""
    monkeypatch.setattr(registry, "_REGISTRY", {k: dict(v) for k, v in registry._REGISTRY.items()})
    monkeypatch.setattr(registry, "_loaded", set(registry._loaded))
    return monkeypatch


def test_a_new_module_needs_only_its_register(tmp_path, scratch_registry):
    pkg = tmp_path / "extra_methods"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tiny.py").write_text(
        "from dataclasses import dataclass\n"
        "from keras_ssl.registry import Params, register\n\n"
        "@dataclass(frozen=True)\n"
        "class TinyParams(Params):\n"
        "    \"\"\"``width``: units.\"\"\"\n"
        "    width: int = 3\n\n"
        "@register(\"method\", \"tiny_test_method\", TinyParams)\n"
        "def build_tiny(p, encoder, pretext, *, facts=None):\n"
        "    return ('built', p.width, encoder, pretext)\n")
    scratch_registry.syspath_prepend(str(tmp_path))
    scratch_registry.setitem(registry.PACKAGES, "method", "extra_methods")
    scratch_registry.setattr(registry, "_loaded", registry._loaded - {"method"})
    try:
        assert "tiny_test_method" in registry.names("method")
        comp = config.Component("tiny_test_method", registry.params_class("method", "tiny_test_method")())
        assert registry.build("method", comp, "enc", "pre") == ("built", 3, "enc", "pre")
    finally:
        for mod in ("extra_methods", "extra_methods.tiny"):
            sys.modules.pop(mod, None)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError) as e:
        registry.entry("method", "simclr")
    msg = e.value.args[0]
    assert "unknown method 'simclr'" in msg
    assert all(name in msg for name in registry.names("method"))


def test_a_name_is_registered_once(scratch_registry):
    @dataclasses.dataclass(frozen=True)
    class P(Params):
        """No fields."""

    def first(p, shape):
        return "first"

    def second(p, shape):
        return "second"

    registry.register("pretext", "twice_test", P)(first)
    registry.register("pretext", "twice_test", P)(first)       # the same builder again: a no-op
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("pretext", "twice_test", P)(second)
    with pytest.raises(ValueError, match="registered twice"):  # nor a built-in name
        registry.register("method", "npid", P)(second)
    with pytest.raises(ValueError, match="unknown registry kind"):
        registry.register("loss", "x", P)


# -- what every registered component declares ---------------------------------

ENTRIES = [(kind, name) for kind in registry.KINDS for name in registry.names(kind)]


def _documented(cls) -> str:
    """The docstrings of ``cls`` and its bases (a subclass documents what it adds)."""
    return "\n".join(c.__doc__ or "" for c in cls.__mro__ if c not in (object, Params))


@pytest.mark.parametrize("kind,name", ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_params_are_documented_frozen_params(kind, name):
    cls = registry.params_class(kind, name)
    assert dataclasses.is_dataclass(cls) and issubclass(cls, Params)
    assert cls.__dataclass_params__.frozen
    doc = _documented(cls)
    undocumented = [f.name for f in dataclasses.fields(cls) if f"``{f.name}``" not in doc]
    assert not undocumented, f"{cls.__name__}: fields not named in the docstring: {undocumented}"
    cls()    # the defaults are valid


@pytest.mark.parametrize("kind,name", ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_literal_and_range_fields_check_themselves(kind, name):
    cls = registry.params_class(kind, name)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if typing.get_origin(hints[f.name]) is typing.Literal:
            with pytest.raises(config.ConfigError, match=rf"'{f.name}' must be one of"):
                cls(**{f.name: "no such value"})
            raw = {"name": "x", "encoder": "convnet", "pretext": "rotation", "method": "classify",
                   kind: {"name": name, f.name: "no such value"}}
            with pytest.raises(config.ConfigError, match=rf"'{kind}\.{f.name}' must be one of"):
                config.config_from_dict(raw, "t.json")
        lo = f.metadata.get("range", (None,))[0]
        if lo is not None and not isinstance(f.default, tuple):
            with pytest.raises(config.ConfigError, match=rf"'{f.name}' must be"):
                cls(**{f.name: lo - 1})


def test_rules_across_fields_hold_for_parameters_built_in_python():
    """validate() runs on construction, not only when a config is parsed: parameters a
    config would refuse cannot be made in Python either, and the config still names the file."""
    cls = registry.params_class("method", "classify")
    with pytest.raises(ValueError, match="top_convs must list filter counts >= 1"):
        cls(top_convs=(64, 0))
    assert cls(top_convs=(64, 32)).top_convs == (64, 32)
    raw = {"name": "x", "encoder": "convnet", "pretext": "rotation",
           "method": {"name": "classify", "top_convs": [64, 0]}}
    with pytest.raises(config.ConfigError, match=r"t\.json: 'method': top_convs must list"):
        config.config_from_dict(raw, "t.json")


def test_enumerations_are_literals():
    """A field of allowed strings is a ``Literal`` (checked by parsing and by construction,
    no hand-written validate()); the only free strings name a label or a file."""
    for kind, name in ENTRIES:
        cls = registry.params_class(kind, name)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert hints[f.name] is not str or f.name.endswith(("_label", "_file")), \
                f"{cls.__name__}.{f.name}: a free string (an enumeration is a Literal)"


# -- the experiment config's own sections -----------------------------------

SECTIONS = [config.DataConfig, config.TrainConfig, config.EvalConfig, config.ExportConfig,
            config.ExperimentConfig]


@pytest.mark.parametrize("cls", SECTIONS, ids=lambda c: c.__name__)
def test_config_sections_document_every_field(cls):
    undocumented = [f.name for f in dataclasses.fields(cls) if f"``{f.name}``" not in (cls.__doc__ or "")]
    assert not undocumented, f"{cls.__name__}: fields not named in the docstring: {undocumented}"


def test_label_counts_come_from_one_place():
    assert config.EvalConfig().label_counts == LABEL_COUNTS == (100, 300, 1000, 10000)


def test_runs_are_named_after_the_method_unless_its_head_is_shared():
    """Rows of NPID, MoCo and DeepCluster (all on the ``augment`` pretext) are told apart by
    the method; the heads that many pretexts share take the pretext's name."""
    assert {m for m in registry.names("method") if registry.entry("method", m).shared} == {"classify", "contrastive"}
    assert registry.run_label("augment", "npid") == "npid"
    assert registry.run_label("augment", "moco") == "moco"
    assert registry.run_label("egomotion", "classify") == "egomotion"
    assert registry.run_label("sfa_time", "contrastive") == "sfa_time"
    with pytest.raises(ValueError, match="only methods can be shared"):
        registry.register("pretext", "x", Params, shared=True)
