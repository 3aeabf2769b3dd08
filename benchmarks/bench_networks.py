"""One table of the networks this project trains: size, cost, speed, and what a fixed training time buys.

    python benchmarks/bench_networks.py                 # the configs/ networks at their published sizes
    python benchmarks/bench_networks.py --budget 600    # seconds of training per network (default 300)
    python benchmarks/bench_networks.py --quick         # tiny versions, 5 s budgets: a smoke test (~2 min)

Per network (x4; the generators of configs/rrdb_psnr_x4.yml, realesr-general's SRVGGNetCompact and the
spandrel templates configs/*_psnr_x4.yml):

- parameters, and GFLOPs per megapixel of input (torch's FLOP counter on a 64x64 input; 2 FLOPs per
  multiply-add; window attention's padding makes small inputs cost a little more per pixel);
- inference: milliseconds for a 128x128 input (512x512 output), fp32 and the default precision
  (``--precision auto``: bf16 on CPUs with native bf16, fp16 on GPUs), best of a few runs;
- one training step: forward, L1, backward and Adam on 8 LR crops of 32 pixels (GT 128), fp32;
- validation PSNR-Y (dB, 4-pixel border, the demo's 3 held-out images) after training each network
  for the same wall-clock budget on the demo data (datasets/demo, built when missing): L1, each
  network's published optimizer and learning rate (its template's ``optim_g``), batch 8, GT 128.

Times are also given as a ratio to RRDBNet's in the same run (the reference row), so tables from
different machines compare. Every run prints the CPU first. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import best_time  # noqa: E402

from esrgan.archs import build_network, pad_to_fit, scale_argument, size_requirements  # noqa: E402

SCALE = 4
TEMPLATES = ("span", "realplksr", "swinir_light", "dat_light", "omnisr", "safmn", "hat_s")
OURS = {
    "RRDBNet (ESRGAN)": ({"type": "RRDBNet", "num_feat": 64, "num_block": 23, "num_grow_ch": 32},
                         {"type": "Adam", "lr": 2e-4, "betas": [0.9, 0.99]}),
    "SRVGGNetCompact": ({"type": "SRVGGNetCompact", "num_feat": 64, "num_conv": 32, "act_type": "prelu"},
                        {"type": "Adam", "lr": 2e-4, "betas": [0.9, 0.99]}),
}
QUICK = {  # tiny versions for the smoke test
    "RRDBNet (ESRGAN)": {"type": "RRDBNet", "num_feat": 16, "num_block": 1, "num_grow_ch": 8},
    "SAFMN": {"type": "SAFMN", "dim": 8, "n_blocks": 1},
    "SwinIR-light": {"type": "SwinIR", "img_size": 16, "embed_dim": 12, "depths": [1], "num_heads": [2],
                     "window_size": 4, "mlp_ratio": 1.0, "upsampler": "pixelshuffledirect"},
}


@dataclasses.dataclass
class Row:
    name: str
    params: int = 0
    gflops_per_mp: float = 0.0
    ms_fp32: float = 0.0
    ms_default: float = 0.0
    step_s: float = 0.0
    psnr: float = float("nan")
    steps: int = 0


def networks(quick: bool) -> dict[str, tuple[dict, dict]]:
    """name -> (network_g spec, optim_g) at x4."""
    if quick:
        adam = {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99]}
        return {n: (spec, adam) for n, spec in QUICK.items()}
    out = dict(OURS)
    for key in TEMPLATES:
        cfg = yaml.safe_load((ROOT / "configs" / f"{key}_psnr_x4.yml").read_text())
        label = cfg["name"].removesuffix("_PSNR_x4").replace("_", "-")
        out[label] = (cfg["network_g"], cfg["train"]["optim_g"])
    return out


def build(spec: dict) -> torch.nn.Module:
    arg = scale_argument(spec["type"])
    return build_network({**spec, **({arg: SCALE} if arg else {})})


def gflops_per_megapixel(net: torch.nn.Module) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = pad_to_fit(torch.rand(1, 3, 64, 64), size_requirements(net))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net.eval()(x)
    return counter.get_total_flops() / (x.shape[-2] * x.shape[-1]) * 1e6 / 1e9


def inference_ms(net: torch.nn.Module, dtype: torch.dtype, size: int, repeats: int) -> float:
    net = net.eval().to(dtype)
    x = pad_to_fit(torch.rand(1, 3, size, size, dtype=dtype), size_requirements(net))
    with torch.inference_mode():
        seconds = best_time(lambda: net(x), repeats=repeats)
    net.float()
    return seconds * 1000


def _optimizer(net: torch.nn.Module, optim: dict) -> torch.optim.Optimizer:
    kwargs = {k: v for k, v in optim.items() if k != "type"}
    return getattr(torch.optim, optim["type"])(net.parameters(), **kwargs)


def train_step_s(net: torch.nn.Module, optim: dict, lr_size: int, repeats: int) -> float:
    net.train()
    opt = _optimizer(net, optim)
    x = torch.rand(8, 3, lr_size, lr_size)
    y = torch.rand(8, 3, lr_size * SCALE, lr_size * SCALE)

    def step() -> None:
        loss = F.l1_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return best_time(step, repeats=repeats)


def load_demo(root: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    from esrgan.data.demo_data import make_demo_data
    from esrgan.data.image import imread

    make_demo_data(root)
    hr = sorted((root / "train" / "HR").glob("*.png"))
    train_hr = [imread(p) for p in hr]
    train_lr = [imread(root / "train" / "LR_bicubic" / "X4" / f"{p.stem}x4.png") for p in hr]
    val = [(imread(p), imread(root / "val" / "LR_bicubic" / "X4" / f"{p.stem}x4.png"))
           for p in sorted((root / "val" / "HR").glob("*.png"))]
    return train_hr, train_lr, val


def train_for(net: torch.nn.Module, optim: dict, data: tuple, budget: float, lr_size: int, seed: int = 0) -> int:
    """Train ``net`` with L1 on random aligned crops of the demo data for ``budget`` seconds; steps done."""
    train_hr, train_lr, _ = data
    rng = np.random.default_rng(seed)
    opt = _optimizer(net, optim)
    net.train()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        lrs, hrs = [], []
        for _ in range(8):
            i = int(rng.integers(len(train_lr)))
            y, x = (int(v) for v in rng.integers(0, train_lr[i].shape[0] - lr_size + 1, 2))
            lrs.append(train_lr[i][y : y + lr_size, x : x + lr_size])
            hrs.append(train_hr[i][y * SCALE : (y + lr_size) * SCALE, x * SCALE : (x + lr_size) * SCALE])
        lq = torch.from_numpy(np.stack(lrs)).permute(0, 3, 1, 2).float() / 255
        gt = torch.from_numpy(np.stack(hrs)).permute(0, 3, 1, 2).float() / 255
        loss = F.l1_loss(net(lq), gt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    return steps


def validation_psnr(net: torch.nn.Module, data: tuple) -> float:
    from esrgan.metrics import psnr

    net.eval()
    scores = []
    for hr, lr in data[2]:
        x = torch.from_numpy(lr).permute(2, 0, 1).float()[None] / 255
        with torch.inference_mode():
            out = net(pad_to_fit(x, size_requirements(net)))[..., : hr.shape[0], : hr.shape[1]]
        sr = out[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
        scores.append(psnr(sr, hr, crop_border=SCALE, y_channel=True))
    return float(np.mean(scores))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny networks, 5 s budgets: a smoke test")
    p.add_argument("--budget", type=float, default=None, help="training seconds per network (default 300; quick 5)")
    p.add_argument("--only", default=None, help="comma-separated row names (default: all)")
    p.add_argument("--demo", default=str(ROOT / "datasets" / "demo"), help="the demo data folder (built if missing)")
    args = p.parse_args()

    from esrgan.inference.upscaler import resolve_precision
    from esrgan.utils.hardware import cpu_summary

    print(f"CPU: {cpu_summary()}")
    default = resolve_precision("auto", torch.device("cpu"))
    budget = args.budget if args.budget is not None else (5.0 if args.quick else 300.0)
    repeats, size = (2, 32) if args.quick else (3, 128)
    nets = networks(args.quick)
    if args.only:
        nets = {k: v for k, v in nets.items() if k in args.only.split(",")}
    data = load_demo(Path(args.demo))
    rows = []
    for name, (spec, optim) in nets.items():
        torch.manual_seed(0)
        net = build(spec)
        row = Row(name, params=sum(p.numel() for p in net.parameters()))
        row.gflops_per_mp = gflops_per_megapixel(net)
        row.ms_fp32 = inference_ms(net, torch.float32, size, repeats)
        row.ms_default = row.ms_fp32 if default == torch.float32 else inference_ms(net, default, size, repeats)
        row.step_s = train_step_s(net, optim, 32, repeats)
        torch.manual_seed(0)
        net = build(spec)  # a fresh network for the training budget
        row.steps = train_for(net, optim, data, budget, lr_size=32)
        row.psnr = validation_psnr(net, data)
        rows.append(row)
        print(f"  {name}: done ({row.steps} steps in {budget:g} s)", flush=True)

    ref = rows[0]
    dname = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[default]
    print(f"\nx{SCALE}; inference on a {size}x{size} input; training step: 8 x {32}x{32} LR crops; "
          f"PSNR-Y on the demo validation set after {budget:g} s of training (times relative to {ref.name})")
    head = (f"{'network':<18} {'params':>8} {'GFLOPs/MP':>10} {'ms fp32':>9} {'ms ' + dname:>9} {'x ref':>6} "
            f"{'s/step':>7} {'x ref':>6} {'steps':>6} {'PSNR-Y':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.name:<18} {r.params / 1e6:>7.2f}M {r.gflops_per_mp:>10.1f} {r.ms_fp32:>9.1f} {r.ms_default:>9.1f} "
              f"{r.ms_default / ref.ms_default:>6.2f} {r.step_s:>7.3f} {r.step_s / ref.step_s:>6.2f} {r.steps:>6d} "
              f"{r.psnr:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
