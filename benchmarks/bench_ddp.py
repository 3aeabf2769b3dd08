"""Distributed scaling on the CPU: iterations/s with 1 and 2 processes (torchrun, gloo), and the communication share.

    python benchmarks/bench_ddp.py [--iters 10] [--feat 32 --blocks 2 --batch 4 --gt 64]

Each process runs our SRModel step (RRDBNet, L1, EMA, Adam) on a fixed in-memory batch, so
data loading is left out and the figure is the training step plus gradient all-reduce.
Every process gets ``cores / N`` threads, so N processes share the same CPU as one.
Communication share = 1 - (time per iteration without gradient sync, DDP's ``no_sync``) /
(time per iteration with it), measured in the same job.

Gradient accumulation (``--accumulate K``, default 4): one optimizer step over K micro-batches as the
trainer runs it (DDP's all-reduce on the last micro-batch only, ``no_sync`` for the others) against
the same step reducing every micro-batch; the ratio is the time the trainer saves per step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(args: argparse.Namespace) -> None:
    import contextlib
    import statistics

    import torch

    from esrgan.options import options_from_dict
    from esrgan.training.dist import init_dist
    from esrgan.training.models import SRModel
    from esrgan.training.preflight import pick_device

    info = init_dist("pytorch")
    torch.set_num_threads(max(1, args.threads))
    raw = {
        "name": "bench_ddp",
        "model_type": "SRModel",
        "scale": 4,
        "num_gpu": "auto",
        "manual_seed": 0,
        # never read: the step runs on in-memory batches (the loader checks its folders, the options do not)
        "datasets": {"train": {"name": "none", "dataroot_gt": "-", "dataroot_lq": "-", "gt_size": args.gt}},
        "network_g": {"type": "RRDBNet", "num_feat": args.feat, "num_block": args.blocks, "num_grow_ch": 32},
        "path": {"experiments_root": str(Path(args.out) / "exp")},
        "train": {
            "ema_decay": 0.999,
            "optim_g": {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99]},
            "total_iter": 1,
            "pixel_opt": {"type": "L1Loss"},
        },
    }
    opt = options_from_dict(raw)
    device = pick_device(opt.num_gpu, info)
    model = SRModel(opt, device, info)
    g = torch.Generator().manual_seed(info.rank)
    lq = torch.rand(args.batch, 3, args.gt // 4, args.gt // 4, generator=g).to(device)
    gt = torch.rand(args.batch, 3, args.gt, args.gt, generator=g).to(device)

    def timed(n: int, sync: bool) -> float:
        times = []
        ctx = contextlib.nullcontext if sync else model.net_g_train.no_sync
        for i in range(n):
            t0 = time.perf_counter()
            with ctx():
                model.optimize_parameters(lq, gt, i + 1)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def timed_steps(n: int, skip_sync: bool) -> float:
        """One optimizer step over ``args.accumulate`` micro-batches: as the trainer runs it, or reducing each."""
        if not skip_sync:
            model._no_sync = lambda net, last: contextlib.nullcontext()  # type: ignore[method-assign]
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            model.optimize_parameters([lq] * args.accumulate, [gt] * args.accumulate, i + 1)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        if not skip_sync:
            del model._no_sync  # back to the class's method
        return statistics.median(times)

    timed(2, True)  # warm-up
    with_sync = timed(args.iters, True)
    without = timed(args.iters, False)
    acc_trainer = timed_steps(args.iters, True)
    acc_every = timed_steps(args.iters, False)
    if info.rank == 0:
        Path(args.out, f"result_{info.world_size}.json").write_text(json.dumps({
            "world_size": info.world_size, "sync": with_sync, "no_sync": without,
            "acc_trainer": acc_trainer, "acc_every": acc_every,
        }))
    torch.distributed.destroy_process_group()


def run(nproc: int, args: argparse.Namespace, out: str) -> dict:
    cores = os.cpu_count() or 1
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
        __file__, "--child", "--out", out, "--threads", str(max(1, cores // nproc)), "--iters", str(args.iters),
        "--feat", str(args.feat), "--blocks", str(args.blocks), "--batch", str(args.batch), "--gt", str(args.gt),
        "--accumulate", str(args.accumulate),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, cores // nproc)), "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    return json.loads(Path(out, f"result_{nproc}.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per phase (default 10)")
    parser.add_argument("--feat", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4, help="batch per process (default 4)")
    parser.add_argument("--gt", type=int, default=64, help="GT patch size (default 64)")
    parser.add_argument("--procs", default="1,2", help="process counts (default 1,2)")
    parser.add_argument("--accumulate", type=int, default=4, help="micro-batches per step (default 4)")
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0

    print(f"CPU cores: {os.cpu_count()}; RRDBNet {args.feat}f x {args.blocks} blocks, batch {args.batch} per "
          f"process, GT {args.gt}; gloo")
    results = []
    with tempfile.TemporaryDirectory() as out:
        for n in (int(x) for x in args.procs.split(",")):
            try:
                results.append(run(n, args, out))
            except subprocess.CalledProcessError as exc:
                print(f"{n} processes failed:\n{exc.stderr[-3000:]}", file=sys.stderr)
                return 1
    base = results[0]
    base_rate = args.batch * base["world_size"] / base["sync"]
    print(f"{'procs':>5} {'s/it':>7} {'it/s':>6} {'samples/s':>9} {'scaling':>7} {'comm share':>10}")
    for r in results:
        rate = args.batch * r["world_size"] / r["sync"]
        comm = max(0.0, 1 - r["no_sync"] / r["sync"])
        print(f"{r['world_size']:>5} {r['sync']:7.3f} {1 / r['sync']:6.2f} {rate:9.1f} {rate / base_rate:7.2f} "
              f"{comm:10.1%}")
    print("it/s: per process (each process does one iteration per step); samples/s = global batch x it/s; "
          "scaling = samples/s relative to the first row")
    print(f"\ngradient accumulation, {args.accumulate} micro-batches per step:")
    print(f"{'procs':>5} {'s/step (no_sync)':>16} {'s/step (reduce each)':>20} {'saved':>6}")
    for r in results:
        print(f"{r['world_size']:>5} {r['acc_trainer']:16.3f} {r['acc_every']:20.3f} "
              f"{1 - r['acc_trainer'] / r['acc_every']:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
