"""What a test run or sweep compared, for ``results.json`` / ``sweep.json`` and the report's header.

Each model is named by what was asked (``source``: a path, a zoo name or ``bicubic``), the file that was
read (absolute path) and its content (SHA-256), with the network it holds, its scale and the precision and
device it ran in; the run by the command line, the package and torch versions and the time. Two result
files with the same digests compared the same weights, whatever the files were called.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

_PRECISIONS = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def precision_name(dtype: torch.dtype) -> str:
    """fp32, fp16 or bf16: the names of ``--precision``."""
    return _PRECISIONS.get(dtype, str(dtype).replace("torch.", ""))


def command_line(argv: list[str] | None = None) -> str:
    """The command as the user typed it (``python -m esrgan`` shown as ``esrgan``)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    head = Path(argv[0]).name
    head = "esrgan" if head in ("__main__.py", "esrgan") else head
    return shlex.join([head, *argv[1:]])


def checkpoint_file(source: str) -> dict[str, Any]:
    """Absolute path and SHA-256 of the checkpoint ``source`` names (a path, or a zoo name in the cache)."""
    from esrgan.utils.fetch import sha256_file

    path = Path(source)
    if not path.is_file():
        from esrgan.loading import resolve_path

        path = resolve_path(source)  # a zoo name: its cached file (loaded already, so no download here)
    return {"path": str(path.resolve()), "sha256": sha256_file(path)}


def network_description(net: torch.nn.Module) -> dict[str, Any]:
    """The architecture's name and the hyper-parameters detected from its weights (ours), else the class name."""
    from esrgan.archs.detect import detect_generator

    try:
        arch, kwargs, _ = detect_generator(net.state_dict())
    except Exception:  # a foreign (spandrel) network: its class is all we can say
        return {"network": type(net).__name__}
    return {"network": arch, "network_options": {k: v for k, v in sorted(kwargs.items())}}


def model_provenance(model: Any, source: str | None, role: str | None = None) -> dict[str, Any]:
    """One tested model (``esrgan.evaluation.tested_models``): label, what it came from and how it ran."""
    entry: dict[str, Any] = {"label": model.name}
    if role:
        entry["role"] = role
    upscaler = getattr(model, "upscaler", None)
    if upscaler is None:  # the bicubic baseline
        entry.update(source="bicubic", network="MATLAB bicubic (imresize)", scale=getattr(model, "scale", None))
        return entry
    entry["source"] = source if source is not None else "in memory"
    if source is not None:
        entry.update(checkpoint_file(source))
    entry.update(network_description(upscaler.model))
    entry.update(scale=upscaler.scale, precision=precision_name(upscaler.dtype),
                 device=str(upscaler.device))
    return entry


def run_provenance(models: list[dict[str, Any]], conventions: str) -> dict[str, Any]:
    """The run: the models (see :func:`model_provenance`), scoring conventions, command line, versions, time."""
    from esrgan import __version__

    return {
        "models": models,
        "conventions": conventions,
        "command": command_line(),
        "esrgan_version": __version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def dump_json(data: Any) -> str:
    """Indented JSON that is valid JSON: an Infinity or NaN left anywhere is an error here, not in a reader."""
    return json.dumps(data, indent=2, allow_nan=False) + "\n"
