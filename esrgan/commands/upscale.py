"""``esrgan upscale``: upscale image files, folders and globs with any supported model."""

from __future__ import annotations

import argparse
import glob
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from esrgan.commands.common import add_alpha_arg, add_model_args, build_upscaler, check_device, setup_cli_logging
from esrgan.data.image import ImageReadError, imread, imwrite, is_image_file, list_images

logger = logging.getLogger("esrgan.inference.upscale")

OUTPUT_EXTS = ("auto", "png", "jpg", "webp")
# Formats that can hold an alpha channel / 16-bit samples when OpenCV writes them.
_ALPHA_OK = {".png", ".webp", ".tif", ".tiff", ".bmp"}
_DEPTH16_OK = {".png", ".tif", ".tiff"}


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
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default: 95)")
    p.add_argument("--skip-existing", action="store_true", help="leave images whose output already exists")
    p.add_argument("--recursive", "-r", action="store_true", help="look into sub-folders of folder inputs")
    add_alpha_arg(p)
    # Tiles by default: whole-image activations grow with the image (a 1024x1024 photo through RRDBNet x4
    # needs over 10 GB in fp32). 512-pixel tiles, one per pass, bound them (about 3 GB peak for the full
    # RRDBNet x4 in fp32) while their overlap adds under 10% of work (256-pixel tiles: +12-15%).
    add_model_args(p, default_tile=512, default_batch_tiles=1)
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def expand_inputs(inputs: Sequence[str], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Image files named by ``inputs`` (files, folders, globs), without duplicates; and inputs matching nothing."""
    files: list[Path] = []
    missing: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = list_images(path, recursive=recursive)
        elif path.is_file():
            found = [path]  # named explicitly: tried whatever its extension
        elif glob.has_magic(item):
            found = [Path(m) for m in sorted(glob.glob(item, recursive=True)) if Path(m).is_file() and is_image_file(m)]
        else:
            found = []
        if not found:
            missing.append(item)
        files += found
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return [Path(p) for p in unique], missing


def scale_suffix(scale: float) -> str:
    """``_x4`` for 4.0, ``_x2.5`` for 2.5."""
    return f"_x{int(scale)}" if float(scale).is_integer() else f"_x{scale:g}"


def _ext_for(src: Path, ext: str) -> str:
    return src.suffix.lower() if ext == "auto" else "." + ext


def _fit_format(path: Path, img: np.ndarray) -> Path:
    """Switch to PNG when the chosen format cannot hold this image's alpha or 16-bit depth."""
    suffix = path.suffix.lower()
    has_alpha = img.ndim == 3 and img.shape[2] == 4
    if (has_alpha and suffix not in _ALPHA_OK) or (img.dtype == np.uint16 and suffix not in _DEPTH16_OK):
        what = "alpha" if has_alpha and suffix not in _ALPHA_OK else "16-bit samples"
        logger.info("%s: %s cannot hold %s; writing PNG instead", path.name, suffix, what)
        return path.with_suffix(".png")
    return path


def _write_params(path: Path, quality: int) -> list[int]:
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        return [cv2.IMWRITE_JPEG_QUALITY, quality]
    if suffix == ".webp":
        return [cv2.IMWRITE_WEBP_QUALITY, quality]
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_cli_logging(args.verbose)
    if args.passes < 1:
        parser.error(f"--passes must be >= 1, got {args.passes}")
    if args.outscale is not None and args.outscale <= 0:
        parser.error(f"--outscale must be > 0, got {args.outscale}")
    if not 0 <= args.quality <= 100:
        parser.error(f"--quality must be in 0..100, got {args.quality}")
    check_device(parser, args.device)

    files, missing = expand_inputs(args.inputs, args.recursive)
    for item in missing:
        logger.error("%s: no such image file, folder or matching glob", item)
    out = Path(args.output)
    single = len(args.inputs) == 1 and len(files) == 1 and Path(args.inputs[0]).is_file() and is_image_file(out)
    if not files:
        logger.error("no input images found")
        return 1

    try:
        upscaler = build_upscaler(args, show_progress=True)
    except (OSError, ValueError, RuntimeError) as exc:
        logger.error("cannot load model %s: %s", args.model, exc)
        return 1
    final_scale = args.outscale if args.outscale is not None else upscaler.scale**args.passes
    suffix = scale_suffix(final_scale) if args.suffix is None else args.suffix
    logger.info("%r; %d image(s) -> %s", upscaler, len(files), out)

    targets = {src: out if single else out / f"{src.stem}{suffix}{_ext_for(src, args.ext)}" for src in files}
    clashes: dict[Path, list[Path]] = {}
    for src, dst in targets.items():
        clashes.setdefault(dst.resolve(), []).append(src)
        if dst.resolve() == src.resolve():
            parser.error(f"{src}: the output would overwrite the input; give another -o folder or a --suffix")
    clashes = {dst: srcs for dst, srcs in clashes.items() if len(srcs) > 1}
    if clashes:
        dst, srcs = next(iter(clashes.items()))
        parser.error(f"{len(srcs)} inputs would be written to the same file {dst}: {', '.join(map(str, srcs))}")

    failed, skipped = len(missing), 0
    bar = tqdm(files, unit="img", desc="upscale", dynamic_ncols=True)
    for src in bar:
        dst = targets[src]
        if args.skip_existing and (dst.exists() or dst.with_suffix(".png").exists()):
            skipped += 1
            continue
        bar.set_postfix_str(src.name)
        try:
            img = imread(src)
            result = upscaler.upscale(img, args.outscale, passes=args.passes)
            dst = _fit_format(dst, result)
            imwrite(dst, result, _write_params(dst, args.quality))
        except ImageReadError as exc:
            failed += 1
            logger.error("%s", exc)
        except Exception as exc:  # one bad image must not stop the batch: report it by name, go on
            failed += 1
            logger.error("%s: %s: %s", src, type(exc).__name__, exc)
    bar.close()
    done = len(files) - skipped - (failed - len(missing))
    logger.info("upscaled %d, skipped %d (existing), failed %d", done, skipped, failed)
    return 1 if failed else 0


def output_file(
    src: Path, folder: Path, result: np.ndarray, final_scale: float, *, suffix: str | None = None,
    ext: str = "auto", quality: int = 95,
) -> tuple[Path, list[int]]:
    """Where ``esrgan upscale`` writes ``result`` of input ``src`` in ``folder``, and the encoder parameters
    (for other front ends, e.g. ``esrgan serve``, whose downloads must equal the command's files)."""
    suffix = scale_suffix(final_scale) if suffix is None else suffix
    dst = _fit_format(folder / f"{src.stem}{suffix}{_ext_for(src, ext)}", result)
    return dst, _write_params(dst, quality)
