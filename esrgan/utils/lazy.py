"""Lazy package exports: a name is imported from its module on first access.

Keeps ``import esrgan.data`` (or ``.training``, ``.evaluation``) cheap: inference code that
needs one function does not pay for LMDB, TensorBoard or the trainer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving ``exports`` (public name -> defining module)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
