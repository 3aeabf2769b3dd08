"""``esrgan test`` / ``python test.py``: PSNR/SSIM (NIQE, LPIPS) tables, SR images and comparison pictures.

    esrgan test --model M [--model M2 ...] --scale S --hr DIR [--lr DIR] [--name N] [--metrics psnr,ssim,dists]
    esrgan test -opt configs/test_esrgan_x4.yml
    esrgan test --model M --scale S --video IN [--video-hr HR]     # a video: temporal stability, colour drift

The flags are overrides of the test option file (or of an empty one): both end in the one typed
:class:`~esrgan.options.testing.TestOptions`, whose defaults are the only ones. A video test takes flags only.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from esrgan.options.errors import OptionsError
from esrgan.options.testing import SCORING_PRECISION

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
    add_test_set_args(p)
    p.add_argument("--name", help="experiment name (folder under experiments/)")
    p.add_argument("--experiments-root", default=None, metavar="DIR", help="default: experiments")
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda if available)")
    p.add_argument("--tile", type=int, default=None,
                   help="0 automatic (whole image when it fits in half the free memory, else tiles), N: N-pixel "
                        "tiles (default 0)")
    p.add_argument("--precision", default=None, choices=("fp32", "fp16", "bf16", "auto"),
                   help=f"network precision (default {SCORING_PRECISION}: scores are not affected by half-precision "
                   "rounding)")
    p.add_argument("--metrics", default=None, metavar="LIST",
                   help="comma-separated: psnr, ssim (higher is better), niqe, lpips, dists, color_drift (lower is "
                   "better; colour drift compares with the LR input); default psnr,ssim,color_drift or the option "
                   "file's metrics. LPIPS needs torchvision's AlexNet weights, DISTS its VGG16 weights")
    p.add_argument("--video", metavar="IN",
                   help="score on a video (file or folder of frames): warping error, flicker index, colour drift "
                        "(esrgan.evaluation.video_test)")
    p.add_argument("--video-hr", metavar="HR", help="the video's HR (file or folder of frames): adds PSNR/SSIM; "
                   "alone, the input is made from it with MATLAB bicubic")
    p.add_argument("--no-save-img", action="store_true", help="do not write SR images")
    p.add_argument("--no-compare", action="store_true", help="do not write comparison pictures")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return p


def add_test_set_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hr", action="append", default=[], metavar="DIR", help="HR folder of a test set; repeatable")
    p.add_argument("--lr", action="append", default=[], metavar="DIR",
                   help="LR folder paired with the --hr of the same position (omit: MATLAB bicubic LR on the fly)")
    p.add_argument("--filename-tmpl", default=None, metavar="T",
                   help="LR name from the HR stem, e.g. '{}x4' (default: tries '{}' and '{}x<scale>')")


class FlagOverrides:
    """The flags given on the command line, set into the option mapping; remembers which key each flag set."""

    def __init__(self, raw: Any) -> None:
        self.raw: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
        self.flags: dict[str, str] = {}

    @classmethod
    def of(cls, args: argparse.Namespace) -> FlagOverrides:
        """The option file of ``-opt`` (or an empty one) with the flags ``esrgan test`` and ``interp`` share set."""
        from esrgan.options.yaml_io import read_option_file

        given = cls(read_option_file(args.opt) if args.opt else {})
        given.common(args)
        return given

    def set(self, key: str, value: Any, flag: str) -> None:
        *parents, last = key.split(".")
        node = self.raw
        for part in parents:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[last] = value
        self.flags[key] = flag

    def common(self, args: argparse.Namespace) -> None:
        """The flags ``esrgan test`` and ``esrgan interp`` share."""
        if args.hr:
            if args.lr and len(args.lr) != len(args.hr):
                raise OptionsError(f"give one --lr per --hr or none: got {len(args.hr)} --hr and {len(args.lr)} --lr")
            lrs = list(args.lr) or [None] * len(args.hr)
            sets = {}
            for i, (hr, lr) in enumerate(zip(args.hr, lrs, strict=True)):
                sets[f"test_{i + 1}"] = {"dataroot_gt": hr, "dataroot_lq": lr, "filename_tmpl": args.filename_tmpl}
            self.set("datasets", sets, "--hr")
        for key, value, flag in (("scale", args.scale, "--scale"), ("name", args.name, "--name"),
                                 ("path.experiments_root", args.experiments_root, "--experiments-root"),
                                 ("val.device", args.device, "--device"), ("val.tile", args.tile, "--tile"),
                                 ("metrics", args.metrics, "--metrics")):
            if value is not None:
                self.set(key, value, flag)
        if args.quiet:
            self.set("val.pbar", False, "-q")


def missing_flags(args: argparse.Namespace, *flags: str) -> list[str]:
    """The ``flags`` not given (what a command without ``-opt`` needs)."""
    return [flag for flag in flags if not getattr(args, flag.lstrip("-").replace("-", "_"))]


def _model_spec(text: str) -> str | dict[str, str]:
    label, sep, spec = text.partition("=")
    if sep and label and "/" not in label and "\\" not in label:
        return {"name": label, "model": spec}
    return text


def main(argv: list[str] | None = None) -> int:
    from esrgan.evaluation.tester import run_tests
    from esrgan.evaluation.testsets import sets_from_options
    from esrgan.inference.upscaler import NonFiniteOutputError
    from esrgan.options.testing import test_options_from_dict
    from esrgan.utils.hardware import check_device

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.video or args.video_hr:
        return _video_test(args)
    missing = [] if args.opt else missing_flags(args, "--model", "--scale", "--hr")
    if missing:
        print(f"esrgan test: missing {', '.join(missing)} (or give -opt FILE)", file=sys.stderr)
        return 2
    try:
        given = FlagOverrides.of(args)
        if args.model:
            given.set("models", [_model_spec(m) for m in args.model], "--model")
            given.set("path.pretrain_network_g", None, "--model")  # the flags name every model
        if args.precision:
            given.set("val.precision", args.precision, "--precision")
        if args.no_save_img:
            given.set("val.save_img", False, "--no-save-img")
        if args.no_compare:
            given.set("val.comparisons", False, "--no-compare")
        if not args.opt and not args.name:
            given.set("name", f"test_{_label(args.model[0])}_x{args.scale}", "--model")
        cfg = test_options_from_dict(given.raw, args.opt, flags=given.flags)
        check_device(cfg.device)
        report = run_tests(
            cfg.models_to_test, sets_from_options(cfg), cfg.scale, cfg.name,
            experiments_root=cfg.experiments_root, device=cfg.device, tile=cfg.val.tile, precision=cfg.val.precision,
            network_g=cfg.network_g.spec() if cfg.network_g else None, strict_load_g=cfg.path.strict_load_g,
            param_key_g=cfg.path.param_key_g, save_images=cfg.val.save_img, comparisons=cfg.val.comparisons,
            progress=cfg.val.pbar, metrics=cfg.metric_names,
        )  # fmt: skip
    except (OptionsError, FileNotFoundError, IsADirectoryError, ValueError, NonFiniteOutputError) as exc:
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

    missing = missing_flags(args, "--model", "--scale")
    if missing or args.opt:
        print(f"esrgan test --video: {'missing ' + ', '.join(missing) if missing else '-opt is for image sets'}",
              file=sys.stderr)
        return 2
    specs = [_model_spec(m) for m in args.model]
    models = [(s["name"], s["model"]) if isinstance(s, dict) else s for s in specs]
    name = args.name or f"test_video_{_label(args.model[0])}_x{args.scale}"
    given = {k: v for k, v in (("tile", args.tile), ("precision", args.precision), ("device", args.device),
                               ("experiments_root", args.experiments_root)) if v is not None}
    try:
        report = run_video_test(models, args.video, args.video_hr, args.scale, name, progress=not args.quiet,
                                **given)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"esrgan test: error: {exc}", file=sys.stderr)
        return 1
    print(report.format_table())
    print(f"\nresults: {report.out_dir / 'results.json'}; report: {write_video_report(report.out_dir)}")
    return 0


def _label(text: str) -> str:
    from esrgan.evaluation.tested_models import default_label

    spec = _model_spec(text)
    return spec["name"] if isinstance(spec, dict) else default_label(spec)


if __name__ == "__main__":
    sys.exit(main())
