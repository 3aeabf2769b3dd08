"""``esrgan upscale``: upscale image files, folders and globs with any supported model."""

from __future__ import annotations

import argparse
import glob
import logging
import os
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


class OutputClashError(ValueError):
    """An output would replace an input, another output of the run, or a file from before."""


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _show(paths: Sequence[Path], n: int = 3) -> str:
    more = f" and {len(paths) - n} more" if len(paths) > n else ""
    return ", ".join(str(p) for p in paths[:n]) + more


def plan_outputs(targets: dict[Path, Path], *, overwrite: bool = False, skip_existing: bool = False) -> str | None:
    """Check every planned output before anything is written; return what is wrong (None if nothing).

    Files are compared by identity (device, inode), so links, ``..`` and case-insensitive file
    systems do not hide a clash. An output may never be an input of the run nor shared by two
    inputs; one that exists from before needs ``overwrite`` (or is left alone with ``skip_existing``).
    """
    inputs = {fid: src for src in targets if (fid := _file_id(src)) is not None}
    on_inputs = [(src, dst) for src, dst in targets.items() if _file_id(dst) in inputs]
    if on_inputs and not skip_existing:
        src, dst = on_inputs[0]
        return (
            f"{len(on_inputs)} output(s) would replace input images of this run, e.g. {src} -> {dst}; "
            "inputs are never overwritten: give another -o folder or a --suffix "
            "(or --skip-existing to leave those inputs' outputs as they are)"
        )
    by_name: dict[str, list[Path]] = {}
    for src, dst in targets.items():
        by_name.setdefault(os.path.normcase(os.path.abspath(dst)), []).append(src)
    merged = [srcs for srcs in by_name.values() if len(srcs) > 1]
    if merged:
        srcs = merged[0]
        return f"{len(srcs)} inputs would be written to the same file {targets[srcs[0]]}: {_show(srcs)}"
    existing = [dst for dst in targets.values() if dst.exists()]
    if existing and not (overwrite or skip_existing):
        if any(d.is_dir() for d in existing):
            return f"output {next(d for d in existing if d.is_dir())} is a folder"
        return (
            f"{len(existing)} output file(s) exist from before: {_show(existing)}; "
            "pass --overwrite to replace them or --skip-existing to keep them"
        )
    return None


class OutputGuard:
    """Checks each output just before it is written (its name may change with the format, see
    ``_fit_format``): never an input, never a file another input of this run wrote, never a file
    from before unless ``overwrite``."""

    def __init__(self, inputs: Sequence[Path], *, overwrite: bool) -> None:
        self.inputs = {fid: src for src in inputs if (fid := _file_id(src)) is not None}
        self.created: dict[tuple[int, int], Path] = {}
        self.overwrite = overwrite

    def check(self, dst: Path, src: Path) -> None:
        fid = _file_id(dst)
        if fid is None:
            return
        if fid in self.inputs:
            raise OutputClashError(f"{src}: not written: its output {dst} is the input {self.inputs[fid]}")
        if fid in self.created:
            raise OutputClashError(f"{src}: not written: {dst} was already written by this run")
        if not self.overwrite:
            raise OutputClashError(f"{src}: not written: {dst} exists from before (--overwrite replaces it)")

    def written(self, dst: Path) -> None:
        if (fid := _file_id(dst)) is not None:
            self.created[fid] = dst


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

    upscaler = build_upscaler(args, show_progress=True)
    if upscaler is None:
        return 1
    final_scale = args.outscale if args.outscale is not None else upscaler.scale**args.passes
    suffix = scale_suffix(final_scale) if args.suffix is None else args.suffix
    logger.info("%r; %d image(s) -> %s", upscaler, len(files), out)

    targets = {src: out if single else out / f"{src.stem}{suffix}{_ext_for(src, args.ext)}" for src in files}
    problem = plan_outputs(targets, overwrite=args.overwrite, skip_existing=args.skip_existing)
    if problem:
        parser.error(problem)

    guard = OutputGuard(files, overwrite=args.overwrite)
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
            guard.check(dst, src)
            imwrite(dst, result, _write_params(dst, args.quality))
            guard.written(dst)
        except (ImageReadError, OutputClashError) as exc:
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
