"""``esrgan interp``: network interpolation between a PSNR-oriented and a GAN generator.

    esrgan interp --psnr A --gan B --alpha 0.8 -o out.pth
    esrgan interp --psnr A --gan B --sweep 0:1:0.1 --hr DIR [--lr DIR] --scale 4 --name N [--save-models]
        [--metrics psnr,ssim,niqe,lpips,dists,color_drift] [--pd-axes X,Y] [--select CRITERION]
    esrgan interp -opt configs/interp_sweep_x4.yml

A sweep's flags are overrides of the sweep option file (or of an empty one), as ``esrgan test``'s are.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from esrgan.commands.test import FlagOverrides, add_test_set_args, missing_flags
from esrgan.options.errors import OptionsError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="esrgan interp",
        description="theta = (1 - alpha) * theta_PSNR + alpha * theta_GAN. One alpha writes a checkpoint; "
        "--sweep scores every alpha on test sets (table, PSNR-vs-alpha plot, crop strips in experiments/<name>/).",
    )
    p.add_argument("-opt", "--opt", metavar="YML", help="sweep option file (configs/interp_sweep_x4.yml)")
    p.add_argument("--psnr", metavar="CKPT", help="PSNR-oriented generator (alpha 0): checkpoint path or zoo name")
    p.add_argument("--gan", metavar="CKPT", help="GAN generator (alpha 1): checkpoint path or zoo name")
    p.add_argument("--alpha", type=float, help="one alpha in [0, 1]; writes -o")
    p.add_argument("-o", "--output", metavar="FILE", help="interpolated checkpoint (.pth or .safetensors)")
    p.add_argument("--overwrite", action="store_true", help="replace -o FILE if it exists from before")
    p.add_argument("--sweep", metavar="A", help="alphas: start:stop:step (stop included, e.g. 0:1:0.1) or 0,0.5,1")
    add_test_set_args(p)
    p.add_argument("--scale", type=int, help="upscaling factor")
    p.add_argument("--name", help="experiment name (folder under experiments/)")
    p.add_argument("--experiments-root", default=None, metavar="DIR", help="default: experiments")
    p.add_argument("--save-models", action="store_true", help="also write the checkpoint of every alpha")
    p.add_argument("--strip-image", default=None, metavar="STEM", help="image shown in the strips (default: first)")
    p.add_argument("--metrics", default=None, metavar="LIST",
                   help="comma-separated, scored at every alpha: psnr, ssim, niqe, lpips, dists, color_drift (default "
                   "psnr,ssim,color_drift or the option file's); with niqe, lpips or dists a perception-distortion "
                   "plot is written too")
    p.add_argument("--pd-axes", action="append", default=None, metavar="X,Y",
                   help="a panel of the perception-distortion plot: two result columns, e.g. ssim_y,dists "
                   "(repeatable; default: psnr_y against each of niqe, lpips, dists scored)")
    p.add_argument("--select", default=None, metavar="CRITERION",
                   help="choose an alpha by a declared criterion, e.g. 'lowest lpips with psnr_y no more than 0.5 dB "
                   "below the PSNR model' (written in sweep.json and the report)")
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda if available)")
    p.add_argument("--tile", type=int, default=None, help="0 automatic (whole image if it fits), N: N-pixel tiles")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def _pd_axes(values: list[str] | None) -> list[tuple[str, str]] | None:
    if not values:
        return None
    pairs = []
    for v in values:
        parts = [p.strip() for p in v.split(",")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"--pd-axes {v!r}: expected two result columns X,Y (e.g. psnr_y,dists)")
        pairs.append((parts[0], parts[1]))
    return pairs


def main(argv: list[str] | None = None) -> int:
    from esrgan.evaluation.interpolation import interpolate_checkpoints
    from esrgan.evaluation.sweep import run_sweep
    from esrgan.evaluation.testsets import sets_from_options
    from esrgan.inference.upscaler import NonFiniteOutputError
    from esrgan.options.testing import test_options_from_dict
    from esrgan.utils.hardware import check_device

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.opt:
        if not args.psnr or not args.gan:
            print("esrgan interp: give --psnr and --gan (or -opt FILE)", file=sys.stderr)
            return 2
        if (args.alpha is None) == (args.sweep is None):
            print("esrgan interp: give exactly one of --alpha (with -o) or --sweep", file=sys.stderr)
            return 2
        if args.alpha is not None:
            if not args.output:
                print("esrgan interp: --alpha needs -o FILE for the interpolated checkpoint", file=sys.stderr)
                return 2
            try:
                target = Path(args.output)
                if target.suffix not in (".pth", ".safetensors"):
                    raise ValueError(f"-o {target}: expected a .pth or .safetensors file name")
                if target.exists() and not args.overwrite:
                    raise ValueError(f"-o {target}: exists from before; pass --overwrite to replace it")
                out = interpolate_checkpoints(args.psnr, args.gan, args.alpha, target)
            except (OSError, ValueError) as exc:
                print(f"esrgan interp: error: {exc}", file=sys.stderr)
                return 1
            print(f"wrote {out} (alpha={args.alpha:g})")
            return 0
        missing = missing_flags(args, "--hr", "--scale", "--name")
        if missing:
            print(f"esrgan interp: --sweep needs {', '.join(missing)}", file=sys.stderr)
            return 2
    try:
        given = FlagOverrides.of(args)
        for key, value, flag in (("interp.psnr", args.psnr, "--psnr"), ("interp.gan", args.gan, "--gan"),
                                 ("interp.alphas", args.sweep, "--sweep"),
                                 ("interp.strip_image", args.strip_image, "--strip-image"),
                                 ("interp.select", args.select, "--select")):
            if value is not None:
                given.set(key, value, flag)
        if args.save_models:
            given.set("interp.save_models", True, "--save-models")
        cfg = test_options_from_dict(given.raw, args.opt, require_interp=True, flags=given.flags)
        check_device(cfg.device)
        interp = cfg.interp
        assert interp is not None and interp.psnr and interp.gan  # required above
        report = run_sweep(
            interp.psnr, interp.gan, interp.alphas, sets_from_options(cfg), cfg.scale, cfg.name,
            experiments_root=cfg.experiments_root, save_models=interp.save_models, device=cfg.device,
            tile=cfg.val.tile, precision=cfg.val.precision, strip_image=interp.strip_image,
            save_images=cfg.val.save_img, progress=cfg.val.pbar, metrics=cfg.metric_names,
            pd_axes=_pd_axes(args.pd_axes), select=interp.select,
        )  # fmt: skip
    except (OptionsError, FileNotFoundError, IsADirectoryError, ValueError, NonFiniteOutputError) as exc:
        print(f"esrgan interp: error: {exc}", file=sys.stderr)
        return 1
    print(report.format_table())
    from esrgan.report import write_sweep_report

    report.files["report"] = write_sweep_report(report.out_dir)
    print("\nwritten: " + ", ".join(str(p) for p in report.files.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
