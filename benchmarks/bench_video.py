"""Video: ``esrgan video`` vs the usual notebook pipeline, and end-to-end time vs the network alone.

    .venv/bin/python benchmarks/bench_video.py            # a few minutes on 2 CPU cores
    .venv/bin/python benchmarks/bench_video.py --quick
    .venv/bin/python benchmarks/bench_video.py --real     # real weights, 640x360: ~15 minutes on 2 cores

``--real``: a 640x360 clip panned over a Set14 photo, through the real RealESRGAN anime_6B weights
(../shared/models): ``upscale_video`` at its defaults (frames per pass, tiles) vs the same frames one by
one through ``Upscaler.upscale``, in fp32 and at ``--precision auto`` where that differs, same run; and
the network's share of the video's own time (decode, conversions and encode are the rest), which does not
drift with the machine's speed between runs.

Notebook pipeline (what the issue describes): OpenCV extracts every frame to a PNG, each PNG is
upscaled in float64 numpy round trips, and cv2.VideoWriter (mp4v) glues the PNGs back, without sound.
Ours: PyAV decode -> batched network -> libx264 encode in one stream, audio copied.
Same clip, same network, same machine, measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from bench_inference import notebook_loop  # benchmarks/ is on sys.path when run as a script

from esrgan.archs import RRDBNet
from esrgan.inference import Upscaler
from esrgan.inference.video import frames_per_pass, upscale_video
from esrgan.utils.hardware import cpu_summary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the synthetic clips live with the tests
from synthetic_video import make_pan_clip, make_test_clip

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic clips the tests use too

REAL_WEIGHTS = ROOT.parent / "shared" / "models" / "RealESRGAN_x4plus_anime_6B.pth"
PHOTO = ROOT.parent / "shared" / "data" / "Set14" / "HR" / "baboon.png"

torch.set_grad_enabled(False)


def notebook_pipeline(model: torch.nn.Module, clip: Path, work: Path, scale: int) -> int:
    frames_dir, up_dir = work / "frames", work / "frames_up"
    frames_dir.mkdir()
    up_dir.mkdir()
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS)
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        cv2.imwrite(str(frames_dir / f"{n:06d}.png"), frame)
        n += 1
    cap.release()
    notebook_loop(model, sorted(frames_dir.glob("*.png")), up_dir)
    first = cv2.imread(str(up_dir / "000000_nb.png"))
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(work / "notebook.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for path in sorted(up_dir.glob("*.png")):
        writer.write(cv2.imread(str(path)))
    writer.release()
    return n


def count(path: Path) -> tuple[int, int]:
    """(video frames, audio packets) of a file, read back with PyAV."""
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        audio = sum(1 for p in c.demux(audio=0) if p.dts is not None) if c.streams.audio else 0
    return frames, audio


def photo() -> np.ndarray:
    """Set14 baboon (RGB), else scikit-image's astronaut."""
    if PHOTO.is_file():
        return cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    from skimage import data

    return data.astronaut()


def real_weights(args: argparse.Namespace) -> int:
    """``upscale_video`` at its defaults vs per-frame ``Upscaler.upscale``, real weights, per precision."""
    if not REAL_WEIGHTS.is_file():
        print(f"real weights missing: {REAL_WEIGHTS}")
        return 1
    from esrgan import load_model
    from esrgan.inference.upscaler import resolve_precision

    net = load_model(REAL_WEIGHTS)
    w, h = args.size
    precisions = ["fp32"]
    if resolve_precision("auto", torch.device("cpu")) != torch.float32:
        precisions.append("auto")
    print(f"CPU: {cpu_summary()}")
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_pan_clip(Path(tmp) / "clip.mp4", photo(), frames=args.frames, width=w, height=h)
        with av.open(str(clip)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        print(f"clip: {len(frames)} frames {w}x{h} panned over a photo; {REAL_WEIGHTS.name}; "
              f"{torch.get_num_threads()} threads")  # fmt: skip
        for prec in precisions:
            up = Upscaler(net, device="cpu", precision=prec)
            up.upscale(frames[0])  # warm-up
            per_frame = video = float("inf")
            network_share = 0.0
            for r in range(args.repeats):  # best of; the order alternates so that drift hits both alike
                for step in ("video", "per-frame") if r % 2 else ("per-frame", "video"):
                    t = time.perf_counter()
                    if step == "per-frame":
                        for f in frames:
                            up.upscale(f)
                        per_frame = min(per_frame, (time.perf_counter() - t) / len(frames))
                        continue
                    stats = upscale_video(up, clip, Path(tmp) / f"out_{prec}.mp4", show_progress=False)
                    if stats.seconds / stats.frames < video:
                        video, network_share = stats.seconds / stats.frames, stats.model_seconds / stats.seconds
            print(f"{prec:>5} ({up.dtype}): per-frame Upscaler {per_frame:6.2f} s/frame, esrgan video "
                  f"{video:6.2f} s/frame ({frames_per_pass(up, h, w)} frame(s) per pass): "
                  f"{100 * (video / per_frame - 1):+.1f}% (goal <= +10%); the network is "
                  f"{100 * network_share:.1f}% of the video's time", flush=True)  # fmt: skip
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--size", type=int, nargs=2, default=(64, 48), metavar=("W", "H"))
    p.add_argument("--blocks", type=int, default=2, help="RRDB blocks (num_feat 64) (default: 2)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--real", action="store_true", help="real weights, 640x360 frames: video defaults vs per frame")
    args = p.parse_args()
    if args.real:
        if args.size == (64, 48):
            args.size = (640, 360)
        args.frames = min(args.frames, 4)
        args.repeats = 1 if args.quick else args.repeats
        sys.exit(real_weights(args))
    if args.quick:
        args.frames, args.blocks, args.repeats = 12, 1, 1

    torch.manual_seed(0)
    net = RRDBNet(3, 3, num_feat=64, num_block=args.blocks, num_grow_ch=32, scale=4).eval()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        w, h = args.size
        clip = make_test_clip(work / "clip.mp4", frames=args.frames, width=w, height=h, fps=24, audio="aac")
        print(f"clip: {args.frames} frames {w}x{h} @ 24 fps + AAC; RRDBNet x4 num_feat 64 num_block {args.blocks}; "
              f"{torch.get_num_threads()} threads")  # fmt: skip
        up = Upscaler(net, device="cpu", batch_tiles=args.batch)

        # the network alone, on frames already decoded into memory
        with av.open(str(clip)) as c:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)
        up.upscale_tensor(x[: args.batch])  # warm-up

        def network_alone() -> None:
            for i in range(0, len(x), args.batch):
                up.upscale_tensor(x[i : i + args.batch])

        model_s = ours_s = nb_s = float("inf")
        for r in range(args.repeats):  # interleaved, so a busy moment on a shared machine hits all three alike
            t = time.perf_counter()
            network_alone()
            model_s = min(model_s, time.perf_counter() - t)
            stats = upscale_video(up, clip, work / "ours.mp4", batch=args.batch, show_progress=False)
            ours_s = min(ours_s, stats.seconds)
            run_dir = work / f"notebook{r}"
            run_dir.mkdir()
            t = time.perf_counter()
            n_nb = notebook_pipeline(net, clip, run_dir, 4)
            nb_s = min(nb_s, time.perf_counter() - t)

        ours_frames, ours_audio = count(work / "ours.mp4")
        nb_frames, nb_audio = count(work / "notebook0" / "notebook.mp4")
        _, in_audio = count(clip)
        print(f"network alone:     {len(x) / model_s:6.2f} frames/s")
        print(f"esrgan video:      {len(x) / ours_s:6.2f} frames/s end to end "
              f"({100 * (ours_s / model_s - 1):+.1f}% over the network alone; target <= +15%)")  # fmt: skip
        print(f"notebook pipeline: {n_nb / nb_s:6.2f} frames/s  -> esrgan video is {nb_s / ours_s:.2f}x faster")
        print(f"frames out: ours {ours_frames}, notebook {nb_frames} (input {len(x)}); "
              f"audio packets: ours {ours_audio}, notebook {nb_audio} (input {in_audio})")  # fmt: skip


if __name__ == "__main__":
    main()
