"""``load_model``: any supported generator checkpoint (or zoo name) -> a ready nn.Module.

Imports only the networks and checkpoint code: no trainer, TensorBoard or data pipeline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from esrgan.checkpoint import CheckpointError, load_checkpoint_file

logger = logging.getLogger("esrgan.loading")

# Where trainers of various projects keep the generator weights, in order of preference:
# the EMA weights are the ones BasicSR/Real-ESRGAN publish and evaluate.
PARAM_KEYS = ("params_ema", "params", "state_dict", "model", "net_g", "generator")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def select_state_dict(ckpt: Mapping[str, Any], source: str = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The generator state dict inside a loaded checkpoint (``params_ema`` preferred over ``params``)."""
    for key in PARAM_KEYS:
        if _is_state_dict(ckpt.get(key)):
            return dict(ckpt[key])
    if _is_state_dict(ckpt):
        return dict(ckpt)
    raise CheckpointError(
        f"{source}: no generator weights found: expected a state dict, or one under one of the keys "
        f"{list(PARAM_KEYS)}; top-level keys are {list(ckpt)[:10]}"
    )


def resolve_path(path_or_zoo_name: str | os.PathLike[str]) -> Path:
    """A local file as it is; otherwise a model-zoo name (downloaded into the cache once)."""
    path = Path(path_or_zoo_name)
    if path.is_file():
        return path
    from esrgan.zoo import resolve_model_path

    return resolve_model_path(path_or_zoo_name)


def load_generator(path_or_zoo_name: str | os.PathLike[str]) -> tuple[str, dict, dict[str, torch.Tensor]]:
    """``(arch name, detected kwargs, state dict in our BasicSR layout)`` for a generator checkpoint."""
    from esrgan.archs.detect import UnknownArchitectureError, detect_generator

    path = resolve_path(path_or_zoo_name)
    sd = select_state_dict(load_checkpoint_file(path), str(path))
    try:
        return detect_generator(sd)
    except UnknownArchitectureError as exc:
        raise UnknownArchitectureError(f"{path}: {exc}", exc.state_dict) from exc
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def load_model(path_or_zoo_name: str | os.PathLike[str], device: str | torch.device = "cpu") -> nn.Module:
    """Build the detected architecture, load the weights strictly, return it in eval mode on ``device``."""
    from esrgan.archs import GENERATORS
    from esrgan.archs.detect import UnknownArchitectureError
    from esrgan.spandrel_loader import load_with_spandrel

    try:
        arch, kwargs, sd = load_generator(path_or_zoo_name)
    except UnknownArchitectureError as exc:  # not ours: spandrel's detector (optional dependency) may know it
        model, _scale = load_with_spandrel(exc.state_dict or {}, str(path_or_zoo_name), str(exc))
        logger.info("loaded %s (through spandrel) from %s", type(model).__name__, path_or_zoo_name)
        return model.to(device)
    model = GENERATORS[arch](**kwargs)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path_or_zoo_name}: weights do not fit the detected {arch}({kwargs}): {exc}") from exc
    logger.info("loaded %s %s from %s", arch, kwargs, path_or_zoo_name)
    return model.eval().to(device)
