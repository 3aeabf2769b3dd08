"""Checkpoint files: our format, safe loading, atomic saving.

Our network files are BasicSR's: ``{"params": state_dict, "params_ema": state_dict}`` (either key
may be absent), written as ``.pth`` (torch.save) or ``.safetensors`` (chosen by the suffix). In a
safetensors file the nested dict is flattened to ``"<param_key>.<tensor name>"`` with the param
keys listed in the metadata (``{"format": "esrgan", "param_keys": "params,params_ema"}``); a
safetensors file without that metadata is read as one flat state dict.

Loading never runs code from a file: ``torch.load(..., weights_only=True)`` always.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from esrgan.utils.atomic import atomic_path

SAFETENSORS_SUFFIX = ".safetensors"
_FORMAT_TAG = "esrgan"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, unsafe or not in a layout we know."""


# Wrappers that prefix every key of the state dict they save: DataParallel/DDP and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def strip_wrapper_prefixes(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without the ``module.`` / ``_orig_mod.`` prefixes wrappers add (in any order, any number)."""
    out = {}
    for key, value in sd.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix) :], True
        out[key] = value
    return out


# Where trainers of various projects keep the generator weights, in order of preference:
# the EMA weights are the ones BasicSR/Real-ESRGAN publish and evaluate.
PARAM_KEYS = ("params_ema", "params", "state_dict", "model", "net_g", "generator")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def select_state_dict(
    ckpt: Mapping[str, Any], source: str = "<checkpoint>", param_key: str | None = None, what: str = "generator"
) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint, wrapper prefixes stripped (the one place they are).

    ``param_key`` (BasicSR's ``param_key_g``): that entry, or an error listing the entries there are;
    None: the first of :data:`PARAM_KEYS` present (``params_ema`` before ``params``), or the
    checkpoint itself when it is a bare state dict.
    """
    if param_key is not None:
        if _is_state_dict(ckpt.get(param_key)):
            return strip_wrapper_prefixes(ckpt[param_key])
        if not _is_state_dict(ckpt):
            held = [k for k, v in ckpt.items() if _is_state_dict(v)]
            raise CheckpointError(f"{source}: no weights under {param_key!r}; the checkpoint holds {held}")
    for key in PARAM_KEYS:
        if _is_state_dict(ckpt.get(key)):
            return strip_wrapper_prefixes(ckpt[key])
    if _is_state_dict(ckpt):
        return strip_wrapper_prefixes(ckpt)
    raise CheckpointError(
        f"{source}: no {what} weights found: expected a state dict, or one under one of the keys "
        f"{list(PARAM_KEYS)}; top-level keys are {list(ckpt)[:10]}"
    )


def _cpu_tensors(sd: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"save_network: {where}[{k!r}] is a {type(v).__name__}, expected a Tensor")
        out[k] = v.detach().cpu().contiguous()
    return out


def save_network(path: str | os.PathLike[str], state_dicts: Mapping[str, Mapping[str, torch.Tensor]]) -> Path:
    """Write ``{param_key: state_dict}`` (e.g. ``{"params": ..., "params_ema": ...}``) atomically.

    ``.safetensors`` suffix -> safetensors, anything else -> torch.save. Returns the path written.
    """
    path = Path(path)
    if not state_dicts:
        raise ValueError("save_network: nothing to save (state_dicts is empty)")
    tensors = {key: _cpu_tensors(sd, key) for key, sd in state_dicts.items()}
    if path.suffix == SAFETENSORS_SUFFIX:
        from safetensors.torch import save_file

        bad = [k for k in tensors if "." in k]
        if bad:
            raise ValueError(f"save_network: param keys must not contain '.', got {bad}")
        # clone: safetensors refuses tensors sharing storage (params and params_ema often do at iteration 0)
        flat = {f"{key}.{name}": t.clone() for key, sd in tensors.items() for name, t in sd.items()}
        meta = {"format": _FORMAT_TAG, "param_keys": ",".join(tensors)}
        with atomic_path(path) as tmp:
            save_file(flat, str(tmp), metadata=meta)
    else:
        save_torch_atomic(path, tensors)
    return path


def save_torch_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save(obj, path)`` through a temporary file + rename, flushed before the rename."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as exc:
            # An interrupt (a second Ctrl-C, SIGTERM) raised inside torch.save makes its zip writer fail its own
            # size check on the way out; that RuntimeError would hide the interrupt, which is what happened.
            if isinstance(exc.__context__, BaseException) and not isinstance(exc.__context__, Exception):
                raise exc.__context__ from None
            raise
        f.flush()
        os.fsync(f.fileno())
    return path


def _load_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            flat = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read safetensors file {path}: {exc} (truncated or not safetensors?)") from exc
    if meta.get("format") != _FORMAT_TAG or not meta.get("param_keys"):
        return flat
    out: dict[str, Any] = {key: {} for key in meta["param_keys"].split(",")}
    for name, t in flat.items():
        key, _, rest = name.partition(".")
        if key not in out:
            raise CheckpointError(f"{path}: tensor {name!r} is not under any of the param keys {list(out)}")
        out[key][rest] = t
    return out


def _unpickler_reason(message: str) -> str:
    """The reason in torch's ``weights_only`` error, without its advice to load with ``weights_only=False``
    (never right for a file from a stranger) or its links: one line."""
    text = message.split("WeightsUnpickler error:", 1)[-1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    keep = [ln for ln in lines if "weights_only" not in ln and "torch.load" not in ln and "http" not in ln]
    reason = " ".join(keep) or "not loadable with weights_only=True"
    return reason if len(reason) <= 200 else reason[:197] + "..."


def load_checkpoint_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint safely (tensors and plain containers only) onto the CPU.

    Returns the stored dict as it is (``{"params": ...}``, a bare state dict, a training state ...).
    Errors (``CheckpointError``, or ``FileNotFoundError``) name the file.
    """
    path = Path(path)
    if not path.is_file():
        if path.exists():  # a folder or a FIFO (which would block the read)
            raise CheckpointError(f"{path}: not a regular file (a folder, FIFO or device), not a checkpoint")
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if path.suffix == SAFETENSORS_SUFFIX or (len(head) >= 9 and head[8:9] == b"{"):
        # safetensors starts with an 8-byte header length then a JSON header
        return _load_safetensors(path)
    try:
        with warnings.catch_warnings():
            # "Detected pickle protocol 4 ...": torch's advice, not the user's business; the error says what failed
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message suggests weights_only=False; we never do that for a file, so keep only the reason.
        reason = _unpickler_reason(str(exc))
        if "global" in reason.lower() or "reduce" in reason.lower():
            raise CheckpointError(
                f"refused to load {path}: it contains Python objects other than tensors and plain containers, "
                f"which could run code when unpickled (we load with weights_only=True): {reason}"
            ) from None
        raise CheckpointError(
            f"cannot read checkpoint {path} ({path.stat().st_size} bytes): not a PyTorch/safetensors file that can "
            f"be loaded safely, or corrupt ({reason})"
        ) from None
    except Exception as exc:  # zip/pickle/EOF errors of every kind mean the same to the user
        raise CheckpointError(
            f"cannot read checkpoint {path} ({path.stat().st_size} bytes): truncated, corrupt or not a "
            f"PyTorch/safetensors file ({type(exc).__name__}: {_unpickler_reason(str(exc))})"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found a {type(obj).__name__}")
    return obj
