"""Dataset facts reach method builders as an argument (keras_ssl.methods.base.DatasetFacts),
the same keyword for every registered method; memory-bank methods need num_images."""
import inspect

import pytest

from keras_ssl import registry
from keras_ssl.encoders import build_encoder
from keras_ssl.methods.base import NO_FACTS, DatasetFacts
from keras_ssl.methods.memory_bank import MemoryBankParams
from support import small_cfg, trainer

SHAPE = (28, 28, 1)
METHODS = registry.names("method")


@pytest.mark.parametrize("name", METHODS)
def test_every_builder_takes_the_facts_the_same_way(name):
    sig = inspect.signature(registry.entry("method", name).builder)
    positional = [p for p in sig.parameters.values() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert len(positional) == 3 and positional[1].name == "encoder" and positional[2].name == "pretext"
    facts = sig.parameters["facts"]
    assert facts.kind is inspect.Parameter.KEYWORD_ONLY and facts.default is NO_FACTS
    assert len(sig.parameters) == 4


def _build(method: str, pretext: dict, facts=None):
    """The method of a small config built by hand, with ``facts`` (None: the builder's default)."""
    cfg = small_cfg({"name": method, "negatives": 8, "embedding": 8}, pretext)
    enc = build_encoder(cfg.encoder, SHAPE)
    pre = registry.build("pretext", cfg.pretext, SHAPE)
    kwargs = {} if facts is None else {"facts": facts}
    return registry.build("method", cfg.method, enc, pre, **kwargs)


@pytest.mark.parametrize("method,pretext", [("npid", {"name": "augment"}),
                                            ("pirl", {"name": "pirl", "transform": "rotation"})])
def test_memory_bank_methods_size_the_bank_from_the_facts(method, pretext):
    assert issubclass(registry.params_class("method", method), MemoryBankParams)
    m = _build(method, pretext, DatasetFacts(num_images=37))
    assert tuple(m.bank.entries.shape) == (37, 8)
    for missing in (None, DatasetFacts(), DatasetFacts(num_images=0)):
        with pytest.raises(ValueError, match="num_images"):
            _build(method, pretext, missing)


def test_the_pretext_carries_no_dataset_facts(tmp_path):
    t = trainer(small_cfg({"name": "npid", "negatives": 8, "embedding": 8}, {"name": "augment"}),
                tmp_path, num_images=40)
    assert t.facts == DatasetFacts(num_images=40) and t.method.bank.size == 40
    assert not hasattr(t.pretext, "num_images")
