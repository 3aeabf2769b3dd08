"""Data pipeline speed: folder vs LMDB on the same generated sub-images, and the data wait in a training step.

Generates HR sub-images (480x480 crops of scikit-image photos, like DIV2K's) with their
MATLAB-bicubic x4 LR, stores them as a folder (PNG level 3, as ``extract-subimages``
writes) and as LMDBs (``create-lmdb``'s default: PNG level 1 with the Up filter; and
``--compress-level 0``, unfiltered), plus, for reference, an LMDB encoded as BasicSR's
``create_lmdb_for_div2k`` does (level 1, OpenCV's adaptive filters), then prints, in one run:

0. the PNG decode time alone of each encoding (bytes in memory);
1. random-access reads/s of one backend's images (warm page cache, and cold: our own files
   evicted with ``posix_fadvise(DONTNEED)`` before each pass; nothing else on the machine is touched);
2. training patches/s of ``PairedImageDataset`` (128 px GT crops, flips/rotations) through
   ``build_dataloader`` with 0, 1 and 2 workers;
3. the fraction of a small training step (RRDBNet forward/backward) spent waiting for data.

    .venv/bin/python benchmarks/bench_data.py [--images 48] [--batches 12] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from esrgan.data.image import imread, imwrite
from esrgan.data.lmdb_backend import LmdbReader
from esrgan.data.loader import build_dataloader, build_prefetcher
from esrgan.data.paired_dataset import PairedImageDataset
from esrgan.data.prepare import create_lmdb
from esrgan.imageops.imresize import imresize
from esrgan.options.datasets import DatasetOptions

SOURCES = ("astronaut", "hubble_deep_field", "retina", "immunohistochemistry")
BACKENDS = ("folder", "lmdb-l1", "lmdb-l0", "lmdb-bs")


def _generate(root: Path, n: int, size: int) -> None:
    import cv2
    from skimage import data

    rng = np.random.default_rng(0)
    photos = [np.ascontiguousarray(getattr(data, name)()) for name in SOURCES]
    for i in range(n):
        photo = photos[i % len(photos)]
        y, x = rng.integers(0, photo.shape[0] - size + 1), rng.integers(0, photo.shape[1] - size + 1)
        hr = photo[y : y + size, x : x + size]
        imwrite(root / "HR" / f"{i:04d}.png", hr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        imwrite(root / "LR" / f"{i:04d}.png", imresize(hr, 1 / 4), [cv2.IMWRITE_PNG_COMPRESSION, 3])


def _basicsr_lmdb(folder: Path, target: Path) -> None:
    """An LMDB encoded as BasicSR's scripts do (``cv2.imencode`` at level 1, adaptive filters)."""
    import cv2

    from esrgan.data.image import imencode
    from esrgan.data.lmdb_backend import estimate_map_size, write_lmdb

    files = sorted(folder.iterdir())
    items = []
    for path in files:
        img = imread(path)
        items.append((path.stem, imencode(img, ".png", [cv2.IMWRITE_PNG_COMPRESSION, 1]), (*img.shape[:2], 3)))
    write_lmdb(items, target, estimate_map_size(sum(imread(p).nbytes for p in files)), 1)


def _decode_only(root: Path, rounds: int = 5) -> dict[str, float]:
    """ms per HR image to decode the PNG bytes alone (in memory: no file system, no LMDB), per encoding."""
    import cv2

    blobs = {"folder": [np.fromfile(p, np.uint8) for p in sorted((root / "HR").iterdir())]}
    for name in BACKENDS[1:]:
        reader = LmdbReader(root / f"HR_{name[-2:]}.lmdb")
        blobs[name] = [np.frombuffer(reader.get(k), np.uint8) for k in sorted(reader.keys())]
    best = dict.fromkeys(blobs, float("inf"))
    for _ in range(rounds):  # interleaved, best of `rounds`
        for name, values in blobs.items():
            start = time.perf_counter()
            for v in values:
                cv2.imdecode(v, cv2.IMREAD_UNCHANGED)
            best[name] = min(best[name], (time.perf_counter() - start) / len(values))
    return {k: 1000 * v for k, v in best.items()}


def _evict(paths: list[Path]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _random_reads(root: Path, n_reads: int, cold: bool) -> dict[str, float]:
    files = sorted((root / "HR").iterdir())
    order = np.random.default_rng(1).integers(0, len(files), n_reads)
    best = dict.fromkeys(BACKENDS, float("inf"))
    # Backends interleaved, best of 3 each: a busy shared machine slows them alike.
    for _ in range(3):
        for name in BACKENDS:
            if name == "folder":
                _evict(files) if cold else None
                start = time.perf_counter()
                for i in order:
                    imread(files[i])
            else:
                path = root / f"HR_{name[-2:]}.lmdb"
                reader = LmdbReader(path)
                reader.close()
                _evict([path / "data.mdb"]) if cold else None
                start = time.perf_counter()
                for i in order:
                    reader.read_image(files[i].stem)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: n_reads / t for name, t in best.items()}


def _options(root: Path, backend: str, workers: int, batch: int) -> DatasetOptions:
    if backend == "folder":
        gt, lq, io = root / "HR", root / "LR", "disk"
    else:
        level = backend[-2:]
        gt, lq, io = root / f"HR_{level}.lmdb", root / f"LR_{level}.lmdb", "lmdb"
    return DatasetOptions(
        dataroot_gt=str(gt), dataroot_lq=str(lq), io_backend={"type": io}, gt_size=128,
        batch_size_per_gpu=batch, num_worker_per_gpu=workers, dataset_enlarge_ratio=100,
    )  # fmt: skip


def _patches_per_s(root: Path, backend: str, workers: int, batch: int, batches: int) -> float:
    opt = _options(root, backend, workers, batch)
    loader = build_dataloader(PairedImageDataset(opt), opt, seed=0)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - start
    del it
    return batches * batch / elapsed


def _wait_fraction(root: Path, backend: str, workers: int, batch: int, steps: int, device: str) -> tuple[float, float]:
    from esrgan.archs.rrdbnet import RRDBNet

    opt = _options(root, backend, workers, batch)
    if device.startswith("cuda"):
        opt.prefetch_mode = "cuda"
    model = RRDBNet(num_feat=16, num_block=1, num_grow_ch=8).to(device)
    optim = torch.optim.Adam(model.parameters(), 1e-4)
    prefetcher = build_prefetcher(build_dataloader(PairedImageDataset(opt), opt, seed=0), opt, device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    waited = total = 0.0
    for step in range(steps + 1):
        t0 = time.perf_counter()
        batch_data = prefetcher.next()
        sync()
        t1 = time.perf_counter()
        loss = torch.nn.functional.l1_loss(model(batch_data["lq"]), batch_data["gt"])
        optim.zero_grad()
        loss.backward()
        optim.step()
        sync()
        t2 = time.perf_counter()
        if step:  # step 0 includes worker start-up
            waited += t1 - t0
            total += t2 - t0
    return waited / total, total / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="HR sub-images to generate")
    parser.add_argument("--size", type=int, default=480, help="HR sub-image size")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=12, help="batches timed per loader configuration")
    parser.add_argument("--reads", type=int, default=150, help="random reads per backend")
    parser.add_argument("--steps", type=int, default=4, help="training steps timed for the data-wait fraction")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.threads:
        # On a busy machine torch's thread pool can make even img2tensor slow in the main process.
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench_data-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        _generate(root, args.images, args.size)
        for side in ("HR", "LR"):
            for level in (1, 0):
                create_lmdb(root / side, root / f"{side}_l{level}.lmdb", compress_level=level, workers=1)
            _basicsr_lmdb(root / side, root / f"{side}_bs.lmdb")
        sizes = {
            "folder (PNG 3)": sum(p.stat().st_size for p in (root / "HR").iterdir()),
            "lmdb-l1 (default)": (root / "HR_l1.lmdb" / "data.mdb").stat().st_size,
            "lmdb-l0": (root / "HR_l0.lmdb" / "data.mdb").stat().st_size,
            "lmdb-bs (BasicSR's)": (root / "HR_bs.lmdb" / "data.mdb").stat().st_size,
        }
        print(f"data: {args.images} HR {args.size}x{args.size} + LR x4, generated in {time.perf_counter() - t0:.1f} s;"
              f" HR bytes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))  # fmt: skip
        print(f"torch threads {torch.get_num_threads()}, CPUs {os.cpu_count()}, device {args.device}\n")

        d = _decode_only(root)
        print("0. PNG decode alone, ms per HR image (in memory)")
        print("   " + "".join(f"{k:>10}" for k in d) + f"{'folder/l1':>11}{'bs/l1':>8}")
        print("   " + "".join(f"{v:>10.2f}" for v in d.values())
              + f"{d['folder'] / d['lmdb-l1']:>11.2f}{d['lmdb-bs'] / d['lmdb-l1']:>8.2f}\n")  # fmt: skip

        print("1. random-access HR reads/s (decode included)")
        print(f"   {'cache':<6}{'folder':>10}{'lmdb-l1':>10}{'lmdb-l0':>10}{'lmdb-bs':>10}"
              f"{'l1/folder':>11}{'l0/folder':>11}{'bs/folder':>11}")  # fmt: skip
        for cold in (False, True):
            r = _random_reads(root, args.reads, cold)
            print(f"   {'cold' if cold else 'warm':<6}{r['folder']:>10.0f}{r['lmdb-l1']:>10.0f}{r['lmdb-l0']:>10.0f}"
                  f"{r['lmdb-bs']:>10.0f}{r['lmdb-l1'] / r['folder']:>11.2f}{r['lmdb-l0'] / r['folder']:>11.2f}"
                  f"{r['lmdb-bs'] / r['folder']:>11.2f}")  # fmt: skip

        print(f"\n2. training patches/s (GT 128, batch {args.batch}, {args.batches} batches after the first)")
        print(f"   {'workers':<8}{'folder':>10}{'lmdb-l1':>10}{'lmdb-l0':>10}{'l1/folder':>11}{'l0/folder':>11}")
        for workers in (0, 1, 2):
            # 0 workers: decoding in the main process, where the training step would run.
            r = dict.fromkeys(BACKENDS[:3], 0.0)
            for _ in range(2):  # interleaved, best of 2
                for b in r:
                    r[b] = max(r[b], _patches_per_s(root, b, workers, args.batch, args.batches))
            print(f"   {workers:<8}{r['folder']:>10.1f}{r['lmdb-l1']:>10.1f}{r['lmdb-l0']:>10.1f}"
                  f"{r['lmdb-l1'] / r['folder']:>11.2f}{r['lmdb-l0'] / r['folder']:>11.2f}")  # fmt: skip

        print(f"\n3. data wait in a training step (RRDBNet nf16 nb1, batch {args.batch}, {args.device})")
        for backend in ("folder", "lmdb-l1"):
            for workers in (0, 2):
                frac, step = _wait_fraction(root, backend, workers, args.batch, args.steps, args.device)
                print(f"   {backend:<8} workers {workers}: {100 * frac:5.1f} % of {1000 * step:7.1f} ms/step waiting")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
