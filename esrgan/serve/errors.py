"""Errors in words for the page: one line with the cause and what to do, and the full text folded beneath.

The library's messages are written for a terminal and a developer (full paths, state-dict keys, the URL
tried); the page shows a person one line naming the model or file by the name they chose it by, and keeps
the whole message as the detail.
"""

from __future__ import annotations

import re
from pathlib import Path

_PATH = re.compile(r"(?<![\w.])/(?:[^\s:'\"(),;]+/)*[^\s:'\"(),;]+")
_URL = re.compile(r"\b\w+://\S+")
MAX_LINE = 220


class BlendError(ValueError):
    """Two models the page asked to blend that cannot be (different networks)."""


def short_paths(text: str) -> str:
    """Absolute paths as their last part, addresses as their host: what a person recognises."""
    text = _URL.sub(lambda m: m.group(0).split("/")[2] if m.group(0).count("/") >= 2 else m.group(0), text)
    return _PATH.sub(lambda m: Path(m.group(0)).name or m.group(0), text)


def one_line(text: str, limit: int = MAX_LINE) -> str:
    line = " ".join(short_paths(text).split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "\u2026"


def explain(exc: BaseException, model_label: str | None = None) -> tuple[str, str]:
    """(line, detail) for ``exc``; ``model_label``: the model the failing step was loading, if it was one."""
    from esrgan.utils.fetch import DownloadError
    from esrgan.zoo import ZooError

    detail = str(exc) or type(exc).__name__
    cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else None
    if isinstance(exc, BlendError):
        return str(exc), detail
    if isinstance(exc, ZooError | DownloadError) or isinstance(cause, ZooError | DownloadError):
        name = model_label or "the model"
        if "offline" in detail.lower():
            why = "this server is offline (ESRGAN_OFFLINE is set)"
        elif "checksum" in detail.lower() or "sha-256" in detail.lower() or "digest" in detail.lower():
            why = "the file in the cache does not match its published checksum"
        else:
            why = "the download failed (no connection to the internet?)"
        return (f"{name} is not downloaded yet and cannot be now: {why}. On a connected machine run "
                f"`esrgan zoo download {name}`, or choose a checkpoint."), detail
    if model_label is not None:
        reason = one_line(detail.split("\n")[0], 400)
        name = Path(model_label).name
        for prefix in (f"refused to load {name}: ", f"{name}: ", f"model {name}: "):  # the name is said already
            reason = reason.replace(prefix, "", 1) if reason.startswith(prefix) else reason
        reason = re.split(r"\. | \(|; ", reason, maxsplit=1)[0].rstrip(".")  # its first clause
        return f"{model_label} could not be loaded: {one_line(reason, 140)}. Choose another model.", detail
    return one_line(detail.split("\n")[0]), detail
