"""Network interpolation (ESRGAN paper, sec. 3.4): theta = (1 - alpha) * theta_PSNR + alpha * theta_GAN.

Both networks are read through the loader, so any pair of supported layouts (ours,
BasicSR, the official ESRGAN release, Real-ESRGAN) can be mixed: the state dicts are
compared and blended in our normalised key layout.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger("esrgan.evaluation.interpolation")


def check_alpha(alpha: float) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (0 = PSNR model, 1 = GAN model), got {alpha!r}")
    return value


def _describe_mismatch(sd_a: Mapping[str, torch.Tensor], sd_b: Mapping[str, torch.Tensor], max_items: int = 8) -> str:
    """Human-readable key/shape differences, or '' if the two layouts agree."""

    def listing(items: list[str]) -> str:
        more = f", ... ({len(items) - max_items} more)" if len(items) > max_items else ""
        return ", ".join(items[:max_items]) + more

    only_a = sorted(set(sd_a) - set(sd_b))
    only_b = sorted(set(sd_b) - set(sd_a))
    shapes = [
        f"{k} {tuple(sd_a[k].shape)} vs {tuple(sd_b[k].shape)}"
        for k in sd_a
        if k in sd_b and tuple(sd_a[k].shape) != tuple(sd_b[k].shape)
    ]
    parts = []
    if only_a:
        parts.append(f"keys only in the PSNR model: {listing(only_a)}")
    if only_b:
        parts.append(f"keys only in the GAN model: {listing(only_b)}")
    if shapes:
        parts.append(f"shapes differ: {listing(shapes)}")
    return "; ".join(parts)


def interpolate_state_dicts(
    sd_a: Mapping[str, torch.Tensor], sd_b: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """(1 - alpha) * sd_a + alpha * sd_b, key by key (sd_a: PSNR model, sd_b: GAN model).

    Both must have the same keys and shapes (else ValueError naming them). alpha 0 and 1
    return copies of the endpoints bit for bit. Floating tensors are blended in float64 and
    cast back to sd_a's dtype; integer buffers (e.g. BatchNorm counters) come from the nearer end.
    """
    alpha = check_alpha(alpha)
    mismatch = _describe_mismatch(sd_a, sd_b)
    if mismatch:
        raise ValueError(f"cannot interpolate networks of different architectures: {mismatch}")
    out: dict[str, torch.Tensor] = {}
    for key, a in sd_a.items():
        b = sd_b[key]
        if alpha == 0.0:
            out[key] = a.detach().clone()
        elif alpha == 1.0:
            out[key] = b.detach().to(a.dtype).clone()
        elif a.is_floating_point() and b.is_floating_point():
            mixed = (1.0 - alpha) * a.detach().double() + alpha * b.detach().to(a.device).double()
            out[key] = mixed.to(a.dtype)
        else:
            out[key] = (a if alpha < 0.5 else b.to(a.dtype)).detach().clone()
    return out


@dataclass
class GeneratorPair:
    """The two endpoints, loaded and checked: same architecture and hyper-parameters."""

    arch: str
    kwargs: dict[str, Any]
    sd_psnr: dict[str, torch.Tensor]
    sd_gan: dict[str, torch.Tensor]

    def interpolate(self, alpha: float) -> dict[str, torch.Tensor]:
        return interpolate_state_dicts(self.sd_psnr, self.sd_gan, alpha)

    def build(self, alpha: float, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The generator at ``alpha``, in eval mode on ``device``."""
        from esrgan.loading import build_generator

        return build_generator(self.arch, self.kwargs, self.interpolate(alpha), f"alpha {alpha:g}").to(device)


def load_generator_checked(path: str | Path, role: str) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """``esrgan.loading.load_generator`` with the role (PSNR/GAN) and a missing file named up front."""
    from esrgan.evaluation.tested_models import check_model_source
    from esrgan.loading import check_finite_weights, load_generator

    check_model_source(str(path), what=f"{role} model")
    try:
        arch, kwargs, sd = load_generator(str(path))
        check_finite_weights(sd, path)
        return arch, kwargs, sd
    except (ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise ValueError(f"{role} model: {exc}" if str(path) in str(exc) else f"{role} model {path}: {exc}") from exc


def load_pair(psnr: str | Path, gan: str | Path) -> GeneratorPair:
    """Load both endpoints and refuse different architectures, naming what differs."""
    arch_a, kw_a, sd_a = load_generator_checked(psnr, "PSNR")
    arch_b, kw_b, sd_b = load_generator_checked(gan, "GAN")
    mismatch = _describe_mismatch(sd_a, sd_b)
    if arch_a != arch_b or kw_a != kw_b or mismatch:
        diffs = [f"arch {arch_a} vs {arch_b}"] if arch_a != arch_b else []
        keys = sorted(set(kw_a) | set(kw_b))
        diffs += [f"{k}={kw_a.get(k)!r} vs {kw_b.get(k)!r}" for k in keys if kw_a.get(k) != kw_b.get(k)]
        if mismatch:
            diffs.append(mismatch)
        raise ValueError(
            f"cannot interpolate {psnr} (PSNR) and {gan} (GAN): different architectures: {'; '.join(diffs)}"
        )
    pair = GeneratorPair(arch_a, dict(kw_a), sd_a, sd_b)
    from esrgan.loading import build_generator

    # the same keys on both sides can still be a network no one can load: say so now, not at its first use
    build_generator(arch_a, kw_a, sd_a, psnr)
    return pair


def interpolate_checkpoints(psnr: str | Path, gan: str | Path, alpha: float, out: str | Path) -> Path:
    """Write the generator at ``alpha`` as a checkpoint (ours: ``{"params": ...}``; .pth or .safetensors)."""
    from esrgan.checkpoint import save_network

    alpha = check_alpha(alpha)
    pair = load_pair(psnr, gan)
    out = Path(out)
    save_network(out, {"params": pair.interpolate(alpha)})
    logger.info("interpolated %s (alpha=%g) -> %s", pair.arch, alpha, out)
    return out


# More alphas than anyone plots (0:1:0.001); a typo such as 0:1:1e-9 would otherwise run for ever.
MAX_ALPHAS = 1001


def parse_alphas(spec: str | float | list[float] | tuple[float, ...]) -> list[float]:
    """'0:1:0.1' (start:stop:step, stop included) or '0,0.5,1' or a list -> checked, sorted alphas."""
    if isinstance(spec, int | float):
        values = [float(spec)]
    elif isinstance(spec, list | tuple):
        values = [check_alpha(v) for v in spec]
    else:
        text = str(spec).strip()
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError(f"alpha sweep must be start:stop:step (e.g. 0:1:0.1), got {spec!r}")
            try:
                start, stop, step = (float(p) for p in parts)
            except ValueError:
                raise ValueError(f"alpha sweep must be start:stop:step of numbers, got {spec!r}") from None
            if step <= 0 or stop < start:
                raise ValueError(f"alpha sweep {spec!r}: need step > 0 and stop >= start")
            count = math.floor((stop - start) / step + 1e-9)
            if count + 1 > MAX_ALPHAS:
                raise ValueError(f"alpha sweep {spec!r} gives {count + 1:,} alphas; at most {MAX_ALPHAS} "
                                 "(each one is a test run of every image)")
            # Round away float drift (0.1 * 3 = 0.30000000000000004) so labels and files read cleanly.
            values = [round(start + i * step, 10) for i in range(count + 1)]
        else:
            try:
                values = [float(p) for p in text.split(",") if p.strip()]
            except ValueError:
                raise ValueError(f"alphas must be start:stop:step or a comma list, got {spec!r}") from None
    if not values:
        raise ValueError(f"no alphas in {spec!r}")
    return sorted({check_alpha(v) for v in values})
