"""Image files in, image files out: where each output goes, in which format, and the checks that keep a run
from replacing its inputs, its own outputs or files from before. ``esrgan upscale`` and ``esrgan serve`` name
and encode their outputs here, so the same input and model give the same file from both."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from tqdm import tqdm

from esrgan.data.image import ImageReadError, imread, imwrite, inspect_image_file, is_image_file, list_images

if TYPE_CHECKING:
    from esrgan.inference.upscaler import Upscaler

logger = logging.getLogger("esrgan.inference.upscale")

OUTPUT_EXTS = ("auto", "png", "jpg", "webp")
# Formats that can hold an alpha channel / 16-bit samples when OpenCV writes them.
_ALPHA_OK = {".png", ".webp", ".tif", ".tiff", ".bmp"}
_DEPTH16_OK = {".png", ".tif", ".tiff"}


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


def planned_output(src: Path, folder: Path, suffix: str, ext: str = "auto") -> Path:
    """``folder/<stem><suffix>.<ext>`` (``auto``: the input's extension); the format may still change to PNG
    when the result needs it (:func:`fit_format`)."""
    return folder / f"{src.stem}{suffix}{src.suffix.lower() if ext == 'auto' else '.' + ext}"


def fit_format(path: Path, img: np.ndarray) -> Path:
    """Switch to PNG when the chosen format cannot hold this image's alpha or 16-bit depth."""
    suffix = path.suffix.lower()
    has_alpha = img.ndim == 3 and img.shape[2] == 4
    if (has_alpha and suffix not in _ALPHA_OK) or (img.dtype == np.uint16 and suffix not in _DEPTH16_OK):
        what = "alpha" if has_alpha and suffix not in _ALPHA_OK else "16-bit samples"
        logger.info("%s: %s cannot hold %s; writing PNG instead", path.name, suffix, what)
        return path.with_suffix(".png")
    return path


DEFAULT_QUALITY = 95  # JPEG/WebP quality of every front end (esrgan upscale, esrgan serve)


def write_params(path: Path, quality: int) -> list[int]:
    """OpenCV encoder parameters for ``path``'s format at ``quality`` (JPEG/WebP)."""
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        return [cv2.IMWRITE_JPEG_QUALITY, quality]
    if suffix == ".webp":
        return [cv2.IMWRITE_WEBP_QUALITY, quality]
    return []


def output_file(
    src: Path, folder: Path, result: np.ndarray, final_scale: float, *, suffix: str | None = None,
    ext: str = "auto", quality: int = DEFAULT_QUALITY,
) -> tuple[Path, list[int]]:
    """Where ``esrgan upscale`` writes ``result`` of input ``src`` in ``folder``, and the encoder parameters
    (for other front ends, e.g. ``esrgan serve``, whose downloads must equal the command's files)."""
    suffix = scale_suffix(final_scale) if suffix is None else suffix
    dst = fit_format(planned_output(src, folder, suffix, ext), result)
    return dst, write_params(dst, quality)


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
    :func:`fit_format`): never an input, never a file another input of this run wrote, never a file
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


def finished_output(dst: Path) -> Path | None:
    """The output a run before left at ``dst`` (or at its PNG variant), or None when there is none.

    Outputs are renamed into place only when complete, so a kill -9 never leaves a partial one under its name;
    one cut another way (a power loss before the data reached the disk, a copy that stopped) is not taken as
    done: :class:`OutputClashError` names it, and it is left for the user (it may not be ours to delete).
    """
    for path in dict.fromkeys((dst, dst.with_suffix(".png"))):
        if path.is_file():
            try:
                inspect_image_file(path, max_pixels=0)
            except ImageReadError as exc:
                raise OutputClashError(
                    f"{exc}: not taken as done and not replaced (delete it, or pass --overwrite instead of "
                    "--skip-existing)"
                ) from None
            return path
    return None

@dataclass
class FilesResult:
    """What one process did to its share of the images."""

    done: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)  # one message per image


def upscale_files(
    upscaler: Upscaler,
    targets: dict[Path, Path],
    *,
    outscale: float | None = None,
    passes: int = 1,
    quality: int = DEFAULT_QUALITY,
    overwrite: bool = False,
    skip_existing: bool = False,
    shard: tuple[int, int] = (0, 1),
    show_progress: bool = True,
) -> FilesResult:
    """Upscale each input of ``targets`` (input -> planned output, checked by :func:`plan_outputs`) into its file.

    ``shard=(rank, world_size)``: this process takes every ``world_size``-th image from ``rank`` (torchrun:
    each rank writes its own images, the folder is the same as one process's). One bad image is reported
    by name in ``failed`` and the rest still run. With ``skip_existing`` a complete output is left alone
    and an incomplete one is reported (:func:`finished_output`).
    """
    rank, world = shard
    mine = list(targets)[rank::world]
    guard = OutputGuard(list(targets), overwrite=overwrite)
    result = FilesResult()
    bar = tqdm(mine, unit="img", desc="upscale", dynamic_ncols=True, disable=not show_progress)
    for src in bar:
        dst = targets[src]
        bar.set_postfix_str(src.name)
        try:
            if skip_existing and finished_output(dst) is not None:
                result.skipped += 1
                continue
            img = imread(src)
            out = upscaler.upscale(img, outscale, passes=passes)
            dst = fit_format(dst, out)
            guard.check(dst, src)
            imwrite(dst, out, write_params(dst, quality))
            guard.written(dst)
            result.done += 1
        except (ImageReadError, OutputClashError) as exc:
            result.failed.append(str(exc))
            logger.error("%s", exc)
        except Exception as exc:  # one bad image must not stop the batch: report it by name, go on
            result.failed.append(f"{src}: {type(exc).__name__}: {exc}")
            logger.error("%s", result.failed[-1])
    bar.close()
    return result
