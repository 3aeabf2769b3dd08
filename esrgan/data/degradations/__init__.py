"""Real-ESRGAN's degradation model: blur kernels (numpy, drawn in the data workers) and batched torch ops.

Modules, one job each: ``kernels`` (kernel formulas and random kernels), ``kernel_draws`` (the
three kernels of one training sample), ``filters`` (per-image filtering, unsharp masking),
``resize``, ``noise``, ``jpeg`` (batched JPEG with a quality per image), ``rng`` (the degradation's
generators and their state) and ``pipeline`` (the two rounds, on the device).
"""

from __future__ import annotations

from esrgan.data.degradations.filters import USMSharp, filter2d
from esrgan.data.degradations.jpeg import DiffJPEG
from esrgan.data.degradations.kernel_draws import BlurRound, blur_rounds, draw_sample_kernels
from esrgan.data.degradations.pipeline import (
    DegradationSettings,
    NoiseRound,
    degradation_settings,
    degrade,
    paired_random_crop,
)
from esrgan.data.degradations.rng import DegradationRNG

__all__ = [
    "BlurRound",
    "DegradationRNG",
    "DegradationSettings",
    "DiffJPEG",
    "NoiseRound",
    "USMSharp",
    "blur_rounds",
    "degradation_settings",
    "degrade",
    "draw_sample_kernels",
    "filter2d",
    "paired_random_crop",
]
