"""Colour fixes: give an upscaler's output the input's colours back, keeping the network's detail.

Networks trained with GAN losses shift colours (a yellow cast on skin, white turning #FEFEFE, a darker sky);
these put the input's low frequencies (``wavelet``) or its colour distribution (``histogram``) back into
the output. Image ops on NCHW float tensors in [0, 1], RGB (any channel count: each channel on its own);
``source`` is the network's input, ``output`` its result, a whole number of times larger.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

COLOR_FIXES = ("none", "wavelet", "histogram")
# What `esrgan upscale`, `esrgan video` and `esrgan serve` use unless asked, decided from the colour drift of the
# shipped models (benchmarks/README.md, "Colour and temporal stability"). The Upscaler class itself runs the
# network as it is (none) unless given one: the tester, the checks and Python callers get the network's output.
DEFAULT_COLOR_FIX = "wavelet"
# Levels of the a-trous wavelet (chaiNNer's and StableSR's 5): the fix replaces what varies over more than
# about 2^5 = 32 output pixels, i.e. 8 input pixels at x4: colour and shading, not texture.
WAVELET_LEVELS = 5


def check_color_fix(name: str) -> str:
    if name not in COLOR_FIXES:
        raise ValueError(f"color fix must be one of {', '.join(COLOR_FIXES)}; got {name!r}")
    return name


def _blur(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """The a-trous 3x3 kernel [1 2 1]^T [1 2 1] / 16 with holes of ``dilation``, edges replicated: one rows pass
    and one columns pass of shifted sums (a dilated depthwise convolution is twice as slow on a CPU)."""
    d = dilation
    w = x.shape[-1]
    p = F.pad(x, (d, d, 0, 0), mode="replicate")
    x = torch.add(p[..., :w], p[..., 2 * d : 2 * d + w]).add_(p[..., d : d + w], alpha=2)
    h = x.shape[-2]
    p = F.pad(x, (0, 0, d, d), mode="replicate")
    return torch.add(p[..., :h, :], p[..., 2 * d : 2 * d + h, :]).add_(p[..., d : d + h, :], alpha=2).mul_(1 / 16)


def wavelet_low(x: torch.Tensor, levels: int = WAVELET_LEVELS) -> torch.Tensor:
    """What is left of ``x`` after ``levels`` a-trous wavelet levels remove the detail (dilations 1, 2, 4, ...)."""
    for i in range(levels):
        x = _blur(x, 2**i)
    return x


def _source_at(output: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``source`` enlarged to ``output``'s size (bicubic), on ``output``'s device and dtype."""
    src = source.to(device=output.device, dtype=output.dtype)
    if src.shape[-2:] == output.shape[-2:]:
        return src
    return F.interpolate(src, size=output.shape[-2:], mode="bicubic", align_corners=False).clamp_(0, 1)


def wavelet_color_fix(output: torch.Tensor, source: torch.Tensor, levels: int = WAVELET_LEVELS) -> torch.Tensor:
    """The output's wavelet detail over the enlarged source's low frequencies (chaiNNer's "wavelet colour fix").

    ``output``: NCHW in [0, 1]; ``source``: NCHW in [0, 1] of the same N and C, any smaller size.
    """
    _check(output, source)
    out = output.float()
    fixed = out - wavelet_low(out, levels) + wavelet_low(_source_at(out, source), levels)
    return fixed.clamp_(0, 1).to(output.dtype)


def histogram_color_fix(output: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Each channel of ``output`` mapped so its histogram matches the same channel of ``source``.

    A value's place is its mid-rank in the output (equal values stay equal: flat areas get no noise); it
    becomes the source's value at the same quantile (linear between neighbours). NCHW in [0, 1].
    """
    _check(output, source)
    out = output.float()
    fixed = torch.empty_like(out)
    for n in range(out.shape[0]):
        for c in range(out.shape[1]):
            o = out[n, c].flatten()
            s = torch.sort(source[n, c].flatten().to(out.device, torch.float32)).values
            o_sorted = torch.sort(o).values
            lo = torch.searchsorted(o_sorted, o, right=False)
            hi = torch.searchsorted(o_sorted, o, right=True)
            q = (lo + hi - 1).float() / (2 * max(o.numel() - 1, 1))
            pos = q * (s.numel() - 1)
            i0 = pos.floor().long().clamp_(0, s.numel() - 1)
            i1 = (i0 + 1).clamp_(max=s.numel() - 1)
            frac = pos - i0.float()
            fixed[n, c] = (s[i0] * (1 - frac) + s[i1] * frac).view_as(out[n, c])
    return fixed.clamp_(0, 1).to(output.dtype)


def apply_color_fix(name: str, output: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``output`` with the colour fix ``name`` (one of :data:`COLOR_FIXES`) against ``source``."""
    check_color_fix(name)
    if name == "wavelet":
        return wavelet_color_fix(output, source)
    if name == "histogram":
        return histogram_color_fix(output, source)
    return output


def _check(output: torch.Tensor, source: torch.Tensor) -> None:
    if output.ndim != 4 or source.ndim != 4 or output.shape[:2] != source.shape[:2]:
        raise ValueError(f"colour fix needs NCHW output and source of the same N and C; got {tuple(output.shape)} "
                         f"and {tuple(source.shape)}")
