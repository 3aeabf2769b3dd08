"""Losses: pixel (L1, MSE, Charbonnier, MS-SSIM, MS-SSIM + L1, focal frequency, colour), perceptual (VGG,
pre-activation; DISTS) and adversarial (incl. RaGAN); LDL's artifact map (``artifact_map``, weighting a pixel
loss in the GAN stage).

``build_loss({"type": "L1Loss", "loss_weight": 1.0})`` builds one from an option-file section
(BasicSR's ``pixel_opt`` / ``perceptual_opt`` / ``gan_opt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from esrgan.losses.color import ColorLoss
from esrgan.losses.dists_loss import DISTSLoss
from esrgan.losses.frequency import FocalFrequencyLoss
from esrgan.losses.gan import (
    GAN_TYPES,
    GANLoss,
    d_adversarial_loss,
    d_adversarial_terms,
    g_adversarial_loss,
    gradient_penalty,
)
from esrgan.losses.ldl import artifact_map, local_variance
from esrgan.losses.perceptual import PerceptualLoss, gram_matrix
from esrgan.losses.pixel import CharbonnierLoss, L1Loss, MSELoss, weighted_reduce
from esrgan.losses.structural import MSSSIML1Loss, MSSSIMLoss, ms_ssim
from esrgan.utils.factory import build_from_table

PIXEL_LOSSES: dict[str, type[nn.Module]] = {
    "L1Loss": L1Loss,
    "MSELoss": MSELoss,
    "CharbonnierLoss": CharbonnierLoss,
    "MSSSIMLoss": MSSSIMLoss,
    "MSSSIML1Loss": MSSSIML1Loss,
    "FocalFrequencyLoss": FocalFrequencyLoss,
    "ColorLoss": ColorLoss,
}
PERCEPTUAL_LOSSES: dict[str, type[nn.Module]] = {"PerceptualLoss": PerceptualLoss, "DISTSLoss": DISTSLoss}
GAN_LOSSES: dict[str, type[nn.Module]] = {"GANLoss": GANLoss}

LOSSES: dict[str, type[nn.Module]] = {**PIXEL_LOSSES, **PERCEPTUAL_LOSSES, **GAN_LOSSES}


def build_loss(spec: Mapping[str, Any]) -> nn.Module:
    """Build ``LOSSES[spec["type"]](**rest)``; errors name the known types or the accepted arguments."""
    return build_from_table(LOSSES, spec, "loss")


__all__ = [
    "GAN_LOSSES",
    "GAN_TYPES",
    "LOSSES",
    "PERCEPTUAL_LOSSES",
    "PIXEL_LOSSES",
    "CharbonnierLoss",
    "ColorLoss",
    "DISTSLoss",
    "FocalFrequencyLoss",
    "GANLoss",
    "L1Loss",
    "MSELoss",
    "MSSSIML1Loss",
    "MSSSIMLoss",
    "PerceptualLoss",
    "artifact_map",
    "build_loss",
    "d_adversarial_loss",
    "d_adversarial_terms",
    "g_adversarial_loss",
    "gradient_penalty",
    "gram_matrix",
    "local_variance",
    "ms_ssim",
    "weighted_reduce",
]
