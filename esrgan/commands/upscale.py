"""``esrgan upscale``: upscale image files, folders and globs with any supported model."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from esrgan.commands.common import (
    add_alpha_arg,
    add_model_args,
    build_upscaler,
    check_device,
    join_ranks,
    setup_cli_logging,
)
from esrgan.data.image import MAX_PIXELS_ENV, ImageReadError, inspect_image_file, is_image_file, max_image_pixels
from esrgan.inference.files import (
    DEFAULT_QUALITY,
    OUTPUT_EXTS,
    expand_inputs,
    plan_outputs,
    planned_output,
    scale_suffix,
    upscale_files,
)
from esrgan.inference.ranks import Ranks
from esrgan.utils.atomic import remove_stale_temporaries_of
from esrgan.utils.folders import check_folder_name
from esrgan.utils.signals import Terminated

logger = logging.getLogger("esrgan.inference.upscale")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="esrgan upscale",
        description="Upscale images. Outputs go to a folder as <name><suffix>.<ext>, or to one file path "
        "when there is one input image and OUT ends in an image extension.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns (quote them)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (or a file for one input)")
    p.add_argument("--suffix", help="added to output names (default: _x<final scale>, e.g. _x4)")
    p.add_argument("--outscale", type=float, help="final scale (default: the network's; resized with Lanczos/area)")
    p.add_argument("--passes", type=int, default=1, help="run the network N times (x4 twice = x16) (default: 1)")
    p.add_argument("--ext", choices=OUTPUT_EXTS, default="auto", help="output format; auto = the input's (default)")
    p.add_argument("--quality", type=int, default=DEFAULT_QUALITY,
                   help=f"JPEG/WebP quality (default: {DEFAULT_QUALITY})")
    exist = p.add_mutually_exclusive_group()
    exist.add_argument("--skip-existing", action="store_true", help="leave images whose output already exists")
    exist.add_argument(
        "--overwrite",
        action="store_true",
        help="replace output files that exist from before (an input is never replaced)",
    )
    p.add_argument("--recursive", "-r", action="store_true", help="look into sub-folders of folder inputs")
    add_alpha_arg(p)
    add_model_args(p)
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.passes < 1:
        parser.error(f"--passes must be >= 1, got {args.passes}")
    if args.outscale is not None and args.outscale <= 0:
        parser.error(f"--outscale must be > 0, got {args.outscale}")
    if not 0 <= args.quality <= 100:
        parser.error(f"--quality must be in 0..100, got {args.quality}")
    check_device(parser, args.device)
    try:
        with join_ranks() as ranks:
            setup_cli_logging(args.verbose, rank=ranks.rank)
            return _run(parser, args, ranks)
    except KeyboardInterrupt as exc:
        # Each output is renamed into place when complete: those written are whole, the rest are not there.
        hint = "the outputs written so far are complete; run again with --skip-existing to do the rest"
        if isinstance(exc, Terminated):
            logger.error("terminated (SIGTERM): %s", hint)
            return exc.exit_code
        logger.info("%s", hint)
        raise  # the CLI's one line: "esrgan upscale: interrupted", exit 130


def _empty_output(files: list[Path], outscale: float) -> str | None:
    """What a shrinking ``--outscale`` would make of the smallest input (read from the headers), if that is
    an image without pixels."""
    for src in files:
        try:
            w, h = inspect_image_file(src)
        except ImageReadError:
            continue  # reported with the image, when its turn comes
        if min(round(w * outscale), round(h * outscale)) < 1:
            return (f"--outscale {outscale:g} would make {src} ({w}x{h}) {round(w * outscale)}x{round(h * outscale)} "
                    f"pixels; the smallest outscale for it is {0.5 / min(w, h):.3g}")
    return None


def _too_large(files: list[Path], net_scale: int, outscale: float | None, passes: int) -> str | None:
    """What would go over the pixel limit (``ESRGAN_MAX_IMAGE_PIXELS``, or one pass of the network over the
    input when that is larger: any image that may be read may be upscaled once): the result of ``passes``
    or the ``--outscale`` size, read from the headers. A 16-pixel image x4 six times would otherwise grow
    for minutes towards a 65536-pixel square."""
    if not max_image_pixels():
        return None
    scale = net_scale**passes
    for src in files:
        try:
            w, h = inspect_image_file(src)
        except ImageReadError:
            continue  # reported with the image, when its turn comes
        limit = max(max_image_pixels(), w * h * net_scale**2)
        for flag, (ow, oh) in (("--passes", (w * scale, h * scale)),
                               ("--outscale", (round(w * (outscale or 0)), round(h * (outscale or 0))))):
            if ow * oh > limit:
                value = passes if flag == "--passes" else f"{outscale:g}"
                return (f"{flag} {value} would make {src} ({w}x{h}) {ow}x{oh} = {ow * oh / 1e6:.0f} megapixels, over "
                        f"the limit of {limit / 1e6:.0f} megapixels (set {MAX_PIXELS_ENV} to raise it, 0 for none)")
    return None


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, ranks: Ranks) -> int:
    if args.suffix:
        try:
            check_folder_name(f"x{args.suffix}.png", "--suffix")  # a part of one file name in the output folder
        except ValueError:
            parser.error(f"--suffix {args.suffix!r} must be part of a file name: no '/', '\\' or control characters")
    files, missing = expand_inputs(args.inputs, args.recursive)
    for item in missing:
        if Path(item).is_dir():
            deeper = "" if args.recursive else " (-r looks into its sub-folders)"
            logger.error("%s: a folder with no images in it%s", item, deeper)
        else:
            logger.error("%s: no such image file, folder or matching glob", item)
    out = Path(args.output)
    single = len(args.inputs) == 1 and len(files) == 1 and Path(args.inputs[0]).is_file() and is_image_file(out)
    if not files:
        logger.error("no input images found")
        return 1

    if args.outscale is not None and args.outscale < 1:
        problem = _empty_output(files, args.outscale)
        if problem:
            parser.error(problem)
    upscaler = build_upscaler(args, show_progress=ranks.world_size == 1)
    if upscaler is None:
        return 1
    problem = _too_large(files, upscaler.scale, args.outscale, args.passes)
    if problem:
        parser.error(problem)
    final_scale = args.outscale if args.outscale is not None else upscaler.scale**args.passes
    suffix = scale_suffix(final_scale) if args.suffix is None else args.suffix
    logger.info("%r; %d image(s) -> %s%s", upscaler, len(files), out, ranks.describe())

    targets = {src: out if single else planned_output(src, out, suffix, args.ext) for src in files}
    # Planned by the first process before any writes (the others would take its new files for old ones).
    problem = ranks.broadcast(
        plan_outputs(targets, overwrite=args.overwrite, skip_existing=args.skip_existing) if ranks.rank == 0 else None
    )
    if problem:
        parser.error(problem)
    if ranks.rank == 0:
        # What a killed run was writing (no process writes yet), for the outputs and their PNG variants.
        remove_stale_temporaries_of({p for dst in targets.values() for p in (dst, dst.with_suffix(".png"))})
    ranks.barrier()

    result = upscale_files(
        upscaler, targets, outscale=args.outscale, passes=args.passes, quality=args.quality,
        overwrite=args.overwrite, skip_existing=args.skip_existing, shard=(ranks.rank, ranks.world_size),
        show_progress=ranks.rank == 0,
    )  # fmt: skip
    done, skipped, failed = ranks.sum(result.done, result.skipped, len(result.failed))
    failed += len(missing)
    logger.info("upscaled %d, skipped %d (existing), failed %d", done, skipped, failed)
    return 1 if failed else 0
