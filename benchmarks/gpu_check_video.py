"""The GPU check of the video path: what a CPU cannot test (docs/upscaling.md, "GPU check").

    .venv/bin/python benchmarks/gpu_check_video.py            # on a CUDA machine (~5 minutes)
    .venv/bin/python benchmarks/gpu_check_video.py --quick    # smoke test, also on a CPU (small frames)

1. **Frames per pass by measurement**: ``measure_frames_per_pass`` for 720p and 1080p frames with both shipped
   models at ``--precision auto`` (fp16): ms per frame for each batch size that fits, the choice, and what
   memory alone allows (``frames_per_pass``). Expect the choice to be > 1 for the compact model at 720p.
2. **Overlapped decode / network / encode**: a 1080p pan through ``upscale_video`` against the network alone
   on the same frames in memory: the network's share of the wall time and the end-to-end rate relative to
   the network's (>= 0.9 means decoding and encoding hide behind the network).
3. **Resume on the GPU**: a job cancelled at half its frames and run again equals an uninterrupted one,
   frame for frame (fp16, batched: the batch never spans two parts). Fails loudly if not.
4. **Colour fix on the device**: the wavelet fix's time for a 4K frame, against the network's for its input.
5. **Precision as a source of flicker**: warping error and flicker index of the pan in fp16 and fp32.

Prints the device; every figure is a ratio or is shown beside its reference. Exits 1 if check 3 fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from synthetic_video import make_pan_clip  # noqa: E402

from esrgan.data.image import imread  # noqa: E402
from esrgan.inference import Upscaler  # noqa: E402
from esrgan.inference.color_fix import wavelet_color_fix  # noqa: E402
from esrgan.inference.video import frames_per_pass, measure_frames_per_pass, upscale_video  # noqa: E402
from esrgan.metrics.temporal import temporal_scores  # noqa: E402
from esrgan.utils.hardware import cpu_summary  # noqa: E402

SHARED = Path(os.environ.get("ESRGAN_SHARED", ROOT.parent / "shared"))
MODELS = {"anime_6B": "RealESRGAN_x4plus_anime_6B.pth", "animevideov3": "realesr-animevideov3_x4.pth"}


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else cpu_summary()
    print(f"device: {device} ({name}); torch {torch.__version__}")
    sizes = {"96x64": (64, 96)} if args.quick else {"720p": (720, 1280), "1080p": (1080, 1920)}
    models = {"animevideov3": MODELS["animevideov3"]} if args.quick else MODELS
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    print("\n1. frames per pass (ms per frame by batch size)")
    for label, file in models.items():
        up = Upscaler(SHARED / "models" / file, device=device)
        for size, (h, w) in sizes.items():
            choice, times = measure_frames_per_pass(up, h, w)
            shown = ", ".join(f"{k}: {1000 * v:.1f}" for k, v in times.items()) or "not measured (CPU: 1)"
            print(f"  {label} {size} {up.dtype}: {shown}; chosen {choice}, memory allows {frames_per_pass(up, h, w)}")

    photo = imread(SHARED / "data" / "Set14" / "HR" / "baboon.png")
    h, w = (64, 96) if args.quick else (1080 // 4, 1920 // 4)  # x4 -> 1080p output
    n = 8 if args.quick else 48
    failed = False
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clip = make_pan_clip(tmp / "pan.mp4", photo, frames=n, width=w, height=h, step=2, crf=18)
        up = Upscaler(SHARED / "models" / MODELS["animevideov3"], device=device)
        print(f"\n2. overlap: {n} frames {w}x{h} -> x4, animevideov3, {up.dtype}")
        stats = upscale_video(up, clip, tmp / "out.mp4", show_progress=False)
        lr = frames_of(clip)
        batch = max(1, frames_per_pass(up, h, w))
        view = up.batched(batch)
        view.upscale_tensor(torch.rand(batch, 3, h, w))  # warm-up, as the video's first frames are
        sync()
        t0 = time.perf_counter()
        for i in range(0, len(lr), batch):
            x = torch.from_numpy(np.stack(lr[i : i + batch])).permute(0, 3, 1, 2).float().div(255)
            view.upscale_tensor(x).mul(255).round().byte().cpu()
        sync()
        network = time.perf_counter() - t0
        share = stats.model_seconds / stats.seconds
        print(f"  end to end {stats.fps:.2f} frames/s, network alone {len(lr) / network:.2f} frames/s: "
              f"{stats.fps * network / len(lr):.3f}x; network share of the wall time {share:.1%}")

        print("\n3. resume on the device")

        class Cancel(Exception):
            pass

        def cancel_at_half(done: int, total: int | None) -> None:
            if done >= n // 2:
                raise Cancel

        kw = dict(show_progress=False, part_seconds=(n // 6) / 24)  # 6 parts
        upscale_video(up, clip, tmp / "whole.mp4", **kw)
        with contextlib.suppress(Cancel):
            upscale_video(up, clip, tmp / "resumed.mp4", progress=cancel_at_half, **kw)
        resumed = upscale_video(up, clip, tmp / "resumed.mp4", **kw)
        a, b = frames_of(tmp / "whole.mp4"), frames_of(tmp / "resumed.mp4")
        same = len(a) == len(b) == n and all(np.array_equal(x, y) for x, y in zip(a, b))
        failed |= not same
        print(f"  resumed {resumed.resumed_frames} of {n} frames; output equal to an uninterrupted run: {same}")

        print("\n4. colour fix on the device")
        lh, lw = (64, 96) if args.quick else (540, 960)
        big = torch.rand(1, 3, lh, lw, device=device)
        out = torch.rand(1, 3, 4 * lh, 4 * lw, device=device)
        wavelet_color_fix(out, big)
        sync()
        t0 = time.perf_counter()
        wavelet_color_fix(out, big)
        sync()
        fix = time.perf_counter() - t0
        t0 = time.perf_counter()
        up.upscale_tensor(big.cpu())
        sync()
        net = time.perf_counter() - t0
        print(f"  wavelet fix of a {4 * lw}x{4 * lh} frame {1000 * fix:.1f} ms; the network for it {1000 * net:.1f} ms "
              f"({fix / net:.1%})")

        print("\n5. precision and flicker (the pan)")
        for precision in ("fp32", "auto"):
            u = Upscaler(SHARED / "models" / MODELS["animevideov3"], device=device, precision=precision,
                         color_fix="none")
            s = temporal_scores(lr, [u.upscale(f) for f in lr])
            print(f"  {precision} ({u.dtype}): warping error {s.warping_error:.3f}, "
                  f"flicker index {s.flicker_index:.3f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
