"""``esrgan test`` / ``python test.py``: PSNR/SSIM (NIQE, LPIPS) tables, SR images and comparison pictures.

    esrgan test --model M [--model M2 ...] --scale S --hr DIR [--lr DIR] [--name N] [--metrics psnr,ssim,niqe,lpips]
    esrgan test -opt configs/test_esrgan_x4.yml
    esrgan test --model M --scale S --video IN [--video-hr HR]     # a video: temporal stability, colour drift
"""

from __future__ import annotations

import argparse
import logging
import sys

from esrgan.evaluation.testsets import sets_from_folders, sets_from_options
from esrgan.options.errors import OptionsError
from esrgan.options.testing import load_test_options

logger = logging.getLogger("esrgan.evaluation")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="esrgan test",
        description="Score models on test sets: PSNR/SSIM on Y and RGB (MATLAB conventions), written to "
        "experiments/<name>/results.json and results.csv with SR images and comparison pictures.",
    )
    p.add_argument("-opt", "--opt", metavar="YML", help="test option file (configs/test_*.yml); other flags override")
    p.add_argument("--model", action="append", default=[], metavar="M",
                   help="checkpoint path, zoo name or 'bicubic'; LABEL=PATH names the column; repeatable")
    p.add_argument("--scale", type=int, help="upscaling factor (HR is mod-cropped to it; its border is not scored)")
    p.add_argument("--hr", action="append", default=[], metavar="DIR", help="HR folder of a test set; repeatable")
    p.add_argument("--lr", action="append", default=[], metavar="DIR",
                   help="LR folder paired with the --hr of the same position (omit: MATLAB bicubic LR on the fly)")
    p.add_argument("--filename-tmpl", default=None, metavar="T",
                   help="LR name from the HR stem, e.g. '{}x4' (default: tries '{}' and '{}x<scale>')")
    p.add_argument("--name", help="experiment name (folder under experiments/)")
    p.add_argument("--experiments-root", default=None, metavar="DIR", help="default: experiments")
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda if available)")
    p.add_argument("--tile", type=int, default=None,
                   help="0 automatic (whole image when it fits in half the free memory, else tiles), N: N-pixel "
                        "tiles (default 0)")
    p.add_argument("--precision", default=None, choices=("fp32", "fp16", "bf16", "auto"),
                   help="network precision (default fp32: scores are not affected by half-precision rounding)")
    p.add_argument("--metrics", default=None, metavar="LIST",
                   help="comma-separated: psnr, ssim (higher is better), niqe, lpips (lower is better); "
                   "default psnr,ssim or the option file's metrics. LPIPS needs torchvision's AlexNet weights")
    p.add_argument("--video", metavar="IN",
                   help="score on a video (file or folder of frames): warping error, flicker index, colour drift "
                        "(esrgan.evaluation.video_test)")
    p.add_argument("--video-hr", metavar="HR", help="the video's HR (file or folder of frames): adds PSNR/SSIM; "
                   "alone, the input is made from it with MATLAB bicubic")
    p.add_argument("--no-save-img", action="store_true", help="do not write SR images")
    p.add_argument("--no-compare", action="store_true", help="do not write comparison pictures")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def _model_spec(text: str) -> str | tuple[str, str]:
    label, sep, spec = text.partition("=")
    if sep and label and "/" not in label and "\\" not in label:
        return (label, spec)
    return text


def main(argv: list[str] | None = None) -> int:
    from esrgan.evaluation.tester import run_tests
    from esrgan.metrics import parse_metric_list

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.video or args.video_hr:
        return _video_test(args)
    try:
        if args.opt:
            cfg = load_test_options(args.opt)
            models = [_model_spec(m) for m in args.model] or cfg.models_to_test
            scale = args.scale or cfg.scale
            sets = sets_from_folders(args.hr, args.lr, args.filename_tmpl) if args.hr else sets_from_options(cfg)
            name = args.name or cfg.name
            quiet = args.quiet or not cfg.val.pbar
            extra = dict(network_g=cfg.network_g, strict_load_g=cfg.path.strict_load_g,
                         param_key_g=cfg.path.param_key_g, experiments_root=cfg.experiments_root,
                         save_images=cfg.val.save_img and not args.no_save_img,
                         comparisons=cfg.val.comparisons and not args.no_compare,
                         device=args.device or cfg.device,
                         tile=cfg.val.tile if args.tile is None else args.tile,
                         precision=args.precision or cfg.val.precision)
        else:
            given = (("--model", args.model), ("--scale", args.scale), ("--hr", args.hr))
            missing = [flag for flag, v in given if not v]
            if missing:
                print(f"esrgan test: missing {', '.join(missing)} (or give -opt FILE)", file=sys.stderr)
                return 2
            models = [_model_spec(m) for m in args.model]
            scale = args.scale
            quiet = args.quiet
            sets = sets_from_folders(args.hr, args.lr, args.filename_tmpl)
            name = args.name or f"test_{_label(models[0])}_x{scale}"
            extra = dict(save_images=not args.no_save_img, comparisons=not args.no_compare, device=args.device,
                         tile=args.tile or 0, precision=args.precision or "fp32",
                         experiments_root=args.experiments_root or "experiments")
        if args.experiments_root:
            extra["experiments_root"] = args.experiments_root
        extra["metrics"] = parse_metric_list(args.metrics) if args.metrics else (cfg.metric_names if args.opt else
                                                                                  ["psnr", "ssim"])
        report = run_tests(models, sets, scale, name, progress=not quiet, **extra)
    except (OptionsError, FileNotFoundError, IsADirectoryError, ValueError) as exc:
        print(f"esrgan test: error: {exc}", file=sys.stderr)
        return 1
    print(report.format_table())
    print(f"\nresults: {report.out_dir / 'results.json'} and results.csv; images under {report.out_dir}/")
    from esrgan.report import write_test_report

    print(f"report: {write_test_report(report.out_dir)} (open it in a browser)")
    return 0


def _video_test(args: argparse.Namespace) -> int:
    from esrgan.evaluation.video_test import run_video_test
    from esrgan.report.video_page import write_video_report

    missing = [flag for flag, v in (("--model", args.model), ("--scale", args.scale)) if not v]
    if missing or args.opt:
        print(f"esrgan test --video: {'missing ' + ', '.join(missing) if missing else '-opt is for image sets'}",
              file=sys.stderr)
        return 2
    models = [_model_spec(m) for m in args.model]
    name = args.name or f"test_video_{_label(models[0])}_x{args.scale}"
    try:
        report = run_video_test(models, args.video, args.video_hr, args.scale, name,
                                experiments_root=args.experiments_root or "experiments", device=args.device,
                                tile=args.tile or 0, precision=args.precision or "fp32", progress=not args.quiet)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"esrgan test: error: {exc}", file=sys.stderr)
        return 1
    print(report.format_table())
    print(f"\nresults: {report.out_dir / 'results.json'}; report: {write_video_report(report.out_dir)}")
    return 0


def _label(spec: str | tuple[str, str]) -> str:
    from esrgan.evaluation.tested_models import default_label

    return spec[0] if isinstance(spec, tuple) else default_label(spec)


if __name__ == "__main__":
    sys.exit(main())
