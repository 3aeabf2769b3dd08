"""Tiling seams and overhead, and the default precision, with real trained weights on real photos.

    .venv/bin/python benchmarks/bench_upscale_real.py            # a few minutes on 2 idle cores
    .venv/bin/python benchmarks/bench_upscale_real.py --quick    # ~1 minute: one model, small crops

Weights from ../shared/models (Real-ESRGAN anime_6B RRDBNet and realesr-animevideov3 SRVGGNetCompact),
photos from ../shared/data/Set14 (or --image). Seams: tiled vs whole-image output of the same precision,
max |difference| in levels of 255 and PSNR, for tile_pad values (tiles forced small so every crop has
several), in fp32 and, where it is the default, bf16; in bf16 also how far the whole-image output moves
when the photo continues CONTEXT pixels further (bf16's sensitivity to far context, a tile border's
effect). Overhead: tiled time / whole-image time at the default pad, interleaved, best of N, and what
``tile=0`` picks for 1080p and 4K photos here. Precision: ``auto`` (what this CPU gets) vs fp32, time
ratio and PSNR between the outputs.
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

from bench_inference import window_overhead  # noqa: E402
from timing import best_time  # noqa: E402

from esrgan import load_model  # noqa: E402
from esrgan.data.image import imread  # noqa: E402
from esrgan.inference import Upscaler  # noqa: E402
from esrgan.inference.upscaler import TILE_PADS, resolve_precision  # noqa: E402
from esrgan.utils.hardware import cpu_summary, free_memory  # noqa: E402

MODELS = ROOT.parent / "shared" / "models"
SET14 = ROOT.parent / "shared" / "data" / "Set14" / "HR"
# Pixels of extra photo beyond a crop's right and bottom edges for the bf16 context check (see seams()).
CONTEXT = 60
WEIGHTS = {
    "anime_6B (RRDBNet)": "RealESRGAN_x4plus_anime_6B.pth",
    "animevideov3 (compact)": "realesr-animevideov3_x4.pth",
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def crops(args: argparse.Namespace) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (square crop, the same crop with CONTEXT more pixels of the photo to the right and below)."""
    size, more = args.crop, args.crop + CONTEXT
    if args.image:
        photo = imread(args.image)
        return {Path(args.image).stem: (photo[:size, :size], photo[:more, :more])}
    out = {}
    for name, y, x in (("comic", 100, 30), ("baboon", 100, 100), ("zebra", 100, 200), ("ppt3", 300, 200)):
        path = SET14 / f"{name}.png"
        if path.is_file():
            photo = imread(path)
            out[name] = (photo[y : y + size, x : x + size], photo[y : y + more, x : x + more])
    if not out:
        from skimage import data

        photo = data.astronaut()[100:, 150:]
        out["astronaut"] = (np.ascontiguousarray(photo[:size, :size]), np.ascontiguousarray(photo[:more, :more]))
    return dict(list(out.items())[: args.images])


def seams(args: argparse.Namespace, nets: dict[str, torch.nn.Module], images: dict[str, np.ndarray]) -> None:
    for prec, pads in args.pads.items():
        floor = f" | +{CONTEXT} px of photo" if prec != "fp32" else ""
        print(f"\n== seams, {prec}: {args.tile}-pixel tiles vs the whole image, same precision (levels of 255 / dB)")
        print(f"{'model':<24} {'image':<10} " + " ".join(f"{'pad ' + str(p):>14}" for p in pads) + floor)
        for label, net in nets.items():
            for name, (img, wider) in images.items():
                up = Upscaler(net, device="cpu", precision=prec)
                whole = up.upscale(img)
                cells = []
                for pad in pads:
                    tiled = Upscaler(net, device="cpu", precision=prec, tile=args.tile, tile_pad=pad).upscale(img)
                    cells.append(f"{np.abs(tiled.astype(int) - whole).max():>4d} / {psnr(tiled, whole):5.1f} dB")
                if floor:
                    # The same crop run inside a larger piece of the photo, compared where the extra photo is
                    # >= CONTEXT px away: what far context alone moves in bf16, with no tile border at all.
                    keep = 4 * (img.shape[0] - CONTEXT)
                    inside = up.upscale(wider)[:keep, :keep]
                    cells.append(f"{np.abs(inside.astype(int) - whole[:keep, :keep]).max():>4d} levels")
                print(f"{label:<24} {name:<10} " + " ".join(f"{c:>14}" for c in cells), flush=True)


def large_photo(args: argparse.Namespace) -> np.ndarray:
    """The top-left ``overhead_size`` square of the photo (Set14 baboon unless --image)."""
    size = args.overhead_size
    path = Path(args.image) if args.image else SET14 / "baboon.png"
    if path.is_file():
        return imread(path)[:size, :size]
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:size, :size])


def overhead(args: argparse.Namespace, nets: dict[str, torch.nn.Module]) -> None:
    img = large_photo(args)
    pad = TILE_PADS[resolve_precision("auto", torch.device("cpu"))]
    print(f"\n== tiling overhead at the default pad ({pad}), {img.shape[1]}x{img.shape[0]} input, "
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
    # What tile=0 (the default) does with large photos on this machine: whole when they fit, else memory-sized tiles.
    free = free_memory(torch.device("cpu"))
    print(f"tile=0 on this machine ({free / 2**30:.1f} GiB free), by geometry (pixels the overlapping windows add):")
    for label, net in nets.items():
        up = Upscaler(net, device="cpu")
        cells = []
        for w, h in ((1920, 1080), (3840, 2160)):
            tile = up.auto_tile(h, w)
            if tile == 0:
                cells.append(f"{w}x{h} whole (+0%)")
                continue
            m = up.info.multiple
            extra = window_overhead(h + (-h % m), tile, up.tile_pad, width=w + (-w % m), multiple=m) - 1
            cells.append(f"{w}x{h} {tile}-px tiles, {up.forward_passes(1, h, w, tile)} windows (+{100 * extra:.1f}%)")
        print(f"{label:<24} " + "; ".join(cells), flush=True)


def precision(args: argparse.Namespace, nets: dict[str, torch.nn.Module], images: dict[str, np.ndarray]) -> None:
    auto = resolve_precision("auto", torch.device("cpu"))
    for img in (next(iter(images.values()))[0], large_photo(args)):
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
            gap = np.abs(outs["auto"].astype(int) - outs["fp32"]).max()
            print(f"{label:<24} fp32 {best['fp32']:.2f} s, auto {best['auto']:.2f} s: "
                  f"{best['fp32'] / best['auto']:.2f}x faster; auto output {psnr(outs['auto'], outs['fp32']):.1f} dB "
                  f"from fp32, max {gap} levels", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one model, one 160-pixel crop, two pads")
    p.add_argument("--image", help="a photo instead of the Set14 crops")
    p.add_argument("--skip", nargs="*", default=[], choices=["seams", "overhead", "precision"])
    args = p.parse_args(argv)
    # 224-pixel crops in 48-pixel tiles: 2 x 2 windows or more at every pad up to 80
    args.crop, args.images, args.tile = (224, 1, 48) if args.quick else (224, 4, 48)
    fp32_pad, bf16_pad = TILE_PADS[torch.float32], TILE_PADS[torch.bfloat16]
    args.pads = {"fp32": [10, fp32_pad] if args.quick else [10, 16, 24, 32, 40, fp32_pad, 64]}
    if resolve_precision("auto", torch.device("cpu")) == torch.bfloat16:  # bf16 only where it is the default
        args.pads["bf16"] = [fp32_pad, bf16_pad] if args.quick else [fp32_pad, 64, bf16_pad]
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
