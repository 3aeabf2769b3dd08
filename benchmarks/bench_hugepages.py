"""Transparent huge pages for the network's activations: ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` vs not.

    .venv/bin/python benchmarks/bench_hugepages.py            # ~2 minutes on 2 idle cores
    .venv/bin/python benchmarks/bench_hugepages.py --size 480

Every activation of a super-resolution network at 4x the input size is hundreds of MB; glibc gives
blocks that large their own mmap and returns them after use, so each forward pass faults its memory in
again, 4 KB at a time (1.4 M page faults for one 480x480 input through RealESRGAN anime_6B). With the
glibc (>= 2.35) tunable and THP in ``madvise`` or ``always`` mode, those blocks get 2 MB pages. The
tunable is read at process start, so each setting runs in its own fresh process (alternating, best of
N): precision auto, whole image, real weights from ../shared/models, Set14 baboon.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT.parent / "shared" / "models" / "RealESRGAN_x4plus_anime_6B.pth"
PHOTO = ROOT.parent / "shared" / "data" / "Set14" / "HR" / "baboon.png"
TUNABLE = "glibc.malloc.hugetlb=1"

CHILD = """
import json, resource, sys, time
import numpy as np
from esrgan import load_model
from esrgan.data.image import imread
from esrgan.inference import Upscaler
size = int(sys.argv[1])
rng = np.random.default_rng(0)
img = imread(sys.argv[3])[:size, :size] if sys.argv[3] else rng.integers(0, 256, (size, size, 3), np.uint8)
up = Upscaler(load_model(sys.argv[2]), device="cpu")
up.upscale(img)  # warm-up
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
t = time.perf_counter()
up.upscale(img)
print(json.dumps({"s": time.perf_counter() - t, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}))
"""


def run(size: int, hugepages: bool) -> dict[str, float]:
    env = dict(os.environ)
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t and not t.startswith("glibc.malloc.hugetlb")]
    env["GLIBC_TUNABLES"] = ":".join(tunables + ([TUNABLE] if hugepages else []))
    photo = str(PHOTO) if PHOTO.is_file() else ""
    out = subprocess.run([sys.executable, "-c", CHILD, str(size), str(WEIGHTS), photo], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=320, help="square input size (default: 320)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from esrgan.utils.hardware import cpu_summary

    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    print(f"CPU: {cpu_summary()}")
    print(f"THP: {thp.read_text().strip() if thp.is_file() else 'unknown'}; glibc {os.confstr('CS_GNU_LIBC_VERSION')}")
    if not WEIGHTS.is_file():
        print(f"real weights missing: {WEIGHTS}")
        return 1
    best = {False: {"s": float("inf")}, True: {"s": float("inf")}}
    for r in range(args.repeats):
        for hugepages in (False, True) if r % 2 == 0 else (True, False):
            result = run(args.size, hugepages)
            if result["s"] < best[hugepages]["s"]:
                best[hugepages] = result
    plain, huge = best[False], best[True]
    print(f"{args.size}x{args.size}, anime_6B, precision auto, one forward pass, best of {args.repeats}:")
    print(f"  default malloc:   {plain['s']:.2f} s, {plain['faults'] / 1e6:.2f} M page faults")
    print(f"  {TUNABLE}: {huge['s']:.2f} s, {huge['faults'] / 1e6:.2f} M page faults "
          f"({100 * (huge['s'] / plain['s'] - 1):+.1f}% time)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
