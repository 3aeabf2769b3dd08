"""Tiling seams and overhead, and the default precision, with real trained weights on real photos.

    .venv/bin/python benchmarks/bench_upscale_real.py            # a few minutes on 2 idle cores
    .venv/bin/python benchmarks/bench_upscale_real.py --quick    # ~1 minute: one model, small crops

Weights from ../shared/models (Real-ESRGAN anime_6B RRDBNet and realesr-animevideov3 SRVGGNetCompact),
photos from ../shared/data/Set14 (or --image). Seams: tiled vs whole-image output of the same precision,
max |difference| in levels of 255 and PSNR, for tile_pad values (tiles forced small so every crop has
several). Overhead: tiled time / whole-image time at the default pad, interleaved, best of N. Precision:
``auto`` (what this CPU gets) vs fp32, time ratio and PSNR between the outputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import best_time  # noqa: E402

from esrgan import load_model  # noqa: E402
from esrgan.data.image import imread  # noqa: E402
from esrgan.inference import Upscaler  # noqa: E402
from esrgan.inference.upscaler import DEFAULT_TILE_PAD, resolve_precision  # noqa: E402
from esrgan.utils.hardware import cpu_summary  # noqa: E402

MODELS = ROOT.parent / "shared" / "models"
SET14 = ROOT.parent / "shared" / "data" / "Set14" / "HR"
WEIGHTS = {
    "anime_6B (RRDBNet)": "RealESRGAN_x4plus_anime_6B.pth",
    "animevideov3 (compact)": "realesr-animevideov3_x4.pth",
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def crops(args: argparse.Namespace) -> dict[str, np.ndarray]:
    size = args.crop
    if args.image:
        return {Path(args.image).stem: imread(args.image)[:size, :size]}
    out = {}
    for name, y, x in (("baboon", 100, 100), ("comic", 100, 30), ("zebra", 100, 200), ("ppt3", 300, 200)):
        path = SET14 / f"{name}.png"
        if path.is_file():
            out[name] = imread(path)[y : y + size, x : x + size]
    if not out:
        from skimage import data

        out["astronaut"] = np.ascontiguousarray(data.astronaut()[100 : 100 + size, 150 : 150 + size])
    return dict(list(out.items())[: args.images])


def seams(args: argparse.Namespace, nets: dict[str, torch.nn.Module], images: dict[str, np.ndarray]) -> None:
    print(f"\n== seams: {args.tile}-pixel tiles vs the whole image, fp32 (levels of 255 / dB)")
    print(f"{'model':<24} {'image':<10} " + " ".join(f"{'pad ' + str(p):>14}" for p in args.pads))
    for label, net in nets.items():
        for name, img in images.items():
            whole = Upscaler(net, device="cpu", precision="fp32").upscale(img)
            cells = []
            for pad in args.pads:
                tiled = Upscaler(net, device="cpu", precision="fp32", tile=args.tile, tile_pad=pad).upscale(img)
                cells.append(f"{np.abs(tiled.astype(int) - whole).max():>4d} / {psnr(tiled, whole):5.1f} dB")
            print(f"{label:<24} {name:<10} " + " ".join(f"{c:>14}" for c in cells), flush=True)


def overhead(args: argparse.Namespace, nets: dict[str, torch.nn.Module]) -> None:
    size = args.overhead_size
    path = Path(args.image) if args.image else SET14 / "baboon.png"
    if path.is_file():
        img = imread(path)[:size, :size]
    else:
        from skimage import data

        img = np.ascontiguousarray(data.astronaut()[:size, :size])
    print(f"\n== tiling overhead at the default pad ({DEFAULT_TILE_PAD}), {img.shape[1]}x{img.shape[0]} input, "
          f"precision auto; interleaved, best of {args.repeats}")  # fmt: skip
    for label, net in nets.items():
        whole = Upscaler(net, device="cpu")
        tiles = {t: Upscaler(net, device="cpu", tile=t) for t in args.overhead_tiles}
        best = {0: float("inf"), **{t: float("inf") for t in tiles}}
        for _ in range(args.repeats):
            best[0] = min(best[0], best_time(lambda whole=whole: whole.upscale(img), 1, warmup=0))
            for t, up in tiles.items():
                best[t] = min(best[t], best_time(lambda up=up: up.upscale(img), 1, warmup=0))
        row = ", ".join(
            f"tile {t}: {100 * (best[t] / best[0] - 1):+.0f}% ({whole.forward_passes(1, *img.shape[:2], t)} windows)"
            for t in tiles
        )
        print(f"{label:<24} whole {best[0]:.2f} s; {row}", flush=True)


def precision(args: argparse.Namespace, nets: dict[str, torch.nn.Module], images: dict[str, np.ndarray]) -> None:
    auto = resolve_precision("auto", torch.device("cpu"))
    img = next(iter(images.values()))
    print(f"\n== precision auto on this CPU = {auto}; vs fp32, {img.shape[1]}x{img.shape[0]} whole image, "
          f"interleaved, best of {args.repeats}")  # fmt: skip
    for label, net in nets.items():
        ups = {"auto": Upscaler(net, device="cpu"), "fp32": Upscaler(net, device="cpu", precision="fp32")}
        best = dict.fromkeys(ups, float("inf"))
        outs = {}
        for _ in range(args.repeats):
            for k, up in ups.items():
                t = time.perf_counter()
                outs[k] = up.upscale(img)
                best[k] = min(best[k], time.perf_counter() - t)
        print(f"{label:<24} fp32 {best['fp32']:.2f} s, auto {best['auto']:.2f} s: {best['fp32'] / best['auto']:.2f}x "
              f"faster; auto output {psnr(outs['auto'], outs['fp32']):.1f} dB from fp32, max "
              f"{np.abs(outs['auto'].astype(int) - outs['fp32']).max()} levels", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one model, one 160-pixel crop, two pads")
    p.add_argument("--image", help="a photo instead of the Set14 crops")
    p.add_argument("--skip", nargs="*", default=[], choices=["seams", "overhead", "precision"])
    args = p.parse_args(argv)
    args.crop, args.images, args.tile = (160, 1, 32) if args.quick else (200, 4, 64)
    args.pads = [10, DEFAULT_TILE_PAD] if args.quick else [10, 16, 24, 32, 40, DEFAULT_TILE_PAD, 64]
    args.overhead_size, args.overhead_tiles = (256, [64]) if args.quick else (480, [256, 128])
    args.repeats = 1 if args.quick else 3
    print(f"CPU: {cpu_summary()}")
    missing = [f for f in WEIGHTS.values() if not (MODELS / f).is_file()]
    if missing:
        print(f"real weights missing from {MODELS}: {', '.join(missing)}")
        return 1
    names = list(WEIGHTS)[:1] if args.quick else list(WEIGHTS)
    nets = {k: load_model(MODELS / WEIGHTS[k]) for k in names}
    images = crops(args)
    if "seams" not in args.skip:
        seams(args, nets, images)
    if "overhead" not in args.skip:
        overhead(args, nets)
    if "precision" not in args.skip:
        precision(args, nets, images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
