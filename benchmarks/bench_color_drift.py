"""Colour drift of the shipped models with each ``--color-fix``, on real photos: what decides the default.

    .venv/bin/python benchmarks/bench_color_drift.py            # Set5 + Set14, both models (~10 min on 2 cores)
    .venv/bin/python benchmarks/bench_color_drift.py --quick    # 3 photos, 96-pixel LR crops (~1 minute)

For each model (../shared/models, or $ESRGAN_SHARED/models: Real-ESRGAN anime_6B RRDBNet and realesr-
animevideov3 compact, x4, fp32, CPU) and each photo of Set5 and Set14 (their bicubic x4 LR), the network's
output is colour-fixed with ``none``, ``wavelet`` and ``histogram`` (``esrgan.inference.color_fix``, as the
Upscaler applies them) and scored: colour drift (``esrgan.metrics.color_drift``: mean CIEDE2000 between the
output area-downscaled to the LR size and the LR; lower = colours kept), PSNR-Y against the HR photo (does the
fix cost fidelity?) and the mean high-frequency energy (output minus its 5-level wavelet low-pass, levels of
255: does it cost detail?). The HR photo's own drift against its bicubic LR is printed as the floor (downscaling
kernels differ: area vs bicubic). A quality figure, not a speed one: a busy machine gives the same numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from esrgan.data.image import imread  # noqa: E402
from esrgan.inference import Upscaler  # noqa: E402
from esrgan.inference.color_fix import COLOR_FIXES, apply_color_fix, wavelet_low  # noqa: E402
from esrgan.metrics import psnr  # noqa: E402
from esrgan.metrics.color_drift import color_drift  # noqa: E402
from esrgan.utils.hardware import cpu_summary  # noqa: E402

# The shared weights and photos beside the checkout (ESRGAN_SHARED names another folder, e.g. from a worktree).
SHARED = Path(os.environ.get("ESRGAN_SHARED", ROOT.parent / "shared"))
MODELS, DATA = SHARED / "models", SHARED / "data"
WEIGHTS = {
    "anime_6B (RRDBNet)": "RealESRGAN_x4plus_anime_6B.pth",
    "animevideov3 (compact)": "realesr-animevideov3_x4.pth",
}


def photos(quick: bool) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, LR, HR) of Set5 and Set14 (HR mod-cropped to the LR x4); --quick: 3 photos, 96-pixel LR crops."""
    out = []
    for name in ("Set5", "Set14"):
        for lr_path in sorted((DATA / name / "LR_bicubic" / "X4").glob("*.png")):
            hr_path = DATA / name / "HR" / lr_path.name.replace("x4.png", ".png")
            lr, hr = imread(lr_path), imread(hr_path)
            if lr.ndim == 2 or hr.ndim == 2:  # grey photos: scored as grey RGB
                lr = np.repeat(lr.reshape(*lr.shape[:2], 1), 3, axis=2)
                hr = np.repeat(hr.reshape(*hr.shape[:2], 1), 3, axis=2)
            hr = hr[: lr.shape[0] * 4, : lr.shape[1] * 4]
            out.append((lr_path.stem.removesuffix("x4"), lr, hr))
    if quick:
        out = [(n, lr[:96, :96], hr[:384, :384]) for n, lr, hr in out if n in ("baby", "woman", "face")]
    return out


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return t[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def detail(img: np.ndarray) -> float:
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    return float((x - wavelet_low(x)).abs().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    print(f"CPU: {cpu_summary()}; fp32")
    sets = photos(args.quick)
    floor = np.mean([color_drift(hr, lr) for _, lr, hr in sets])
    print(f"{len(sets)} photos; floor (the HR photo itself against its bicubic LR): drift {floor:.3f}")
    models = list(WEIGHTS.items())[:1] if args.quick else list(WEIGHTS.items())
    for label, file in models:
        up = Upscaler(MODELS / file, device="cpu", precision="fp32", color_fix="none")
        rows: dict[str, list[tuple[float, float, float]]] = {fix: [] for fix in COLOR_FIXES}
        per_photo: list[str] = []
        for name, lr, hr in sets:
            x = torch.from_numpy(lr).permute(2, 0, 1)[None].float().div(255)
            raw = up.upscale_tensor(x)
            line = [name]
            for fix in COLOR_FIXES:
                out = to_uint8(apply_color_fix(fix, raw, x))
                scores = (color_drift(out, lr), psnr(out, hr, crop_border=4, y_channel=True), detail(out))
                rows[fix].append(scores)
                line.append(f"{scores[0]:.2f}")
            per_photo.append(" ".join(line))
        print(f"\n{label}: per photo, drift none/wavelet/histogram: " + "; ".join(per_photo))
        print(f"{'color fix':<10} {'drift (dE00)':>12} {'worst photo':>11} {'PSNR-Y dB':>10} {'detail':>7}")
        for fix, values in rows.items():
            v = np.array(values)
            print(f"{fix:<10} {v[:, 0].mean():>12.3f} {v[:, 0].max():>11.3f} {v[:, 1].mean():>10.2f} "
                  f"{v[:, 2].mean():>7.2f}")


if __name__ == "__main__":
    main()
