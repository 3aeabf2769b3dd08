"""Training: the loop (``Trainer``, ``train``), the two stages' models, EMA, resume state, distributed set-up.

Names are resolved on first use, so ``import esrgan.training.dist`` (or the CLI's ``--help``) does
not pull in TensorBoard or the data pipeline.
"""

from __future__ import annotations

from esrgan.utils.lazy import lazy_getattr

_LAZY = {
    "Trainer": "esrgan.training.trainer",
    "train": "esrgan.training.trainer",
    "SRModel": "esrgan.training.models",
    "ESRGANModel": "esrgan.training.models",
    "MODELS": "esrgan.training.build",
    "build_model": "esrgan.training.build",
    "NonFiniteLossError": "esrgan.training.models",
    "ModelEMA": "esrgan.training.ema",
    "EpochSampler": "esrgan.data.sampling",
    "init_dist": "esrgan.training.dist",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = sorted(_LAZY)
