"""One explicit registry of named components (DESIGN principle 2).

Three kinds: ``encoder`` (plain functional encoders), ``pretext`` (samplers
that make views and pseudo-labels) and ``method`` (heads + loss around an
encoder). Each entry registers a builder and the frozen dataclass holding its
parameters. An unknown name fails loudly with the list of known ones.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

KINDS = ("encoder", "pretext", "method")

# Modules whose import registers the built-in components.
_MODULES = {
    "encoder": ("keras_ssl.encoders.bcnn", "keras_ssl.encoders.convnet"),
    "pretext": ("keras_ssl.pretext.egomotion", "keras_ssl.pretext.sfa", "keras_ssl.pretext.rotation",
                "keras_ssl.pretext.jigsaw", "keras_ssl.pretext.relative_position",
                "keras_ssl.pretext.reconstruction", "keras_ssl.pretext.augment", "keras_ssl.pretext.pirl"),
    "method": ("keras_ssl.methods.classify", "keras_ssl.methods.contrastive",
               "keras_ssl.methods.autoencoder", "keras_ssl.methods.npid", "keras_ssl.methods.pirl"),
}


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Any
    params: type


_REGISTRY: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
_loaded: set[str] = set()


def register(kind: str, name: str, params: type) -> Callable:
    """Decorator: ``@register("encoder", "bcnn", BCNNParams)``."""
    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}; known: {KINDS}")

    def deco(builder):
        if name in _REGISTRY[kind] and _REGISTRY[kind][name].builder is not builder:
            raise ValueError(f"{kind} {name!r} registered twice")
        _REGISTRY[kind][name] = Entry(name, builder, params)
        return builder

    return deco


def _load(kind: str) -> None:
    if kind in _loaded:
        return
    for mod in _MODULES[kind]:
        importlib.import_module(mod)
    _loaded.add(kind)


def names(kind: str) -> list[str]:
    _load(kind)
    return sorted(_REGISTRY[kind])


def entry(kind: str, name: str) -> Entry:
    _load(kind)
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(names(kind))}") from None


def params_class(kind: str, name: str) -> type:
    return entry(kind, name).params


def build(kind: str, component, *args, **kwargs):
    """Build registry entry ``component.name`` with ``component.params``."""
    return entry(kind, component.name).builder(component.params, *args, **kwargs)
