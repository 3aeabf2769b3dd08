"""The one error type of option files: names the file, the key path and what was expected."""

from __future__ import annotations

import os


class OptionsError(ValueError):
    """A bad option file or override: names the file, the key path and what was expected."""

    def __init__(self, reason: str, *, key: str | None = None, file: str | os.PathLike[str] | None = None) -> None:
        self.reason = reason
        self.key = key
        self.file = None if file is None else str(file)
        super().__init__(": ".join(p for p in (self.file, self.key, reason) if p))

    def with_file(self, file: str | os.PathLike[str]) -> OptionsError:
        return OptionsError(self.reason, key=self.key, file=file)


def _show(value: object) -> str:
    return "null" if value is None else repr(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
