"""One explicit registry of named components (DESIGN principle 2).

Three kinds: ``encoder`` (plain functional encoders), ``pretext`` (samplers
that make views and pseudo-labels) and ``method`` (heads + loss around an
encoder). Each entry registers a builder and the frozen :class:`Params`
dataclass of its parameters with :func:`register`; that decorator is the only
step: the first look-up of a kind imports every module of the kind's package
(:data:`PACKAGES`), so a new file in ``keras_ssl/methods/`` with an
``@register("method", ...)`` is found without a second list to edit. An
unknown name fails loudly with the list of known ones.

Builder signatures, by kind (``params`` is the registered dataclass):

- ``encoder``: ``builder(params, input_shape) -> keras.Model``;
- ``pretext``: ``builder(params, image_shape) -> Pretext``;
- ``method``: ``builder(params, encoder, pretext, *, facts=NO_FACTS) -> Method``
  (``facts``: a :class:`keras_ssl.methods.base.DatasetFacts`, what the data
  says, e.g. the number of pretraining images).
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal

KINDS = ("encoder", "pretext", "method")

#: The package whose modules register the components of each kind.
PACKAGES = {"encoder": "keras_ssl.encoders", "pretext": "keras_ssl.pretext", "method": "keras_ssl.methods"}


@dataclass(frozen=True)
class Component:
    """A registry entry chosen by ``name`` (as registered, e.g. ``"jigsaw"``) with
    ``params``, an instance of the :class:`Params` dataclass that the entry registered."""
    name: str
    params: Any


def component(kind: str, name: str):
    """A dataclass field holding a registry entry of ``kind`` (default: ``name`` with its defaults).

    In JSON: ``"jigsaw"`` or ``{"name": "jigsaw", "permutations": 1000}``.
    """
    def default():
        return Component(name, params_class(kind, name)())
    return dataclasses.field(default_factory=default, metadata={"registry": kind})


def components(kind: str, *names: str):
    """A dataclass field holding a tuple of registry entries of ``kind`` (default: the
    entries ``names`` with their defaults; annotate it ``tuple[Component, ...]``).

    In JSON: a list of names or sections, ``["rotation", {"name": "jigsaw", "grid": 2}]``;
    a key of item i is checked (and named in errors) as ``<field>[i].<key>``.
    """
    def default():
        return tuple(Component(n, params_class(kind, n)()) for n in names)
    return dataclasses.field(default_factory=default, metadata={"registry": kind})


class Params:
    """Base of the frozen parameter dataclasses that components register.

    Construction checks the field declarations as parsing a config does, so
    parameters built in Python hold nothing a config could not: a ``Literal``
    field one of its values, a :func:`keras_ssl.config.num` field a value in
    its range (ConfigError naming the class and the field). Rules across
    fields go in a ``validate()`` method (raising ValueError), which
    construction runs too, so parameters built in Python are held to it (and
    parsing again, to name the file). A subclass with its own
    ``__post_init__`` calls ``super().__post_init__()``.
    """

    def __post_init__(self):
        from keras_ssl.config import ConfigError, check_range   # config imports this module

        cls = type(self)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(self):
            value, tp = getattr(self, f.name), hints[f.name]
            choices = typing.get_args(tp) if typing.get_origin(tp) is Literal else None
            if choices is not None and value not in choices:
                raise ConfigError(f"{cls.__name__}: '{f.name}' must be one of {list(choices)}, got {value!r}")
            check_range(value, f.metadata, f.name, cls.__name__)
        validate = getattr(self, "validate", None)
        if validate is not None:   # parsing runs it too (naming the file); idempotent
            validate()


@dataclass(frozen=True)
class Entry:
    """A registered component: its ``name``, its ``builder`` and its ``params`` dataclass;
    ``shared``: a method that many pretexts share (see :func:`run_label`)."""
    name: str
    builder: Any
    params: type
    shared: bool = False


_REGISTRY: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
_loaded: set[str] = set()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}; known: {KINDS}")


def register(kind: str, name: str, params: type, *, shared: bool = False) -> Callable:
    """Decorator: ``@register("encoder", "bcnn", BCNNParams)``.

    ``shared=True`` (methods only): a head that many pretexts put on the encoder
    (``classify``, ``contrastive``), so a run is named after its pretext, not the
    method (:func:`run_label`).
    A second builder under the same ``kind`` and ``name`` raises ValueError
    (two modules claiming one config name would silently shadow each other).
    """
    _check_kind(kind)
    if shared and kind != "method":
        raise ValueError(f"only methods can be shared, not {kind} {name!r}")

    def deco(builder):
        if name in _REGISTRY[kind] and _REGISTRY[kind][name].builder is not builder:
            raise ValueError(f"{kind} {name!r} registered twice")
        _REGISTRY[kind][name] = Entry(name, builder, params, shared)
        return builder

    return deco


def run_label(pretext: str, method: str) -> str:
    """The name of a run's rows in its results: the method's (``npid``, ``moco`` and
    ``deepcluster`` all train on the one ``augment`` pretext), or the pretext's when the
    method is a head many pretexts share (``egomotion``, ``rotation``, ``jigsaw`` are all
    trained by ``classify``)."""
    return pretext if entry("method", method).shared else method


def modules(kind: str) -> list[str]:
    """Dotted names of the modules of ``kind``'s package (not sub-packages' modules)."""
    _check_kind(kind)
    package = importlib.import_module(PACKAGES[kind])
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__, package.__name__ + "."))


def _load(kind: str) -> None:
    """Import every module of ``kind``'s package once: their ``@register`` calls fill the registry."""
    if kind in _loaded:
        return
    for mod in modules(kind):
        importlib.import_module(mod)
    _loaded.add(kind)


def names(kind: str) -> list[str]:
    """Registered names of ``kind``, sorted."""
    _check_kind(kind)
    _load(kind)
    return sorted(_REGISTRY[kind])


def entry(kind: str, name: str) -> Entry:
    """The entry ``name`` of ``kind``; KeyError listing the known names otherwise."""
    _check_kind(kind)
    _load(kind)
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(names(kind))}") from None


def params_class(kind: str, name: str) -> type:
    """The parameters dataclass registered for ``name``."""
    return entry(kind, name).params


def build(kind: str, component, *args, **kwargs):
    """Build registry entry ``component.name`` with ``component.params``:
    ``builder(component.params, *args, **kwargs)`` (signatures in the module docstring)."""
    return entry(kind, component.name).builder(component.params, *args, **kwargs)
