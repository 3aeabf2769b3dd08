"""Image quality metrics as the SR literature computes them.

Distortion (against a reference): ``psnr``, ``ssim`` (MATLAB-compatible). Perceptual quality:
``niqe`` (no reference, MATLAB release's NIQE), ``lpips`` (LPIPS v0.1 distance to the reference),
``dists`` (DISTS distance to the reference). Against the input (no reference): ``color_drift`` (mean CIEDE2000
between the output shrunk to the input's size and the input).

Numpy functions take HWC RGB or HW arrays in [0, 255]; the ``*_torch`` versions take batched
NCHW tensors in [0, 1] and return one value per image. :data:`METRIC_TABLE` is the one table
by name (ours and BasicSR's ``calculate_*`` names): each entry knows its functions, its
direction and whether it needs a reference. Validation, ``esrgan test`` and sweeps use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from esrgan.metrics.color_drift import color_drift
from esrgan.metrics.dists_metric import dists, dists_torch
from esrgan.metrics.lpips_metric import lpips, lpips_torch
from esrgan.metrics.niqe_metric import niqe
from esrgan.metrics.psnr_ssim import psnr, ssim
from esrgan.metrics.psnr_ssim_torch import psnr_torch, ssim_torch


def _niqe_ref(img: np.ndarray, ref: np.ndarray | None = None, crop_border: int = 0, y_channel: bool = True) -> float:
    """NIQE in the (img, ref) call convention; ``ref`` is ignored (no-reference metric)."""
    return niqe(img, crop_border=crop_border, convert_to="y" if y_channel else "gray")


def _lpips_ref(
    img: np.ndarray, ref: np.ndarray, crop_border: int = 0, y_channel: bool = False, device: Any = "cpu"
) -> float:
    """LPIPS (alex) in the (img, ref, crop_border, y_channel) call convention; always on RGB."""
    return lpips(img, ref, crop_border=crop_border, device=device)


def _dists_ref(
    img: np.ndarray, ref: np.ndarray, crop_border: int = 0, y_channel: bool = False, device: Any = "cpu"
) -> float:
    """DISTS in the (img, ref, crop_border, y_channel) call convention; always on RGB."""
    return dists(img, ref, crop_border=crop_border, device=device)


def _color_drift_ref(
    img: np.ndarray, source: np.ndarray, crop_border: int = 0, y_channel: bool = False
) -> float:
    """Colour drift in the (img, ref, crop_border, y_channel) call convention, ``ref`` being the network's input
    (LR), not the HR reference: whole images, in colour (``crop_border`` and ``y_channel`` do not apply)."""
    return color_drift(img, source)


@torch.no_grad()
def color_drift_torch(
    img: torch.Tensor, source: torch.Tensor, crop_border: int = 0, y_channel: bool = False
) -> torch.Tensor:
    """Colour drift per image of NCHW batches in [0, 1]: ``img`` the output, ``source`` the input it was made from."""
    if img.ndim == 3:
        img, source = img.unsqueeze(0), source.unsqueeze(0)
    arrays = [t.detach().float().clamp(0, 1).mul(255).cpu().numpy().transpose(0, 2, 3, 1).astype(np.float64)
              for t in (img, source)]
    return torch.tensor([color_drift(a, b) for a, b in zip(*arrays, strict=True)], dtype=torch.float64)


def _load_lpips() -> None:
    from esrgan.metrics.lpips_metric import get_lpips_model

    get_lpips_model()


def _load_dists() -> None:
    from esrgan.metrics.dists_metric import get_dists_model

    get_dists_model()


@torch.no_grad()
def niqe_torch(
    img: torch.Tensor, ref: torch.Tensor | None = None, crop_border: int = 0, y_channel: bool = True
) -> torch.Tensor:
    """NIQE per image of an NCHW batch in [0, 1] (rounded to 8 bits, scored on the CPU in numpy)."""
    if img.ndim == 3:
        img = img.unsqueeze(0)
    arr = img.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    arr = arr.transpose(0, 2, 3, 1)
    values = [_niqe_ref(a if a.shape[2] == 3 else a[:, :, 0], None, crop_border, y_channel) for a in arr]
    return torch.tensor(values, dtype=torch.float64)


@dataclass(frozen=True)
class Metric:
    """One metric: its numpy and batched functions (both ``(img, ref, crop_border, y_channel)``),
    whether higher values are better and whether it compares with a reference.

    ``label`` and ``fmt`` show it in tables; ``on_device``: a network computes it, on the device the
    super-resolution network runs on (the numpy function takes ``device=``); ``load``: builds what it
    needs (backbone weights) so a missing file fails before a long run does. ``against_input``: the second
    image is the network's input (LR) rather than the HR reference (colour drift)."""

    name: str
    fn: Callable[..., float]
    fn_torch: Callable[..., Any]
    higher_is_better: bool
    needs_reference: bool
    unit: str = ""
    label: str = ""
    fmt: str = ".4f"
    on_device: bool = False
    load: Callable[[], None] | None = None
    against_input: bool = False

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


_PSNR = Metric("psnr", psnr, psnr_torch, True, True, "dB", "PSNR", ".2f")
_SSIM = Metric("ssim", ssim, ssim_torch, True, True, label="SSIM")
_NIQE = Metric("niqe", _niqe_ref, niqe_torch, False, False, label="NIQE", fmt=".3f")
_LPIPS = Metric("lpips", _lpips_ref, lpips_torch, False, True, label="LPIPS", on_device=True, load=_load_lpips)
_DISTS = Metric("dists", _dists_ref, dists_torch, False, True, label="DISTS", on_device=True, load=_load_dists)
# mean CIEDE2000 between the output shrunk to the input's size and the input: no HR needed
_COLOR_DRIFT = Metric("color_drift", _color_drift_ref, color_drift_torch, False, False, "dE00", label="ColorDrift",
                      fmt=".3f", against_input=True)

METRIC_TABLE: dict[str, Metric] = {
    "psnr": _PSNR,
    "ssim": _SSIM,
    "niqe": _NIQE,
    "lpips": _LPIPS,
    "dists": _DISTS,
    "color_drift": _COLOR_DRIFT,
    "calculate_psnr": _PSNR,
    "calculate_ssim": _SSIM,
    "calculate_niqe": _NIQE,
    "calculate_lpips": _LPIPS,
    "calculate_dists": _DISTS,  # traiNNer-redux's name
}
METRICS: dict[str, Callable[..., float]] = {k: m.fn for k, m in METRIC_TABLE.items()}
METRICS_TORCH: dict[str, Callable[..., Any]] = {k: m.fn_torch for k, m in METRIC_TABLE.items()}


def metric_info(metric_type: str) -> Metric:
    """The table entry for a metric name (case-insensitive); unknown names list the known ones."""
    try:
        return METRIC_TABLE[metric_type.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown metric type {metric_type!r}; known types: {', '.join(METRIC_TABLE)}") from None


def column_metric(key: str) -> Metric | None:
    """The metric of a result column (``psnr_y`` -> psnr, ``color_drift`` -> itself); None for other columns."""
    key = key.lower()
    return METRIC_TABLE.get(key) or METRIC_TABLE.get(key.rsplit("_", 1)[0])


def get_metric(metric_type: str, batched: bool = False) -> Callable[..., Any]:
    """The metric function for an option-file ``type``; ``batched`` picks the torch version."""
    m = metric_info(metric_type)
    return m.fn_torch if batched else m.fn


# What `esrgan test` and sweeps score unless told otherwise: the SR literature's table and, next to it, colour drift.
DEFAULT_METRICS: tuple[str, ...] = ("psnr", "ssim", "color_drift")


def parse_metric_list(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"psnr,ssim,niqe"`` (or a list) -> canonical names in order, duplicates dropped."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        name = metric_info(item).name
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"no metric names in {text!r}; known types: {', '.join(METRIC_TABLE)}")
    return out


__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "METRICS_TORCH",
    "METRIC_TABLE",
    "Metric",
    "color_drift",
    "color_drift_torch",
    "column_metric",
    "dists",
    "dists_torch",
    "get_metric",
    "lpips",
    "lpips_torch",
    "metric_info",
    "niqe",
    "niqe_torch",
    "parse_metric_list",
    "psnr",
    "psnr_torch",
    "ssim",
    "ssim_torch",
]
