"""Metric speed, each against a reference measured in the same run.

1. PSNR/SSIM: numpy reference (one image at a time) vs batched torch. Validation-sized batch: by
   default 16 RGB images of 256x256 (a natural image with noise), scored as validation does
   (crop_border=4, Y channel); images/s, the speed-up and the largest disagreement.
2. NIQE per 512x512 image: ours vs BasicSR 1.4.2's ``calculate_niqe`` (same images, Y channel).
   BasicSR is not a dependency: install it outside the repository and pass its folder, e.g.
   ``pip install --target /tmp/bsr basicsr==1.4.2 addict yapf future --no-deps --no-build-isolation``
   then ``--basicsr /tmp/bsr``; without it only our time is printed.
3. LPIPS (alex, vgg) per 512x512 image pair: ours vs the ``lpips`` package (a dev dependency), with
   the same generated backbone weights (the arithmetic is what is timed; nothing is downloaded).

    .venv/bin/python benchmarks/bench_metrics.py [--quick] [--basicsr DIR] [--device cpu|cuda] [--threads N]
"""

from __future__ import annotations

import argparse
import platform
import sys
import types
from collections.abc import Callable

import numpy as np
import torch
from timing import best_time

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


def cpu_description() -> str:
    """CPU model and whether it has native bf16 matrix instructions (what the defaults are chosen from)."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    bf16 = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"{model}; bf16 matrix instructions: {', '.join(bf16) if bf16 else 'none (AVX2/AVX512 fp32 only)'}"


def _basicsr_niqe(path: str | None) -> Callable[..., float] | None:
    if path:
        sys.path.insert(0, path)
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401
    except ImportError:  # basicsr 1.4.2 imports this module, removed from torchvision 0.17
        import torchvision.transforms.functional as tvf

        shim = types.ModuleType("torchvision.transforms.functional_tensor")
        shim.rgb_to_grayscale = tvf.rgb_to_grayscale  # type: ignore[attr-defined]
        sys.modules["torchvision.transforms.functional_tensor"] = shim
    try:
        from basicsr.metrics.niqe import calculate_niqe
    except ImportError:
        return None
    return calculate_niqe


def bench_niqe(args: argparse.Namespace) -> None:
    import warnings

    from esrgan.metrics import niqe

    srs, _ = _images(args.niqe_num, 512)
    reference = _basicsr_niqe(args.basicsr)
    print(f"\n== NIQE, {args.niqe_num} images of 512x512 (Y channel, crop 0): seconds per image")
    t_ours = best_time(lambda: [niqe(x) for x in srs], args.repeat) / len(srs)
    print(f"ours               : {t_ours * 1e3:9.1f} ms")
    if reference is None:
        print("BasicSR calculate_niqe: not importable (see --basicsr); no ratio")
        return
    bgr = [np.ascontiguousarray(x[:, :, ::-1]) for x in srs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_ref = best_time(lambda: [reference(x, 0) for x in bgr], args.repeat) / len(srs)
        diff = max(abs(niqe(x) - reference(b, 0)) for x, b in zip(srs, bgr))
    print(f"BasicSR 1.4.2      : {t_ref * 1e3:9.1f} ms")
    print(f"speed-up ours / BasicSR: {t_ref / t_ours:.2f}x; max |ours - BasicSR| {diff:.1e}")


def bench_lpips(args: argparse.Namespace, device: torch.device, sync: Callable[[], None]) -> None:
    import warnings

    from esrgan.metrics.lpips_metric import LPIPS

    try:
        import lpips as lpips_pkg
    except ImportError:
        print("\n== LPIPS: the lpips package is not installed (pip install lpips); skipped")
        return
    srs, hrs = _images(2, 512)
    x = torch.stack([img2tensor(s) for s in srs]).to(device)
    y = torch.stack([img2tensor(h) for h in hrs]).to(device)
    print(f"\n== LPIPS v0.1 on {device}: one 512x512 image pair per call, seconds per pair")
    for net in ("alex", "vgg"):
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = lpips_pkg.LPIPS(net=net, pnet_rand=True, verbose=False).eval().to(device)
        ours = LPIPS(net, backbone=False)
        # lpips's slice<k>.<features index>.<param> -> torchvision's features.<index>.<param>
        sd = {".".join(k.split(".")[1:]): v for k, v in ref.net.state_dict().items()}
        ours.features.load_state_dict(sd)
        ours = ours.to(device)

        def run_ours(ours: LPIPS = ours) -> torch.Tensor:
            with torch.no_grad():
                return torch.cat([ours(x[i : i + 1], y[i : i + 1]) for i in range(len(x))])

        def run_ref(ref: torch.nn.Module = ref) -> torch.Tensor:
            with torch.no_grad():
                return torch.cat([ref(x[i : i + 1], y[i : i + 1], normalize=True).flatten() for i in range(len(x))])

        t_o = best_time(run_ours, args.repeat, sync=sync) / len(x)
        t_r = best_time(run_ref, args.repeat, sync=sync) / len(x)
        diff = float((run_ours() - run_ref()).abs().max())
        print(f"{net:<5} ours {t_o * 1e3:8.1f} ms, lpips package {t_r * 1e3:8.1f} ms: "
              f"speed-up {t_r / t_o:.2f}x; max |diff| {diff:.1e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=16, help="images in the batch")
    parser.add_argument("--size", type=int, default=256, help="image height and width")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats (about a minute)")
    parser.add_argument("--basicsr", default=None, metavar="DIR", help="folder holding the basicsr package")
    parser.add_argument("--niqe-num", type=int, default=4, help="512x512 images for NIQE")
    parser.add_argument("--skip", nargs="*", default=[], choices=["psnr_ssim", "niqe", "lpips"])
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.num, args.repeat, args.niqe_num = min(args.num, 8), 1, 2
    print(f"CPU: {cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads")

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if "psnr_ssim" not in args.skip:
        bench_psnr_ssim(args, device, sync)
    if "niqe" not in args.skip:
        bench_niqe(args)
    if "lpips" not in args.skip:
        bench_lpips(args, device, sync)
    return 0


def bench_psnr_ssim(args: argparse.Namespace, device: torch.device, sync: Callable[[], None]) -> None:
    srs, hrs = _images(args.num, args.size)
    sr_t = torch.stack([img2tensor(x) for x in srs]).to(device)
    hr_t = torch.stack([img2tensor(x) for x in hrs]).to(device)
    kw = {"crop_border": 4, "y_channel": True}

    def run_numpy() -> tuple[list[float], list[float]]:
        return [psnr(s, h, **kw) for s, h in zip(srs, hrs)], [ssim(s, h, **kw) for s, h in zip(srs, hrs)]

    def run_torch() -> tuple[torch.Tensor, torch.Tensor]:
        return psnr_torch(sr_t, hr_t, **kw), ssim_torch(sr_t, hr_t, **kw)

    t_np = best_time(run_numpy, args.repeat)
    t_torch = best_time(run_torch, args.repeat, sync=sync)
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


if __name__ == "__main__":
    raise SystemExit(main())
