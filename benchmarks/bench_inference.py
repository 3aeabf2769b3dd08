"""Inference speed and memory: network GFLOP/s vs the machine's matmul rate, tiling overhead, ours vs the
usual notebook loop, peak memory of a 1024x1024 input with and without tiles.

    .venv/bin/python benchmarks/bench_inference.py            # about 10 minutes on 2 idle CPU cores
    .venv/bin/python benchmarks/bench_inference.py --quick    # smaller model and sizes, ~1 minute

Every figure is a ratio against a reference measured in the same run (times are best-of-N, which is
the least disturbed by other processes on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from timing import best_time
from torch import nn

from esrgan.archs import RRDBNet
from esrgan.checkpoint import save_network
from esrgan.data.image import imread, imwrite
from esrgan.inference import Upscaler

torch.set_grad_enabled(False)


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 matmul rate of this machine (all threads torch uses): the ceiling a conv net can approach."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_time(lambda: torch.mm(a, b), repeats, warmup=2) / 1e9


def conv_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of every convolution for input ``x``: 2 * Cin/groups * Cout * kh * kw * Hout * Wout * N."""
    total = 0

    def hook(m: nn.Conv2d, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += (
            2 * (m.in_channels // m.groups) * m.out_channels * kh * kw * out.shape[-2] * out.shape[-1] * out.shape[0]
        )

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        model(x)
    for h in handles:
        h.remove()
    return total


def network_rate(args: argparse.Namespace, net: nn.Module) -> None:
    print("\n== network throughput (whole tiles, no padding) vs fp32 matmul")
    ceiling = matmul_gflops()
    print(
        f"{'tile':>5} {'batch':>5} {'NCHW GFLOP/s':>12} {'NHWC GFLOP/s':>12} {'NHWC % of matmul':>16} "
        f"{'paired %':>8} {'NHWC/NCHW':>9}"
    )
    for size, batch in args.configs:
        x = torch.rand(batch, 3, size, size)
        flops = conv_flops(net, x)
        ups = {cl: Upscaler(net, device="cpu", channels_last=cl, batch_tiles=batch) for cl in (False, True)}
        best = {False: float("inf"), True: float("inf")}
        paired = []  # NHWC rate / matmul rate measured right after it: robust when other jobs come and go
        for cl in (False, True):  # warm-up: oneDNN builds its kernels for this shape
            ups[cl].upscale_tensor(x)
        for _ in range(args.repeats):  # layouts interleaved, so a busy moment hits both alike
            for cl in (False, True):
                t = best_time(lambda cl=cl, ups=ups, x=x: ups[cl].upscale_tensor(x), 1, warmup=0)
                best[cl] = min(best[cl], t)
            mm = matmul_gflops(repeats=3)
            paired.append(flops / t / 1e9 / mm)
            ceiling = max(ceiling, mm)  # the best matmul rate seen: a conservative ceiling
        nchw, nhwc = flops / best[False] / 1e9, flops / best[True] / 1e9
        print(
            f"{size:>5} {batch:>5} {nchw:>12.1f} {nhwc:>12.1f} {100 * nhwc / ceiling:>15.0f}% "
            f"{100 * float(np.median(paired)):>7.0f}% {nhwc / nchw:>8.2f}x"
        )
    print(f"fp32 matmul ceiling (2048^2, best seen): {ceiling:.1f} GFLOP/s, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")  # fmt: skip
    print("'paired %': median over repeats of the NHWC rate / the matmul rate measured just after it")


def window_overhead(size: int, tile: int, pad: int = 10, width: int | None = None, multiple: int = 1) -> float:
    """Pixels the network sees with tiles / pixels of the image (pure geometry); ``size`` x ``width or size``."""
    from esrgan.inference.tiling import tile_spans

    width = width or size
    rows = sum(s.win_end - s.win_start for s in tile_spans(size, tile, pad, multiple))
    cols = sum(s.win_end - s.win_start for s in tile_spans(width, tile, pad, multiple))
    return rows * cols / (size * width)


def tiling_overhead(args: argparse.Namespace, net: nn.Module) -> None:
    size = args.large
    print(f"\n== tiled vs whole image ({size}x{size} input, x4, tile_pad 10, batch_tiles 4)")
    x = torch.rand(1, 3, size, size)
    runs = {0: Upscaler(net, device="cpu")}
    runs.update({t: Upscaler(net, device="cpu", tile=t, tile_pad=10, batch_tiles=4) for t in args.large_tiles})
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeats):  # interleaved
        for tile, up in runs.items():
            best[tile] = min(best[tile], best_time(lambda up=up: up.upscale_tensor(x), 1, warmup=0))
    print(f"whole image: {best[0]:.2f} s")
    for tile in args.large_tiles:
        print(f"tile {tile:>4}: {best[tile]:.2f} s ({100 * (best[tile] / best[0] - 1):+.0f}% vs whole; the windows "
              f"hold {100 * (window_overhead(size, tile) - 1):+.0f}% more pixels than the image)")  # fmt: skip
    print("pixel overhead of the windows (geometry) for large images, tile_pad 10:")
    for big in (1024, 2048):
        print(
            f"  {big}x{big}: "
            + ", ".join(f"tile {t} {100 * (window_overhead(big, t) - 1):+.1f}%" for t in (128, 256, 512))
        )


def precision(args: argparse.Namespace) -> None:
    print("\n== precision on this CPU (RRDBNet num_block 2, one 64x64 tile): time vs fp32")
    torch.manual_seed(0)
    small = RRDBNet(3, 3, num_feat=64, num_block=2, num_grow_ch=32, scale=4).eval()
    x = torch.rand(1, 3, 64, 64)
    times = {}
    for p in ("fp32", "bf16", "fp16"):
        up = Upscaler(small, device="cpu", precision=p)
        times[p] = best_time(lambda up=up: up.upscale_tensor(x), args.repeats)
    print(", ".join(f"{p} {t:.2f} s ({t / times['fp32']:.2f}x)" for p, t in times.items()))


def notebook_loop(model: nn.Module, files: list[Path], out_dir: Path) -> None:
    """What the notebooks do (ESRGAN's test.py): per image, float64 numpy round trips, NCHW, no_grad."""
    for path in files:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR) * 1.0 / 255
        img = torch.from_numpy(np.transpose(img[:, :, [2, 1, 0]], (2, 0, 1))).float()
        with torch.no_grad():
            output = model(img.unsqueeze(0)).data.squeeze().float().cpu().clamp_(0, 1).numpy()
        output = np.transpose(output[[2, 1, 0], :, :], (1, 2, 0))
        cv2.imwrite(str(out_dir / f"{path.stem}_nb.png"), (output * 255.0).round())


def ours_vs_notebook(args: argparse.Namespace, net: nn.Module, work: Path) -> None:
    from esrgan.commands.upscale import main as upscale_main

    print(f"\n== esrgan upscale vs the notebook loop ({args.n_images} PNGs of {args.image}x{args.image})")
    rng = np.random.default_rng(0)
    src = work / "images"
    base = cv2.resize(np.ascontiguousarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)), (args.image, args.image))
    for i in range(args.n_images):
        imwrite(src / f"img{i}.png", np.roll(base, 3 * i, axis=1))
    files = sorted(src.glob("*.png"))
    ckpt = work / "model.pth"
    save_network(ckpt, {"params_ema": net.state_dict()})
    nb_out, our_out = work / "nb", work / "ours"
    nb_out.mkdir()
    model = net.eval()
    up = Upscaler(ckpt, device="cpu")

    def ours() -> None:
        for path in files:
            imwrite(our_out / f"{path.stem}_x4.png", up.upscale(imread(path)))

    t_nb = t_ours = float("inf")
    for _ in range(args.repeats):  # interleaved, so a busy moment hits both alike
        t_nb = min(t_nb, best_time(lambda: notebook_loop(model, files, nb_out), 1, warmup=0))
        t_ours = min(t_ours, best_time(ours, 1, warmup=0))
    n = len(files)
    print(f"notebook loop: {n / t_nb:.3f} images/s; ours (imread, Upscaler.upscale, imwrite): {n / t_ours:.3f} "
          f"images/s ({t_nb / t_ours:.2f}x)")  # fmt: skip
    upscale_main([str(src), "-o", str(work / "cli"), "--model", str(ckpt)])  # the command works on the same files
    assert len(list((work / "cli").glob("*_x4.png"))) == n


_MEM_CHILD = r"""
import json, os, sys, threading, time, numpy as np, torch
from esrgan.archs import RRDBNet
from esrgan.inference import Upscaler

def rss_mb():  # resident set size now (ru_maxrss would also count the import-time high-water mark)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

feat, size, tile = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
up = Upscaler(RRDBNet(3, 3, num_feat=feat, num_block=1, num_grow_ch=feat // 2), device="cpu", tile=tile)
img = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
before, peak, done = rss_mb(), [0.0], threading.Event()

def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss_mb())
        time.sleep(0.002)

sampler = threading.Thread(target=sample)
sampler.start()
t = time.perf_counter()
out = up.upscale(img)
seconds = time.perf_counter() - t
done.set()
sampler.join()
print(json.dumps({"seconds": seconds, "peak_mb": peak[0], "before_mb": before, "out_mb": out.nbytes / 2**20}))
"""


def peak_memory(args: argparse.Namespace) -> None:
    size, feat = args.mem_size, args.mem_feat
    print(f"\n== peak memory (RSS sampled every 2 ms, fresh process), {size}x{size} RGB -> x4, RRDBNet num_feat={feat}")
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    for tile in (0, 256, 128):
        res = subprocess.run(
            [sys.executable, "-c", _MEM_CHILD, str(feat), str(size), str(tile)],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        r = json.loads(res.stdout.strip().splitlines()[-1])
        label = "whole image" if tile == 0 else f"tile {tile}"
        print(f"{label:>12}: +{r['peak_mb'] - r['before_mb']:6.0f} MB over the {r['before_mb']:.0f} MB of the loaded "
              f"process (output array {r['out_mb']:.0f} MB), {r['seconds']:.1f} s")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small model and sizes (a smoke run)")
    p.add_argument("--blocks", type=int, default=23, help="RRDB blocks of the benchmark net (default: 23, ESRGAN's)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip", nargs="*", default=[], choices=["rate", "tiling", "precision", "notebook", "memory"])
    args = p.parse_args()
    args.configs = [(32, 4), (64, 1), (64, 4), (128, 1)] if not args.quick else [(32, 1), (64, 1)]
    args.large, args.large_tiles = (256, [128, 64]) if not args.quick else (96, [48])
    args.image, args.n_images = (96, 3) if not args.quick else (48, 2)
    args.mem_size, args.mem_feat = (1024, 16) if not args.quick else (256, 8)
    if args.quick:
        args.blocks, args.repeats = min(args.blocks, 2), 1

    torch.manual_seed(0)
    net = RRDBNet(3, 3, num_feat=64, num_block=args.blocks, num_grow_ch=32, scale=4).eval()
    print(f"RRDBNet x4, num_feat 64, num_block {args.blocks}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, CPU")  # fmt: skip
    if "rate" not in args.skip:
        network_rate(args, net)
    if "tiling" not in args.skip:
        tiling_overhead(args, net)
    if "precision" not in args.skip:
        precision(args)
    if "notebook" not in args.skip:
        with tempfile.TemporaryDirectory() as tmp:
            ours_vs_notebook(args, net, Path(tmp))
    if "memory" not in args.skip:
        peak_memory(args)


if __name__ == "__main__":
    main()
