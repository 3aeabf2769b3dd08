"""OpenMP wait policy: one GAN training iteration with OMP_WAIT_POLICY unset, PASSIVE and ACTIVE.

The policy must be set before the OpenMP runtime starts, so each run is a fresh process (this script
re-runs itself with ``--child``). Same networks, losses and data as ``bench_train.py`` (small net,
batch 2, GT 128) with data-loader workers running, as in real training. Runs are interleaved
(unset, PASSIVE, ACTIVE, then the reverse order) and the best of each is kept.

    .venv/bin/python benchmarks/bench_omp.py            # a few minutes; run it on an IDLE machine
    .venv/bin/python benchmarks/bench_omp.py --quick    # 3 timed iterations per run, one round

The load average is printed before and after: on a machine shared with other jobs the result says
little about users' machines (spinning threads then lose their cores to other processes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ("unset", "PASSIVE", "ACTIVE")


def child(args: argparse.Namespace) -> int:
    # torch (and with it the OpenMP runtime, which reads OMP_WAIT_POLICY once, when it loads) before
    # bench_train, which sets PASSIVE for itself when the variable is unset.
    import torch  # noqa: F401

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_train import SMALL, options, summarize, time_ours

    from esrgan.data.demo_data import make_demo_data

    warmup = 2
    with tempfile.TemporaryDirectory() as tmp:
        data = make_demo_data(Path(tmp) / "demo")
        opt = options(data, Path(tmp) / "exp", SMALL, args.iters + warmup + 1, args.workers)
        s_per_it, data_share = summarize(*time_ours(opt), warmup)
    print(json.dumps({"s_per_it": s_per_it, "data_share": data_share}))
    return 0


def run_child(policy: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("OMP_WAIT_POLICY", None)
    if policy != "unset":
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, __file__, "--child", "--iters", str(args.iters), "--workers", str(args.workers)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 timed iterations per run, one round")
    p.add_argument("--iters", type=int, default=8, help="timed iterations per run (default 8)")
    p.add_argument("--workers", type=int, default=2, help="data-loader workers (default 2)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    if args.quick:
        args.iters = 3
    sys.path.insert(0, str(ROOT))
    from esrgan.utils.hardware import cpu_summary

    print(f"CPU: {cpu_summary()}")
    print(f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())} ({os.cpu_count()} logical CPUs)")
    rounds = [POLICIES] if args.quick else [POLICIES, POLICIES[::-1]]
    best: dict[str, dict] = {}
    for order in rounds:
        for policy in order:
            r = run_child(policy, args)
            print(f"  {policy:<8} {r['s_per_it']:.3f} s/it (data {r['data_share']:.1%})", flush=True)
            if policy not in best or r["s_per_it"] < best[policy]["s_per_it"]:
                best[policy] = r
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    base = best["unset"]["s_per_it"]
    print(f"\nGAN iteration (small net, batch 2, GT 128, {args.workers} data-loader workers), best of runs:")
    for policy in POLICIES:
        s = best[policy]["s_per_it"]
        print(f"  OMP_WAIT_POLICY={policy:<8} {s:.3f} s/it  time vs unset {s / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
