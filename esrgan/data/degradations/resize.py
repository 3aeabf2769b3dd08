"""Random resizing of a batch (one scale and one interpolation per batch, as in Real-ESRGAN).

The draws are BasicSR's: the direction with ``random.choices(["up", "down", "keep"], resize_prob)``,
the factor uniform in ``[1, resize_range[1]]`` (up) or ``[resize_range[0], 1]`` (down) from
NumPy, the mode uniformly from area / bilinear / bicubic.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

RESIZE_MODES = ("area", "bilinear", "bicubic")


def draw_scale(resize_prob: Sequence[float], resize_range: Sequence[float], py_rng: random.Random,
               np_rng: np.random.RandomState) -> float:
    """The resize factor of one round: up, down or keep with probabilities ``resize_prob``."""
    direction = py_rng.choices(["up", "down", "keep"], list(resize_prob))[0]
    if direction == "up":
        return float(np_rng.uniform(1, resize_range[1]))
    if direction == "down":
        return float(np_rng.uniform(resize_range[0], 1))
    return 1.0


def draw_mode(py_rng: random.Random) -> str:
    return py_rng.choice(list(RESIZE_MODES))


def resize(img: torch.Tensor, *, mode: str, size: tuple[int, int] | None = None,
           scale_factor: float | None = None) -> torch.Tensor:
    """``F.interpolate`` with the corner convention of OpenCV/PIL (``align_corners=False``)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(img, size=size, scale_factor=scale_factor, mode=mode, **kwargs)
