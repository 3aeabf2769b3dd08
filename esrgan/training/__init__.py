"""Training: the loop (``Trainer``, ``train``), the two stages' models, EMA, resume state, distributed set-up.

Names are resolved on first use, so ``import esrgan.training.dist`` (or the CLI's ``--help``) does
not pull in TensorBoard or the data pipeline.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Trainer": "esrgan.training.trainer",
    "train": "esrgan.training.trainer",
    "SRModel": "esrgan.training.models",
    "ESRGANModel": "esrgan.training.models",
    "MODELS": "esrgan.training.models",
    "build_model": "esrgan.training.models",
    "NonFiniteLossError": "esrgan.training.models",
    "ModelEMA": "esrgan.training.ema",
    "EpochSampler": "esrgan.training.sampling",
    "init_dist": "esrgan.training.dist",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'esrgan.training' has no attribute {name!r}")


__all__ = sorted(_LAZY)
