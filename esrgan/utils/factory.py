"""Build an object from a ``{"type": name, **kwargs}`` spec and a name-to-class table.

One implementation for every family (networks, losses): the error messages name the
known types, or the constructor arguments the chosen class accepts.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def accepted_args(cls: type) -> list[str]:
    """Constructor argument names of a class, in order."""
    return [n for n in inspect.signature(cls.__init__).parameters if n != "self"]


def build_from_table(table: Mapping[str, type[T]], spec: Mapping[str, Any], family: str) -> T:
    """``table[spec["type"]](**rest)``; ``family`` ("network", "loss") names the kind in errors."""
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(f"{family} spec needs a 'type' key (one of {', '.join(table)}), got {spec!r}")
    kwargs = dict(spec)
    name = kwargs.pop("type")
    if name not in table:
        raise ValueError(f"unknown {family} type {name!r}; known types: {', '.join(table)}")
    cls = table[name]
    accepted = accepted_args(cls)
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        raise ValueError(f"{name}: unknown argument(s) {unknown}; accepted: {', '.join(accepted)}")
    return cls(**kwargs)
