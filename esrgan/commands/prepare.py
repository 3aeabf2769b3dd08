"""``esrgan prepare``: sub-images, LR images, LMDBs, downloads and the demo data set.

Commands (``--help`` on each):

- ``extract-subimages``: cut images into overlapping crops (DIV2K HR: 480 px, step 240, thresh 48;
  LR at scale s: the same with ``--scale s``, which divides the three sizes so the crops stay aligned);
- ``make-lr``: MATLAB-bicubic LR images (x2/x3/x4) from HR, mod-cropping HR first;
- ``create-lmdb`` / ``verify-lmdb``: folder -> BasicSR-compatible LMDB, and a full decode check;
- ``download``: DIV2K, Flickr2K, Set5, Set14 (resume, checksums, ``--source`` for mirrors);
- ``demo``: the small built-in data set from scikit-image's images;
- ``degrade``: a fixed-seed real-world LR set through Real-ESRGAN's degradation (``--preview`` draws it); with
  ``--options FILE --preview DIR`` alone, the pairs a Real-ESRGAN training file trains on, as a report page;
- ``multiscale`` / ``meta-info``: Real-ESRGAN's multi-scale HR copies and ``meta_info`` lists.

The work is done by ``esrgan.data.prepare`` (and ``esrgan.data.download``, ``esrgan.data.demo_data``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable
from typing import Any

from esrgan.data.image import ImageReadError
from esrgan.data.prepare import (
    MULTISCALE_FACTORS,
    create_lmdb,
    default_workers,
    extract_subimages,
    make_lr,
    multiscale_images,
    verify_lmdb,
    write_meta_info,
)
from esrgan.utils.oserror import os_error_line

# ---------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esrgan prepare", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("extract-subimages", help="cut images into overlapping sub-images")
    p.add_argument("--input", required=True, help="folder of images (e.g. datasets/DIV2K/DIV2K_train_HR)")
    p.add_argument("--output", required=True, help="output folder (e.g. datasets/DIV2K/DIV2K_train_HR_sub)")
    p.add_argument("--crop-size", type=int, default=480, help="HR crop size (default 480)")
    p.add_argument("--step", type=int, default=240, help="HR step between crops (default 240)")
    p.add_argument("--thresh-size", type=int, default=48, help="drop remainders up to this many HR pixels (48)")
    p.add_argument("--scale", type=int, default=1, help="for an LR folder: divide sizes by this and drop 'x<scale>'")
    p.add_argument("--compress-level", type=int, default=3, help="PNG compression 0..9 (default 3)")
    p.add_argument("--workers", type=int, default=default_workers(), help="processes (default: CPUs, max 8)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")

    p = sub.add_parser("make-lr", help="bicubic LR images from HR (MATLAB imresize, mod-crop first)")
    p.add_argument("--input", required=True, help="folder of HR images")
    p.add_argument("--output", required=True, help="output folder for LR images")
    p.add_argument("--scale", type=int, required=True, help="downscaling factor (2, 3, 4, ...)")
    p.add_argument("--filename-tmpl", default=None, help="LR name from the HR stem (default '{}x<scale>')")
    p.add_argument("--hr-output", default=None, help="also write the mod-cropped HR images here")
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")

    p = sub.add_parser("create-lmdb", help="folder of images -> LMDB with meta_info.txt")
    p.add_argument("--input", required=True, help="folder of images")
    p.add_argument("--output", required=True, help="LMDB folder to create (e.g. ..._sub.lmdb)")
    p.add_argument(
        "--compress-level", type=int, default=1,
        help="PNG zlib level 0..9 (default 1 with the Up filter: as small as a level-3 folder, faster to decode;"
        " 0: unfiltered, several times faster to decode at ~1.9x the size)",
    )  # fmt: skip
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--overwrite", action="store_true", help="replace an existing LMDB")

    p = sub.add_parser("verify-lmdb", help="check that every key decodes to its recorded shape")
    p.add_argument("path", nargs="+", help="LMDB folder(s)")

    p = sub.add_parser("download", help="download DIV2K, Flickr2K, Set5, Set14, BSDS400 (resumable, checksummed)")
    p.add_argument("names", nargs="*", help="data sets or groups (see --list)")
    p.add_argument("--root", default="datasets", help="where to put them (default datasets)")
    p.add_argument("--source", default=None, help="mirror base URL or local folder replacing the public addresses")
    p.add_argument("--remove-archives", action="store_true", help="delete archives once unpacked")
    p.add_argument("--list", action="store_true", help="list the known data sets and groups")

    p = sub.add_parser("degrade", help="fixed-seed real-world LR images through Real-ESRGAN's degradation, or "
                       "(--options FILE --preview DIR) the LR/GT pairs a training file trains on")
    p.add_argument("--input", help="folder of HR images")
    p.add_argument("--output", help="output folder for the degraded LR images (<stem>.png)")
    p.add_argument("--seed", type=int, help="seed: the same seed, image and settings give the same LR")
    p.add_argument("--scale", type=int, default=None,
                   help="downscaling factor (default: the option file's scale, else 4)")
    p.add_argument("--options", default=None,
                   help="Real-ESRGAN training option file whose degradation keys to use, read and checked as "
                   "'esrgan train' reads it (default: the x4plus recipe)")
    p.add_argument("--hr-output", default=None, help="also write the mod-cropped HR images here (exact pairs)")
    p.add_argument("--preview", default=None,
                   help="with --input/--output: also write a picture of HR crops beside their LR (PNG); with --options "
                   "alone: a folder for report.html showing the first training steps' LR/GT pairs exactly as "
                   "'esrgan train' draws them")
    p.add_argument("--steps", type=int, default=None,
                   help=f"training steps the page shows (default {PREVIEW_STEPS}, at most {MAX_PREVIEW_STEPS})")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")

    p = sub.add_parser("multiscale", help="Lanczos-downscaled copies of HR images (Real-ESRGAN's multi-scale DF2K)")
    p.add_argument("--input", required=True, help="folder of HR images (e.g. datasets/DF2K/DF2K_HR)")
    p.add_argument("--output", required=True, help="output folder (e.g. datasets/DF2K/DF2K_multiscale)")
    p.add_argument("--factors", type=float, nargs="*", default=list(MULTISCALE_FACTORS),
                   help="scale factors (default 0.75 0.5 0.333)")
    p.add_argument("--short-side", type=int, default=400, help="add a copy with this short side (0 = none; 400)")
    p.add_argument("--compress-level", type=int, default=3, help="PNG compression 0..9 (default 3)")
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")

    p = sub.add_parser("meta-info", help="meta_info list of image paths (RealESRGANDataset / paired datasets)")
    p.add_argument("--input", required=True, nargs="+", help="image folder(s); with --paired: GT folder, LQ folder")
    p.add_argument("--output", required=True, help="meta_info file to write")
    p.add_argument("--root", default=None, help="paths are relative to this (dataroot_gt; default: the parent of "
                   "the first input)")
    p.add_argument("--paired", action="store_true", help="'gt, lq' lines for RealESRGANPairedDataset")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")

    p = sub.add_parser("demo", help="small paired train/val set from scikit-image's images (no download)")
    p.add_argument("--root", default="datasets/demo", help="output folder (default datasets/demo)")
    p.add_argument("--overwrite", action="store_true", help="rebuild even if present")
    return parser


def _cmd_download(args: argparse.Namespace) -> int:
    from esrgan.data.download import DATASETS, GROUPS, download

    if args.list or not args.names:
        for group, members in GROUPS.items():
            print(f"{group:28s} = {' '.join(members)}")
        for name, files in DATASETS.items():
            checked = "sha256" if all(f.sha256 for f in files) else "no published checksum"
            print(f"{name:28s} {len(files)} file(s), {checked}")
        return 0 if args.list else 2
    for produced in download(args.names, args.root, args.source, keep_archives=not args.remove_archives):
        print(produced)
    return 0


PREVIEW_STEPS = 2
MAX_PREVIEW_STEPS = 50


def _real_options(options_file: str) -> Any:
    """A Real-ESRGAN training file that degrades HR crops, read and checked as ``esrgan train`` reads it."""
    from esrgan.options import OptionsError, load_options

    opt = load_options(options_file)
    if not opt.is_real:
        raise OptionsError(f"{opt.model_type} makes no degraded LR; expected a Real-ESRGAN option file (model_type "
                           "RealESRNetModel or RealESRGANModel)", key="model_type", file=options_file)
    if not opt.real_esrgan.high_order_degradation:
        raise OptionsError("false: this file trains on given LR/HR pairs and degrades nothing",
                           key="high_order_degradation", file=options_file)
    return opt


def _degradation(options_file: str | None, scale: int | None) -> tuple[Any, Any, int]:
    """``(Real-ESRGAN keys, training set's blur keys, scale)``: from a Real-ESRGAN training file, read by the one
    option loader, or the published recipe (the options' defaults)."""
    from esrgan.options import OptionsError, RealESRGANOptions
    from esrgan.options.datasets import RealESRGANDatasetOptions

    if options_file is None:
        scale = 4 if scale is None else scale
        return RealESRGANOptions(), RealESRGANDatasetOptions(dataroot_gt=".", scale=scale), scale
    opt = _real_options(options_file)
    if scale is not None and scale != opt.scale:
        raise OptionsError(f"{opt.scale}, but --scale is {scale}; leave --scale out to use the file's",
                           key="scale", file=options_file)
    return opt.real_esrgan, opt.datasets["train"], opt.scale


def _training_preview(args: argparse.Namespace) -> int:
    """``--options FILE --preview DIR``: the first training steps' pairs as ``esrgan train`` draws them, as a page."""
    from pathlib import Path

    from esrgan.data.prepare import prepare_output
    from esrgan.report.gallery import write_degradation_gallery
    from esrgan.training.preview import training_pairs

    given = [f for f, v in (("--seed", args.seed), ("--scale", args.scale), ("--hr-output", args.hr_output)) if v]
    if given:
        raise ValueError(f"{', '.join(given)}: the training pairs come from --options FILE (its manual_seed, scale "
                         "and data); leave them out")
    if args.preview is None:
        raise ValueError("--options alone: add --preview DIR for the training pairs' page, or --input/--output/--seed "
                         "for a fixed-seed LR set")
    steps = PREVIEW_STEPS if args.steps is None else args.steps
    if not 1 <= steps <= MAX_PREVIEW_STEPS:
        raise ValueError(f"--steps {steps}: expected 1 to {MAX_PREVIEW_STEPS} training steps")
    out = Path(args.preview)
    if out.suffix.lower() in (".png", ".html", ".htm", ".jpg"):
        raise ValueError(f"--preview {out}: with --options alone this is a folder (report.html and images/ go in "
                         "it), not a file name")
    opt = _real_options(args.options)
    prepare_output(out, args.overwrite)
    pairs = training_pairs(opt, steps)
    t = opt.datasets["train"]
    description = (
        f"The first {steps} training step(s) of {args.options} ({opt.model_type}, x{opt.scale}) exactly as "
        f"'esrgan train' draws them on the CPU: batches of {t.batch_size_per_gpu} HR crops with their blur kernels "
        f"from the loader seeded with manual_seed {opt.manual_seed}, degraded by process 0's generators, cropped "
        f"to gt_size {opt.real_esrgan.gt_size} and passed through the training-pair queue (queue_size "
        f"{opt.real_esrgan.queue_size}). Left: the LR fed to the network, each pixel repeated x{opt.scale}; right: "
        "its GT crop" + (" (sharpened: gt_usm)" if opt.model_type == "RealESRNetModel"
                                          and opt.real_esrgan.gt_usm else "") + "."
    )
    page = write_degradation_gallery(pairs, out, name=opt.name, scale=opt.scale, description=description,
                                     provenance={"command": "esrgan prepare degrade --options "
                                                 f"{args.options} --preview {args.preview} --steps {steps}"})
    print(page)
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "extract-subimages":
        extract_subimages(
            args.input, args.output, args.crop_size, args.step, args.thresh_size, args.scale,
            args.compress_level, args.workers, args.overwrite,
        )  # fmt: skip
    elif args.command == "make-lr":
        make_lr(args.input, args.output, args.scale, args.filename_tmpl, args.hr_output, args.workers, args.overwrite)
    elif args.command == "create-lmdb":
        create_lmdb(args.input, args.output, args.compress_level, args.workers, args.overwrite)
    elif args.command == "verify-lmdb":
        failed = 0
        for path in args.path:
            errors = verify_lmdb(path)
            for error in errors:
                print(error, file=sys.stderr)
            print(f"{path}: {'OK' if not errors else f'{len(errors)} bad key(s)'}")
            failed += bool(errors)
        return 1 if failed else 0
    elif args.command == "download":
        return _cmd_download(args)
    elif args.command == "degrade":
        from esrgan.data.degrade_set import degrade_folder

        if args.input is None and args.output is None and args.options is not None:
            return _training_preview(args)
        missing = [f for f, v in (("--input", args.input), ("--output", args.output), ("--seed", args.seed))
                   if v is None]
        if missing:
            raise ValueError(f"{', '.join(missing)} required for a fixed-seed LR set (or --options FILE --preview DIR "
                             "alone for the pairs a training file trains on)")
        if args.steps is not None:
            raise ValueError("--steps: only with --options FILE --preview DIR (the training pairs' page)")
        real, blur, scale = _degradation(args.options, args.scale)
        degrade_folder(args.input, args.output, args.seed, scale, real, blur, args.hr_output, args.overwrite,
                       preview=args.preview)
    elif args.command == "multiscale":
        multiscale_images(args.input, args.output, args.factors, args.short_side, args.compress_level,
                          args.workers, args.overwrite)
    elif args.command == "meta-info":
        write_meta_info(args.input, args.output, args.root, args.paired, args.overwrite)
    elif args.command == "demo":
        from esrgan.data.demo_data import make_demo_data

        print(make_demo_data(args.root, overwrite=args.overwrite))
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    from esrgan.data.download import DownloadError

    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except (ValueError, OSError, KeyError, DownloadError, ImageReadError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            message = os_error_line(exc)  # "[Errno 21] Is a directory: 'x'" -> "x: is a folder, expected a file"
        else:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"esrgan prepare {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
