"""Temporal stability of the shipped models and of the project's own sources of flicker, with real weights.

    .venv/bin/python benchmarks/bench_temporal.py            # both models, all settings (~20 min on 2 cores)
    .venv/bin/python benchmarks/bench_temporal.py --quick    # the compact model, 6 small frames (~1 minute)

Two clips made from a Set14 photo (../shared/data, or $ESRGAN_SHARED/data) and encoded with H.264 CRF 18, as
a video a user has: a slow pan (2 px a frame) and a still shot with mild sensor noise (sigma 3 levels, new each
frame; CRF 12: what a network may turn into boiling texture). Each setting upscales every frame; the scores are
``esrgan.metrics.temporal``'s warping error and flicker index (levels of 255; the flicker index is what the
upscaler adds over the bicubic input's own change) and ``esrgan.metrics.color_drift``. Settings:

- the shipped models (anime_6B RRDBNet, animevideov3 compact; ../shared/models), fp32, whole frames;
- the project's sources of flicker: a tile layout that changes between frames (64- and 40-pixel tiles
  alternating: 3x2 and 4x3 windows on 160x120, as per-frame tiles "from free memory" did before ``esrgan
  video`` fixed one layout per video) against one layout, each at pad 10 (other tools' default) and 48
  (ours); bf16 (``--precision auto`` on CPUs with native bf16); the wavelet colour fix (the default).

A quality figure, not a speed one: a busy machine gives the same numbers. Prints the CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from esrgan.data.image import imread  # noqa: E402
from esrgan.inference import Upscaler  # noqa: E402
from esrgan.metrics.color_drift import color_drift  # noqa: E402
from esrgan.metrics.temporal import TemporalMeter  # noqa: E402
from esrgan.utils.hardware import cpu_summary  # noqa: E402

SHARED = Path(os.environ.get("ESRGAN_SHARED", ROOT.parent / "shared"))
WEIGHTS = {"anime_6B": "RealESRGAN_x4plus_anime_6B.pth", "animevideov3": "realesr-animevideov3_x4.pth"}


def write_clip(path: Path, frames: list[np.ndarray], crf: int = 18) -> list[np.ndarray]:
    """Encode ``frames`` with H.264 and return them as decoded (what a user's video holds)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=Fraction(24), options={"crf": str(crf)})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            frame.pts = i
            out.mux(s.encode(frame))
        out.mux(s.encode())
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def clips(n: int, w: int, h: int, tmp: Path) -> dict[str, list[np.ndarray]]:
    photo = imread(SHARED / "data" / "Set14" / "HR" / "baboon.png")
    photo = photo[:, :, :3] if photo.ndim == 3 else np.repeat(photo[:, :, None], 3, axis=2)
    small = photo[::2, ::2]  # the photo at about the LR scale, so the pan moves real texture
    pan = [small[10 : 10 + h, 2 * i : 2 * i + w] for i in range(n)]
    rng = np.random.default_rng(0)
    still = [np.clip(small[10 : 10 + h, :w] + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8) for _ in range(n)]
    # CRF 12 for the still: at 18 x264 drops noise this faint and repeats the first frame
    return {"pan": write_clip(tmp / "pan.mp4", pan), "still+noise": write_clip(tmp / "still.mp4", still, crf=12)}


def score(frames: list[np.ndarray], upscale) -> tuple[float, float, float]:
    meter = TemporalMeter()
    drift = []
    for i, lr in enumerate(frames):
        out = upscale(i, lr)
        meter.add(lr, out)
        drift.append(color_drift(out, lr))
    s = meter.scores()
    return s.warping_error, s.flicker_index, float(np.mean(drift))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--frames", type=int, default=8)
    args = p.parse_args()
    torch.set_grad_enabled(False)
    n, w, h = (6, 96, 64) if args.quick else (args.frames, 160, 120)
    print(f"CPU: {cpu_summary()}; {n} frames of {w}x{h} -> x4")
    with tempfile.TemporaryDirectory() as tmp:
        videos = clips(n, w, h, Path(tmp))
    models = {"animevideov3": WEIGHTS["animevideov3"]} if args.quick else WEIGHTS
    print(f"{'model':<13} {'setting':<34} {'clip':<12} {'warping':>8} {'flicker':>8} {'drift':>6}")
    for label, file in models.items():
        for setting, fn in settings_for(SHARED / "models" / file, args.quick).items():
            for clip, frames in videos.items():
                we, fi, dr = score(frames, fn)
                print(f"{label:<13} {setting:<34} {clip:<12} {we:>8.3f} {fi:>8.3f} {dr:>6.3f}", flush=True)


def settings_for(path: Path, quick: bool) -> dict[str, Callable[[int, np.ndarray], np.ndarray]]:
    """Setting -> (frame index, LR frame) -> output."""

    def make(**kw: object) -> Upscaler:
        return Upscaler(path, device="cpu", **{"precision": "fp32", "color_fix": "none", **kw})

    def fixed(up: Upscaler) -> Callable[[int, np.ndarray], np.ndarray]:
        return lambda i, x: up.upscale(x)

    def alternating(a: Upscaler, b: Upscaler) -> Callable[[int, np.ndarray], np.ndarray]:
        return lambda i, x: (a if i % 2 else b).upscale(x)

    out = {"fp32, whole frames": fixed(make()), "fp32, wavelet colour fix": fixed(make(color_fix="wavelet"))}
    for pad in (10, 48):
        a, b = make(tile=64, tile_pad=pad), make(tile=40, tile_pad=pad)
        out[f"tiles 64, pad {pad}, one layout"] = fixed(a)
        out[f"tiles 64/40 alternating, pad {pad}"] = alternating(a, b)
    if not quick:
        out["bf16, whole frames"] = fixed(make(precision="bf16"))
    return out


if __name__ == "__main__":
    main()
