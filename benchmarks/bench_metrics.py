"""Throughput of PSNR/SSIM: numpy reference (one image at a time) vs batched torch, in the same run.

Validation-sized batch: by default 16 RGB images of 256x256 (a natural image with noise),
scored as validation does (crop_border=4, Y channel). Prints images/s for each path,
the speed-up of torch over numpy, and the largest disagreement between the two.

    .venv/bin/python benchmarks/bench_metrics.py [--num 16] [--size 256] [--device cpu|cuda] [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from esrgan.data.image import img2tensor
from esrgan.metrics import psnr, psnr_torch, ssim, ssim_torch


def _images(num: int, size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from skimage import data

    base = data.astronaut()
    rng = np.random.default_rng(0)
    hrs, srs = [], []
    for i in range(num):
        y, x = rng.integers(0, base.shape[0] - size + 1), rng.integers(0, base.shape[1] - size + 1)
        hr = base[y : y + size, x : x + size] if size <= base.shape[0] else np.resize(base, (size, size, 3))
        hr = np.ascontiguousarray(hr)
        noise = rng.normal(0, 2 + i % 8, hr.shape)
        srs.append(np.clip(np.round(hr + noise), 0, 255).astype(np.uint8))
        hrs.append(hr)
    return srs, hrs


def _best_time(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up (kernel selection, caches)
    sync()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=16, help="images in the batch")
    parser.add_argument("--size", type=int, default=256, help="image height and width")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    srs, hrs = _images(args.num, args.size)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sr_t = torch.stack([img2tensor(x) for x in srs]).to(device)
    hr_t = torch.stack([img2tensor(x) for x in hrs]).to(device)
    kw = {"crop_border": 4, "y_channel": True}

    def run_numpy() -> tuple[list[float], list[float]]:
        return [psnr(s, h, **kw) for s, h in zip(srs, hrs)], [ssim(s, h, **kw) for s, h in zip(srs, hrs)]

    def run_torch() -> tuple[torch.Tensor, torch.Tensor]:
        return psnr_torch(sr_t, hr_t, **kw), ssim_torch(sr_t, hr_t, **kw)

    t_np = _best_time(run_numpy, args.repeat, lambda: None)
    t_torch = _best_time(run_torch, args.repeat, sync)
    p_np, s_np = run_numpy()
    p_t, s_t = run_torch()
    dp = float(np.max(np.abs(p_t.cpu().numpy() - np.array(p_np))))
    ds = float(np.max(np.abs(s_t.cpu().numpy() - np.array(s_np))))

    where = f"{device}" if device.type != "cpu" else f"cpu, {torch.get_num_threads()} threads"
    print(f"batch: {args.num} x {args.size}x{args.size} RGB, crop_border=4, Y channel; torch on {where}")
    print(f"numpy (per image) : {t_np * 1e3:9.1f} ms  {args.num / t_np:9.1f} images/s")
    print(f"torch (batched)   : {t_torch * 1e3:9.1f} ms  {args.num / t_torch:9.1f} images/s")
    print(f"speed-up torch / numpy: {t_np / t_torch:.2f}x")
    print(f"max |torch - numpy|: PSNR {dp:.2e} dB, SSIM {ds:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
