"""Mapping -> dataclass conversion driven by the fields' annotations (the engine under every section).

A dataclass field's annotation says what a value may be (``int``, ``float``, ``bool``, ``str``,
``Literal[...]``, unions, lists, tuples, dicts, nested dataclasses); unknown keys are refused with
the allowed ones and a did-you-mean. A field may carry ``metadata={"parse": fn}`` for its own
conversion, and a dataclass a ``check(path)`` method for checks across its fields. Numbers must be
finite (``.inf`` and ``.nan`` are refused by key).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
import re
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from esrgan.options.errors import OptionsError, _join, _show

_FLOAT_RE = re.compile(r"^[-+]?(?:\d[\d_]*\.?[\d_]*(?:[eE][-+]?\d+)?|\.\d[\d_]*(?:[eE][-+]?\d+)?|\.inf|\.nan)$", re.I)


# The largest integer an option may hold: a 64-bit signed integer, as torch and numpy store them.
MAX_INT = 2**63 - 1

def _describe(tp: Any) -> str:
    """A reader's name for a type annotation: 'int', 'list of float', 'one of a, b', ..."""
    origin = get_origin(tp)
    if tp is Any:
        return "any value"
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join("null" if a is None else str(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        # Only what a YAML value can be (an optimizer's ``lr: float | Tensor`` is "a number").
        args = [a for a in get_args(tp) if not (isinstance(a, type) and a.__module__ not in ("builtins", "types")
                                                and not dataclasses.is_dataclass(a))]
        return " or ".join(_describe(a) for a in args or get_args(tp))
    if origin in (list, Sequence, tuple):
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
        return f"a list of {_describe(args[0]) if args else 'values'}"
    if origin in (dict, Mapping):
        args = get_args(tp)
        return f"a mapping to {_describe(args[1])}" if args else "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    return getattr(tp, "__name__", str(tp))




def _unknown_key(key: str, allowed: Sequence[str], path: str) -> OptionsError:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return OptionsError(f"unknown key; {hint}allowed keys: {', '.join(allowed)}", key=_join(path, key))




def convert(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against annotation ``tp`` and convert it (``path`` names it in errors)."""
    origin = get_origin(tp)
    if tp is Any or tp is object:
        return value
    if tp is type(None):
        if value is not None:
            raise OptionsError(f"expected null, got {_show(value)}", key=path)
        return None
    if origin is Literal:
        allowed = get_args(tp)
        if not any(value == a and type(value) is type(a) for a in allowed):
            names = [str(a) for a in allowed if a is not None]
            close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed_text = ", ".join(map(str, allowed))
            raise OptionsError(f"{_show(value)} is not allowed{hint}; allowed values: {allowed_text}", key=path)
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return convert(value, options[0], path)
        errors: dict[Any, OptionsError] = {}
        for option in options:
            try:
                return convert(value, option, path)
            except OptionsError as err:
                errors[option] = err
        # A number refused by a number type (e.g. .nan for float | Tensor): that type's reason is the useful one.
        for kind in (float, int):
            if kind in errors and isinstance(value, int | float) and not isinstance(value, bool):
                raise errors[kind]
        raise OptionsError(f"expected {_describe(tp)}, got {_show(value)}", key=path)
    if tp is bool:
        if not isinstance(value, bool):
            raise OptionsError(f"expected true or false, got {_show(value)}", key=path)
        return value
    if tp is int:
        number = _number(value, path, "an integer")
        if isinstance(number, float):
            if not number.is_integer():
                raise OptionsError(f"expected an integer, got {_show(value)}", key=path)
            number = int(number)  # BasicSR writes iteration counts as !!float 5e3
        if not -MAX_INT <= number <= MAX_INT:
            # Python's integers are unbounded; torch, numpy and float arithmetic (an ETA, a seed) are not.
            raise OptionsError(f"{_show(value)} is out of range (at most {MAX_INT:.1e} in size)", key=path)
        return number
    if tp is float:
        number = float(_number(value, path, "a number"))
        if not math.isfinite(number):
            # .inf / .nan pass every range check (nan compares false) and poison a run hours later.
            raise OptionsError(f"expected a finite number, got {_show(value)}", key=path)
        return number
    if tp is str:
        if not isinstance(value, str):
            raise OptionsError(f"expected a string, got {_show(value)}", key=path)
        return value
    if origin in (list, Sequence) or tp in (list, Sequence):
        if not isinstance(value, list | tuple):
            raise OptionsError(f"expected {_describe(tp)}, got {_show(value)}", key=path)
        (item_tp,) = get_args(tp) or (Any,)
        return [convert(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list | tuple):
            raise OptionsError(f"expected {_describe(tp)}, got {_show(value)}", key=path)
        if args and args[-1] is Ellipsis:
            return tuple(convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise OptionsError(f"expected {_describe(tp)}, got {len(value)} values: {_show(value)}", key=path)
        return tuple(convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise OptionsError(f"expected {_describe(tp)}, got {_show(value)}", key=path)
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {convert(k, key_tp, path): convert(v, val_tp, _join(path, str(k))) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_mapping(tp, value, path)
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise OptionsError(f"expected {_describe(tp)}, got {_show(value)}", key=path)
        return value
    return value  # an annotation we cannot check (e.g. a protocol): the constructor will


def _number(value: Any, path: str, what: str) -> int | float:
    if isinstance(value, bool):
        raise OptionsError(f"expected {what}, got {_show(value)}", key=path)
    if isinstance(value, int | float):
        return value
    # PyYAML reads 1e-4 (no dot) as a string, and so would a --set value: accept the number it spells.
    if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        text = value.strip().replace("_", "")
        try:
            return int(text)
        except ValueError:
            return float(text)
    raise OptionsError(f"expected {what}, got {_show(value)}", key=path)


def from_mapping(cls: type, value: Any, path: str) -> Any:
    """Build dataclass ``cls`` from a mapping: unknown keys and bad values are errors naming ``path.key``.

    A field's metadata may hold ``"parse"``: ``fn(value, key_path)`` doing its own conversion;
    ``"missing"``: the reason given when a required key is absent; ``"inline"``: the field is a
    dataclass whose keys sit in this same mapping (BasicSR's top-level Real-ESRGAN keys).
    """
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise OptionsError(f"expected a mapping (section of keys), got {_show(value)}", key=path or None)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    inline = {name: f for name, f in fields.items() if f.metadata.get("inline")}
    hints = get_type_hints(cls)
    inline_keys = {k: name for name in inline for k in _field_names(hints[name])}
    allowed = [n for n in fields if n not in inline] + list(inline_keys)
    for key in value:
        if key not in allowed:
            raise _unknown_key(str(key), allowed, path)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name in inline:
            own = {k: v for k, v in value.items() if inline_keys.get(k) == name}
            kwargs[name] = from_mapping(hints[name], own, path)
            continue
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                reason = f.metadata.get("missing") or f"required key is missing ({_describe(hints[name])})"
                raise OptionsError(reason, key=key)
            continue
        parse: Callable[[Any, str], Any] | None = f.metadata.get("parse")
        kwargs[name] = parse(value[name], key) if parse else convert(value[name], hints[name], key)
        if kwargs[name] is None and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise OptionsError(f.metadata.get("missing") or f"required, got null ({_describe(hints[name])})", key=key)
    try:
        obj = cls(**kwargs)
    except OptionsError:
        raise
    except (ValueError, TypeError) as exc:
        raise OptionsError(str(exc), key=path or None) from None
    check = getattr(obj, "check", None)
    if callable(check):
        check(path)
    return obj


def _field_names(tp: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(tp) if f.init]


def deep_copy(value: Any) -> Any:
    """A parsed YAML tree copied (mappings and lists), so that resolving it leaves the caller's untouched."""
    if isinstance(value, Mapping):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def to_plain(obj: Any) -> Any:
    """Dataclasses / tuples / paths -> plain dicts, lists and scalars (YAML-safe)."""
    if hasattr(obj, "to_dict") and not isinstance(obj, type):
        return to_plain(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def _default_type(default: Any) -> Any:
    """The type an unannotated argument's default implies (most of spandrel's constructors annotate none)."""
    for tp in (bool, int, float, str):
        if type(default) is tp:
            return tp
    return list if isinstance(default, list | tuple) else Any


def check_kwargs(
    cls: type, kwargs: Mapping[str, Any], path: str, *, fill_defaults: bool = True, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Validate constructor arguments of ``cls`` by name and annotation; optionally add the defaults.

    Filling in the defaults makes the saved, resolved options state every hyper-parameter in force.
    ``skip``: arguments the caller passes itself (an optimizer's ``params``).
    """
    params = {
        n: p
        for n, p in inspect.signature(cls.__init__).parameters.items()
        if n != "self" and n not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    for key in kwargs:
        if key not in params:
            close = difflib.get_close_matches(str(key), list(params), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise OptionsError(
                f"unknown argument of {cls.__name__}; {hint}accepted: {', '.join(params)}", key=_join(path, str(key))
            )
    try:
        hints = get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not evaluate here: check names only
        hints = {}
    out: dict[str, Any] = {}
    for name, p in params.items():
        if name in kwargs:
            out[name] = convert(kwargs[name], hints.get(name, _default_type(p.default)), _join(path, name))
        elif p.default is inspect.Parameter.empty:
            raise OptionsError(f"required argument of {cls.__name__} is missing", key=_join(path, name))
        elif fill_defaults:
            # As the value would be after a reload of the saved options (a tuple default stays a tuple).
            try:
                out[name] = convert(to_plain(p.default), hints.get(name, Any), _join(path, name))
            except OptionsError:
                out[name] = to_plain(p.default)
    return out

