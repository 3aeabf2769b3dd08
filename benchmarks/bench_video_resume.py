"""What resuming and sharing a video job cost and give: resume overhead, the parts' cost, 2-process speed-up.

    .venv/bin/python benchmarks/bench_video_resume.py            # animevideov3, 48 frames 160x120 (~10 min)
    .venv/bin/python benchmarks/bench_video_resume.py --quick    # 16 frames 64x48 (~2 minutes)

A pan over a Set14 photo (H.264, no sound) upscaled x4 with realesr-animevideov3 (../shared/models, or
$ESRGAN_SHARED) on the CPU in fp32, by ``esrgan video`` in fresh processes (as users run it):

- **resume overhead**: a job stopped at half its frames (SIGTERM: what a scheduler or a reboot sends) and
  run again to the end, both runs' time together, against one uninterrupted run (>1: the cost of being
  interrupted: the frames of the part that was cut, the decoding of the frames already done, checking the
  parts and starting a process again);
- **parts**: 2-second parts (the default) against one part for the whole clip, time and bytes (each part
  begins with a keyframe);
- **2 processes**: ``torchrun --nproc-per-node 2`` (1 thread each) against one process with 2 threads, same
  output (1.00x = no gain; 2 cores can give at most 2x).

Speed figures: run it on an idle machine. Prints the CPU.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic clips live with the tests

from synthetic_video import make_pan_clip  # noqa: E402

from esrgan.data.image import imread  # noqa: E402
from esrgan.utils.hardware import cpu_summary  # noqa: E402

SHARED = Path(os.environ.get("ESRGAN_SHARED", ROOT.parent / "shared"))
MODEL = SHARED / "models" / "realesr-animevideov3_x4.pth"


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}


def run(args: list[str], threads: int, cwd: Path, stop_after_parts: int | None = None) -> float:
    """Seconds of ``esrgan ARGS`` in a fresh process; with ``stop_after_parts``, SIGTERM once that many parts
    are committed (the process is then expected to stop with 143)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "esrgan", *args], env=_env(threads), cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if stop_after_parts is not None:
        out = Path(args[args.index("-o") + 1])
        folder = out.parent / f".{out.name}.parts"
        while proc.poll() is None and len(list(folder.glob("part-*.json"))) < stop_after_parts:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    expected = 143 if stop_after_parts is not None else 0
    if proc.returncode != expected:
        raise RuntimeError(f"esrgan {' '.join(args)}: exit {proc.returncode}\n{err[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--frames", type=int, default=48)
    args = p.parse_args()
    frames, w, h = (16, 64, 48) if args.quick else (args.frames, 160, 120)
    print(f"CPU: {cpu_summary()}; {frames} frames {w}x{h} at 24 fps -> x4, {MODEL.name}, fp32")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        photo = imread(SHARED / "data" / "Set14" / "HR" / "baboon.png")
        clip = make_pan_clip(tmp / "clip.mp4", photo[::2, ::2], frames=frames, width=w, height=h, step=2, crf=18)
        base = ["video", str(clip), "--model", str(MODEL), "--precision", "fp32"]
        part_seconds = 0.25 if args.quick else 0.5  # several parts even in a short clip
        parts = ["--part-seconds", str(part_seconds)]
        n_parts = -(-frames // max(1, round(part_seconds * 24)))

        whole = run([*base, "-o", str(tmp / "whole.mp4"), *parts], 2, tmp)
        first = run([*base, "-o", str(tmp / "resumed.mp4"), *parts], 2, tmp, stop_after_parts=n_parts // 2)
        second = run([*base, "-o", str(tmp / "resumed.mp4"), *parts], 2, tmp)
        print(f"resume overhead: uninterrupted {whole:.1f} s; stopped at half {first:.1f} s + resumed {second:.1f} s "
              f"= {first + second:.1f} s: {(first + second) / whole:.3f}x ({n_parts} parts of "
              f"{round(part_seconds * 24)} frames)")

        one_part = run([*base, "-o", str(tmp / "onepart.mp4"), "--part-seconds", "3600"], 2, tmp)
        default = run([*base, "-o", str(tmp / "default.mp4")], 2, tmp)
        size_parts = (tmp / "whole.mp4").stat().st_size
        size_default, size_one = (tmp / "default.mp4").stat().st_size, (tmp / "onepart.mp4").stat().st_size
        print(f"parts: default ({2.0:g} s) {default:.1f} s vs one part {one_part:.1f} s: {default / one_part:.3f}x "
              f"time; bytes: default {size_default / size_one:.3f}x, {part_seconds:g}-s parts "
              f"{size_parts / size_one:.3f}x of one part ({size_one} bytes)")

        t0 = time.perf_counter()
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                    "esrgan", *base, "-o", str(tmp / "two.mp4"), *parts]
        done = subprocess.run(torchrun, env=_env(1), cwd=tmp, capture_output=True, text=True)
        two = time.perf_counter() - t0
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        print(f"2 processes (1 thread each) {two:.1f} s vs 1 process (2 threads) {whole:.1f} s: "
              f"{whole / two:.2f}x speed-up")


if __name__ == "__main__":
    main()
