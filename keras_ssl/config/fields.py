"""Strict conversion of JSON values to the annotated dataclass fields of a config.

:func:`build_dataclass` builds a frozen dataclass from a JSON object: an unknown
key, a value of the wrong type, outside a ``Literal``'s values or out of a
:func:`num` range raises :class:`ConfigError` naming the dotted key and the
file; then the object's ``validate()`` runs. Components (``Component`` fields)
are looked up in the registry and their ``Params`` built the same way.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field
from typing import Any, Literal

from keras_ssl.registry import Component


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and the file."""


def _range(lo=None, hi=None, lo_open=False):
    """Field metadata: inclusive range [lo, hi] (``lo_open``: lo excluded)."""
    return {"range": (lo, hi, lo_open)}


def num(default, lo=None, hi=None, lo_open=False):
    """A dataclass field with ``default`` whose value (each item, for a tuple)
    must lie in [lo, hi] (``lo_open``: lo excluded); None bounds are open."""
    return field(default=default, metadata=_range(lo, hi, lo_open))



def _describe(tp) -> str:
    """What a value of annotation ``tp`` is, for an error message."""
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _convert(value, tp, key: str, where: str):
    """Convert a JSON value to annotation ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(value, inner[0], key, where)
        for alternative in inner:   # e.g. bool | Literal["auto"]: the first that takes it
            try:
                return _convert(value, alternative, key, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: '{key}' must be {' or '.join(_describe(a) for a in inner)}, "
                          f"got {value!r}")
    if origin is Literal:   # the allowed values are named in the message
        if value not in args:
            raise ConfigError(f"{where}: '{key}' must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: '{key}' must be a list, got {type(value).__name__}")
        item_tp = args[0]
        return tuple(_convert(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' must be an object")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, key, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: '{key}' must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: '{key}' has unsupported type {getattr(tp, '__name__', tp)}")


def check_range(value, meta, key: str, where: str) -> None:
    """ConfigError unless ``value`` (each item of a tuple) is in the :func:`num` range in ``meta``."""
    rng = meta.get("range")
    if rng is None or value is None:
        return
    lo, hi, lo_open = rng
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if lo is not None and (v < lo or (lo_open and v == lo)):
            op = ">" if lo_open else ">="
            raise ConfigError(f"{where}: '{key}' must be {op} {lo}, got {v!r}")
        if hi is not None and v > hi:
            raise ConfigError(f"{where}: '{key}' must be <= {hi}, got {v!r}")


def build_dataclass(cls, data, prefix: str, where: str):
    """Build dataclass ``cls`` from dict ``data``, strictly: unknown keys, wrong types and
    values outside a field's :func:`num` range raise ConfigError naming ``prefix.key``
    and ``where``; then the object's ``validate()``, if it has one, runs."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: '{prefix or 'config'}' must be an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing required key '{key}'")
            continue
        tp = hints[name]
        if tp is Component:
            kwargs[name] = _build_component(f.metadata.get("registry", name), data[name], key, where)
            continue
        if typing.get_origin(tp) is tuple and typing.get_args(tp)[:1] == (Component,):
            # a list of components (registry.components): each item a name or a whole
            # section, its keys checked under '<key>[i]'
            items = data[name]
            if not isinstance(items, (list, tuple)):
                raise ConfigError(f"{where}: '{key}' must be a list, got {type(items).__name__}")
            kwargs[name] = tuple(_build_component(f.metadata.get("registry", name), v, f"{key}[{i}]", where)
                                 for i, v in enumerate(items))
            continue
        value = _convert(data[name], tp, key, where)
        check_range(value, f.metadata, key, where)
        kwargs[name] = value
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: '{prefix or 'config'}': {e}") from None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as e:
            raise ConfigError(f"{where}: {e}" if not prefix else f"{where}: '{prefix}': {e}") from None
    return obj


def _build_component(kind: str, data, key: str, where: str) -> Component:
    from keras_ssl import registry   # imports this module too

    if isinstance(data, str):       # "jigsaw" is short for {"name": "jigsaw"}
        data = {"name": data}
    if not isinstance(data, dict) or "name" not in data:
        raise ConfigError(f"{where}: '{key}' must be a name or an object with a 'name'")
    name = data["name"]
    try:
        params_cls = registry.params_class(kind, name)
    except KeyError as e:
        raise ConfigError(f"{where}: '{key}.name': {e.args[0]}") from None
    params = build_dataclass(params_cls, {k: v for k, v in data.items() if k != "name"}, key, where)
    return Component(name=name, params=params)

