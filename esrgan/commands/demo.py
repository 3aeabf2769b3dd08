"""``esrgan demo`` (``make demo``): the whole ESRGAN recipe, end to end, on a laptop CPU.

1. builds the demo data from images inside scikit-image (``datasets/demo``);
2. trains stage 1 (PSNR, L1) with ``configs/demo_psnr_x4.yml``;
3. trains stage 2 (GAN: VGG perceptual + RaGAN) with ``configs/demo_esrgan_x4.yml``, from stage 1;
4. tests bicubic, stage 1 and stage 2 on the held-out validation images;
5. sweeps the network interpolation between the two stages;
and prints the figures and where the results, plots and TensorBoard logs are.

The option files are the demo's recipe, sized for a 10-minute budget on 2 CPU cores
(``python train.py -opt configs/demo_psnr_x4.yml`` trains exactly what the demo trains).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger("esrgan.demo")

PSNR_CONFIG = "demo_psnr_x4.yml"
GAN_CONFIG = "demo_esrgan_x4.yml"

# A 16-feature, 1-block RRDBNet for the smoke run (both stages: stage 2 loads stage 1).
_NET = ["network_g.num_feat=16", "network_g.num_block=1", "network_g.num_grow_ch=8"]
# --quick: a smoke run of every step (used by the tests), not a result.
QUICK_OVERRIDES: dict[str, list[str]] = {
    "psnr": [*_NET, "train.total_iter=4", "train.scheduler.periods=[4]", "val.val_freq=4", "logger.print_freq=2",
             "logger.save_checkpoint_freq=4", "datasets.train.gt_size=32", "datasets.train.batch_size_per_gpu=2",
             "datasets.train.num_worker_per_gpu=0"],
    "gan": [*_NET, "train.total_iter=2", "train.scheduler.milestones=[1]", "val.val_freq=2", "logger.print_freq=1",
            "logger.save_checkpoint_freq=2", "datasets.train.batch_size_per_gpu=1",
            "datasets.train.num_worker_per_gpu=0", "train.perceptual_opt.layer_weights={conv1_2: 1}"],
}


def _config_dir() -> Path:
    """``configs/`` of the checkout (editable install) or of the current directory."""
    here = Path(__file__).resolve().parents[2] / "configs"
    if (here / PSNR_CONFIG).is_file():
        return here
    cwd = Path("configs")
    if (cwd / PSNR_CONFIG).is_file():
        return cwd
    raise FileNotFoundError(f"cannot find {PSNR_CONFIG}: run the demo from the repository root (configs/ is there)")


def _train(config: Path, overrides: list[str], root: Path) -> Path:
    from esrgan.options import load_options
    from esrgan.training.trainer import Trainer
    from esrgan.utils.folders import EXPERIMENTS_ROOT
    from esrgan.utils.logger import close_logger

    # The run goes under --root (experiments/<name> there); an older demo run is archived, not overwritten.
    name = load_options(config, overrides).name
    opt = load_options(config, [*overrides, f"path.experiments_root={root / EXPERIMENTS_ROOT / name}"])
    for ds in opt.datasets.values():
        for attr in ("dataroot_gt", "dataroot_lq"):
            value = getattr(ds, attr)
            if value and not Path(value).is_absolute():
                setattr(ds, attr, str(root / value))
    trainer = Trainer(opt)
    try:
        code = trainer.run()
    finally:
        close_logger("esrgan")
    if code != 0:
        raise SystemExit(f"demo: training {opt.name} stopped with exit code {code}")
    return Path(opt.path.experiments_root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="esrgan demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=".", help="where datasets/demo and experiments/ go (default: .)")
    parser.add_argument("--quick", action="store_true", help="a few iterations of every step (smoke test)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s")

    root = Path(args.root).resolve()
    if root.exists() and not root.is_dir():
        parser.error(f"--root {args.root}: is a file, expected a folder")
    configs = _config_dir()
    extra = QUICK_OVERRIDES if args.quick else {"psnr": [], "gan": []}
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    # 1. data
    from esrgan.data.demo_data import make_demo_data

    t0 = time.perf_counter()
    data = make_demo_data(root / "datasets" / "demo")
    timings["data"] = time.perf_counter() - t0

    # 2. stage 1 (PSNR)
    t0 = time.perf_counter()
    psnr_dir = _train(configs / PSNR_CONFIG, extra["psnr"], root)
    timings["stage 1 (PSNR)"] = time.perf_counter() - t0
    psnr_ckpt = psnr_dir / "models" / "net_g_latest.pth"

    # 3. stage 2 (GAN), initialised from stage 1's EMA generator
    t0 = time.perf_counter()
    gan_dir = _train(configs / GAN_CONFIG, [*extra["gan"], f"path.pretrain_network_g={psnr_ckpt}"], root)
    timings["stage 2 (GAN)"] = time.perf_counter() - t0
    gan_ckpt = gan_dir / "models" / "net_g_latest.pth"

    # 4. test on the held-out validation images: distortion (PSNR/SSIM) and perceptual quality (NIQE works
    # offline; LPIPS only when torchvision's AlexNet file is already cached: the demo downloads nothing)
    from esrgan.evaluation.tester import run_tests
    from esrgan.evaluation.testsets import TestSet
    from esrgan.metrics.lpips_metric import backbone_weights_path
    from esrgan.utils.folders import EXPERIMENTS_ROOT

    alexnet = backbone_weights_path("alex")
    metrics = ["psnr", "ssim", "niqe", *(["lpips"] if alexnet.is_file() else [])]

    exp = root / EXPERIMENTS_ROOT
    t0 = time.perf_counter()
    val = TestSet("demo_val", data / "val" / "HR", data / "val" / "LR_bicubic" / "X4")
    report = run_tests(
        [("bicubic", "bicubic"), ("stage1_PSNR", str(psnr_ckpt)), ("stage2_ESRGAN", str(gan_ckpt))],
        [val],
        4,
        "demo_test",
        experiments_root=exp,
        progress=False,
        metrics=metrics,
    )
    timings["test"] = time.perf_counter() - t0

    # 5. interpolation sweep between the stages
    from esrgan.evaluation.sweep import run_sweep

    t0 = time.perf_counter()
    sweep = run_sweep(
        str(psnr_ckpt), str(gan_ckpt), "0:1:0.5" if args.quick else "0:1:0.25", [val], 4, "demo_interp",
        experiments_root=exp, progress=False, metrics=metrics,
    )  # fmt: skip
    timings["interpolation"] = time.perf_counter() - t0
    from esrgan.report import write_sweep_report, write_test_report

    pages = [write_test_report(report.out_dir), write_sweep_report(sweep.out_dir)]
    total = time.perf_counter() - t_start

    bic = report.mean("demo_val", "bicubic")["psnr_y"]
    s1 = report.mean("demo_val", "stage1_PSNR")["psnr_y"]
    s2 = report.mean("demo_val", "stage2_ESRGAN")["psnr_y"]
    models = (("bicubic", "bicubic"), ("stage 1", "stage1_PSNR"), ("stage 2", "stage2_ESRGAN"))
    niqe_line = "NIQE (no reference, lower is better): " + ", ".join(
        f"{label} {report.mean('demo_val', m)['niqe']:.2f}" for label, m in models)
    if "lpips" in metrics:
        lpips_line = "LPIPS (to HR, lower is better): " + ", ".join(
            f"{label} {report.mean('demo_val', m)['lpips']:.4f}" for label, m in models)
    else:
        lpips_line = (f"LPIPS: not scored (torchvision's AlexNet weights are not cached; place {alexnet.name} "
                      f"at {alexnet})")
    lines = [
        "",
        report.format_table(),
        "",
        sweep.format_table(),
        "",
        f"Held-out validation PSNR-Y: bicubic {bic:.2f} dB, stage 1 (PSNR) {s1:.2f} dB "
        f"({s1 - bic:+.2f} dB), stage 2 (ESRGAN) {s2:.2f} dB",
        niqe_line,
        lpips_line,
        "Times: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()) + f"; total {total / 60:.1f} min",
        "",
        "Results:",
        f"  stage 1 checkpoints and validation images  {psnr_dir}/models, {psnr_dir}/visualization",
        f"  stage 2 checkpoints and validation images  {gan_dir}/models, {gan_dir}/visualization",
        f"  test table and comparison pictures          {exp / 'demo_test'}",
        f"  interpolation table, plots and strips       {exp / 'demo_interp'} "
        "(psnr_vs_alpha.png, perception_distortion.png)",
        f"  TensorBoard                                  tensorboard --logdir {exp}",
        f"  HTML reports (open in a browser)             {pages[0]}, {pages[1]}",
    ]
    print("\n".join(lines))
    if not args.quick and s1 <= bic:
        print("demo: the stage-1 model did not beat bicubic on the validation images", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
