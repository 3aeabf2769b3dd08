"""The colour fixes that bring an output's colours back (the drift they are judged by: test_metrics_color_drift.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from esrgan.inference import Upscaler
from esrgan.inference.color_fix import apply_color_fix, histogram_color_fix, wavelet_color_fix, wavelet_low
from esrgan.metrics.color_drift import color_drift


def _fixture(kind: str) -> np.ndarray:
    """A 32x32 source: a grey ramp, or skin tones with soft shading (a face's cheek)."""
    yy, xx = np.mgrid[:32, :32] / 31.0
    if kind == "grey":
        v = 60 + 140 * xx
        return np.stack([v, v, v], axis=2).round().astype(np.uint8)
    skin = np.array([224.0, 172.0, 138.0])
    shade = 0.75 + 0.25 * np.cos(2.5 * (xx - 0.4)) * np.cos(2.0 * (yy - 0.5))
    return np.clip(skin * shade[:, :, None], 0, 255).round().astype(np.uint8)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255


def _to_img(t: torch.Tensor) -> np.ndarray:
    return t[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def _texture(h: int, w: int) -> torch.Tensor:
    """Fine detail a network adds: a +-6 level checkerboard (averages away at the input's size)."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return ((yy + xx) % 2 * 2 - 1).float() * (6 / 255)


class Cast(nn.Module):
    """x4 nearest with fine texture and a GAN-like yellow cast (R up, B down): what the fix must undo."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(x, scale_factor=4, mode="nearest") + _texture(x.shape[-2] * 4, x.shape[-1] * 4)
        cast = torch.tensor([0.06, 0.02, -0.08], dtype=x.dtype).view(1, 3, 1, 1) if x.shape[1] == 3 else 0.05
        return (y + cast).clamp(0, 1)


@pytest.mark.parametrize("kind", ["grey", "skin"])
@pytest.mark.parametrize("fix", ["wavelet", "histogram"])
def test_color_fix_brings_the_colours_back_and_keeps_the_detail(kind: str, fix: str) -> None:
    src = _fixture(kind)
    x = _to_tensor(src)
    raw = Cast()(x)
    before = color_drift(_to_img(raw), src)
    fixed = apply_color_fix(fix, raw, x)
    after = color_drift(_to_img(fixed), src)
    assert before > 4 and after < 0.25 * before and after < 1.2, (before, after)
    if fix == "wavelet":  # the network's detail stays: the checkerboard is still there, at full strength
        detail = (fixed - wavelet_low(fixed))[0, :, 8:-8, 8:-8]
        ref = _texture(*fixed.shape[-2:])[8:-8, 8:-8]
        assert float((detail * ref).mean() / (ref * ref).mean()) == pytest.approx(1.0, abs=0.1)
    assert apply_color_fix("none", raw, x) is raw


def test_color_fixes_keep_what_is_already_right() -> None:
    src = _fixture("skin")
    x = _to_tensor(src)
    exact = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.allclose(wavelet_color_fix(exact, x), exact, atol=1e-5)
    flat = torch.full((1, 3, 8, 8), 0.5)
    assert torch.allclose(histogram_color_fix(torch.full((1, 3, 32, 32), 0.7), flat), torch.full((1, 3, 32, 32), 0.5))
    with pytest.raises(ValueError, match="color fix must be one of none, wavelet, histogram"):
        apply_color_fix("lab", exact, x)
    with pytest.raises(ValueError, match="same N and C"):
        wavelet_color_fix(exact, x[:, :1])


def test_upscaler_color_fix_on_images_tensors_grey_alpha_and_passes() -> None:
    src = _fixture("skin")
    plain = Upscaler(Cast(), device="cpu", color_fix="none")
    fixing = Upscaler(Cast(), device="cpu", color_fix="wavelet")
    assert "color_fix=wavelet" in repr(fixing)
    assert color_drift(plain.upscale(src), src) > 4 > 4 * color_drift(fixing.upscale(src), src)
    x = _to_tensor(src)
    assert torch.equal(fixing.upscale_tensor(x), wavelet_color_fix(plain.upscale_tensor(x), x))
    # x16 in two passes: fixed once, against the original
    assert color_drift(fixing.upscale(src, passes=2), src) < 1.2
    # RGBA: colour fixed, alpha as the network made it
    rgba = np.concatenate([src, np.full((*src.shape[:2], 1), 200, np.uint8)], axis=2)
    out = fixing.upscale(rgba)
    assert out.shape == (128, 128, 4) and np.array_equal(out[:, :, 3], plain.upscale(rgba)[:, :, 3])
    assert color_drift(out[:, :, :3], src) < 1.2
    # a grey image through a colour network: the luma of the fixed output
    grey = _fixture("grey")[:, :, 0]
    assert abs(float(fixing.upscale(grey).astype(float).mean()) - float(grey.mean())) < 1.0
    # 16 bits stay 16 bits
    deep = fixing.upscale(src.astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and color_drift((deep // 257).astype(np.uint8), src) < 1.2
    with pytest.raises(ValueError, match="color fix must be one of"):
        Upscaler(Cast(), device="cpu", color_fix="auto")
