"""The model table, ``model_type`` name -> class, above the modules that define the models.

A new model type is a class (usually a subclass of ``SRModel`` or ``ESRGANModel``) plus an entry
here and its name in ``esrgan.options.sections.ModelType``, which the option loader checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from esrgan.training import dist as dist_utils
from esrgan.training.models import ESRGANModel, SRModel
from esrgan.training.realesrgan import RealESRGANModel, RealESRNetModel

if TYPE_CHECKING:
    from esrgan.options import Options

MODELS: dict[str, type[SRModel]] = {
    "SRModel": SRModel,
    "ESRGANModel": ESRGANModel,
    "RealESRNetModel": RealESRNetModel,
    "RealESRGANModel": RealESRGANModel,
}


def build_model(opt: Options, device: torch.device, dist_info: dist_utils.DistInfo | None = None) -> SRModel:
    """``MODELS[opt.model_type](opt, device, dist_info)`` (the name is validated at load)."""
    return MODELS[opt.model_type](opt, device, dist_info)


__all__ = ["MODELS", "build_model"]
