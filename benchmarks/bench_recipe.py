"""Time to quality: the one-CPU-hour recipe (configs/recipe_x4_cpu_hour.yml) against BasicSR's own settings
for the same network (SRVGGNetCompact 64x16 PReLU) on the same data and the same wall-time budget (or
`--basicsr-minutes`), one run after the other. Writes PSNR-Y on Set5/Set14 against wall time as CSV and PNG;
prints the CPU.

BasicSR's settings: its PSNR-stage file for small networks (train_MSRResNet_x4.yml: Adam 2e-4 (0.9, 0.99),
gt_size 128, batch 16, cosine over 4 x 250k iterations, no EMA) and PyTorch's default initialisation, which
is what BasicSR's SRVGGNetCompact gets.

    python benchmarks/bench_recipe.py --root datasets --minutes 60     # the lead's run, on an idle machine
    python benchmarks/bench_recipe.py --root datasets --minutes 3      # smoke test
    python benchmarks/bench_recipe.py --root datasets --screen 3       # how the recipe's settings were chosen

``--screen N`` trains each candidate in SCREEN (network, patch, learning rate) for N minutes with the recipe's
other settings and EMA off (an EMA of 0.999 still holds about 40% of the initial weights after 900 steps, so a
short screen with it measures the average's lag, not the learning), and prints Set5/Set14 at the end.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import torch

RECIPE = Path(__file__).resolve().parent.parent / "configs" / "recipe_x4_cpu_hour.yml"
BASICSR = [
    "train.optim_g.lr=2e-4", "train.ema_decay=0", "datasets.train.gt_size=128",
    "train.scheduler={type: CosineAnnealingRestartLR, periods: [250000, 250000, 250000, 250000],"
    " restart_weights: [1, 1, 1, 1], eta_min: 1.0e-7}",
]


_SAFMN = "network_g={type: SAFMN, dim: 36, n_blocks: 8, ffn_scale: 2.0}"
SCREEN = {
    "SRVGGNetCompact, 64 px, lr 1e-3": ["datasets.train.gt_size=64", "train.optim_g.lr=1e-3"],
    "SRVGGNetCompact, 96 px, lr 1e-3": ["datasets.train.gt_size=96", "train.optim_g.lr=1e-3"],
    "SRVGGNetCompact, 64 px, lr 2e-3": ["datasets.train.gt_size=64", "train.optim_g.lr=2e-3"],
    "SAFMN, 64 px, lr 1e-3": [_SAFMN, "datasets.train.gt_size=64", "train.optim_g.lr=1e-3"],
}


def _pytorch_default_init(net: torch.nn.Module) -> None:
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.PReLU)):
            m.reset_parameters()


def run(label: str, overrides: list[str], root: Path, minutes: float, work: Path, val_freq: int) -> list[dict]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from esrgan.options import load_options
    from esrgan.training.trainer import Trainer

    opt = load_options(RECIPE, [
        f"name={label}", f"path.experiments_root={work / label}", f"train.time_budget_minutes={minutes}",
        f"val.val_freq={val_freq}", f"datasets.train.dataroot_gt={root / 'BSDS400' / 'HR'}",
        f"datasets.val.dataroot_gt={root / 'Set5' / 'HR'}", f"datasets.val_2.dataroot_gt={root / 'Set14' / 'HR'}",
        *overrides,
    ])
    trainer = Trainer(opt, interactive=False)
    if label == "basicsr":
        _pytorch_default_init(trainer.model.net_g)
    trainer.validate(0)  # both curves start at their initialisation, at 0 s
    trainer.run()
    acc = EventAccumulator(str(work / label / "tb_logger"), size_guidance={"scalars": 0})
    acc.Reload()
    rows: dict[int, dict] = {}
    for name in ("Set5", "Set14"):
        events = acc.Scalars(f"metrics/{name}/psnr")
        t0 = acc.Scalars("metrics/Set5/psnr")[0].wall_time
        for e in events:
            row = rows.setdefault(e.step, {"run": label, "iter": e.step, "seconds": round(e.wall_time - t0, 1)})
            row[name] = round(e.value, 3)
    return [rows[k] for k in sorted(rows)]


def main(argv: list[str] | None = None) -> int:
    from esrgan.utils.hardware import cpu_summary

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("datasets"), help="folder holding BSDS400/, Set5/, Set14/")
    p.add_argument("--minutes", type=float, default=60.0, help="wall-time budget of each run")
    p.add_argument("--basicsr-minutes", type=float, default=None, help="budget of BasicSR's run (default --minutes)")
    p.add_argument("--val-freq", type=int, default=1000, help="validate every this many iterations (the recipe's)")
    p.add_argument("--screen", type=float, default=None, metavar="N",
                   help="instead: train each candidate in SCREEN for N minutes, EMA off, and print where it ends")
    p.add_argument("--out", type=Path, default=Path("benchmarks"),
                   help="recipe_curves.csv and recipe_curves.png go here")
    args = p.parse_args(argv)
    print(f"CPU: {cpu_summary()}", flush=True)
    if args.screen:
        return screen(args.root, args.screen)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        budgets = {"recipe": args.minutes, "basicsr": args.basicsr_minutes or args.minutes}
        for label, overrides in (("recipe", []), ("basicsr", BASICSR)):
            rows += run(label, overrides, args.root, budgets[label], Path(tmp), args.val_freq)
            last = rows[-1]
            print(f"{label:8s} {last['iter']:6d} it {last['seconds']:7.0f} s  Set5 {last.get('Set5', 0):.2f}"
                  f"  Set14 {last.get('Set14', 0):.2f} dB", flush=True)
            write(rows, args.out)  # after each run: an hour's curve survives a failure in the next one
    print(f"wrote {args.out / 'recipe_curves.csv'} and {args.out / 'recipe_curves.png'}")
    return 0


def screen(root: Path, minutes: float) -> int:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, overrides) in enumerate(SCREEN.items()):
            last = run(f"screen{i}", [*overrides, "train.ema_decay=0"], root, minutes, Path(tmp), 10**9)[-1]
            results.append((label, last))
            print(f"{label:34s} {last['iter']:6d} it  Set5 {last['Set5']:.2f}  Set14 {last['Set14']:.2f} dB",
                  flush=True)
    print(f"\n| candidate ({minutes:g} min, EMA off) | iterations | Set5 | Set14 |\n|---|---:|---:|---:|")
    for label, last in results:
        print(f"| {label} | {last['iter']} | {last['Set5']:.2f} | {last['Set14']:.2f} |")
    return 0


def write(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "recipe_curves.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["run", "iter", "seconds", "Set5", "Set14"])
        w.writeheader()
        w.writerows(rows)
    plot(rows, out / "recipe_curves.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name, bicubic, fsrcnn in ((axes[0], "Set5", 28.42, 30.71), (axes[1], "Set14", 26.00, 27.59)):
        for label in ("recipe", "basicsr"):
            pts = [(r["seconds"] / 60, r[name]) for r in rows if r["run"] == label and name in r]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=label)
        ax.axhline(bicubic, ls=":", c="grey", label="bicubic")
        ax.axhline(fsrcnn, ls="--", c="grey", label="FSRCNN")
        ax.set(title=f"{name} PSNR-Y", xlabel="minutes", ylabel="dB")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
