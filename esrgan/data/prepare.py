"""Dataset preparation behind ``esrgan prepare`` (``esrgan.commands.prepare`` lists the commands).

``extract_subimages`` (overlapping crops; at scale s the sizes are divided so LR crops stay aligned with
HR ones), ``make_lr`` (MATLAB-bicubic LR from mod-cropped HR), ``create_lmdb`` / ``verify_lmdb``
(BasicSR-compatible LMDB and a full decode check); downloads are in ``esrgan.data.download``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from esrgan.data.image import imencode, imread, imwrite, list_images, mod_crop
from esrgan.data.lmdb_backend import png_params
from esrgan.data.subimages import iter_subimages, strip_scale_suffix, subimage_name
from esrgan.utils.folders import check_folder_name

logger = logging.getLogger("esrgan.data.prepare")

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _run_parallel(
    fn: Callable[[T], R], items: Sequence[T], workers: int, desc: str, ordered: bool = False
) -> Iterator[R]:
    """Map ``fn`` over ``items`` in ``workers`` processes, with a progress bar (ETA)."""
    from tqdm import tqdm

    with tqdm(total=len(items), desc=desc, unit="img") as bar:
        if workers <= 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
                bar.update(1)
            return
        with multiprocessing.get_context("spawn" if sys.platform == "win32" else None).Pool(workers) as pool:
            it = pool.imap(fn, items) if ordered else pool.imap_unordered(fn, items)
            for result in it:
                yield result
                bar.update(1)


def _input_images(input_dir: str | os.PathLike[str]) -> list[Path]:
    images = list_images(input_dir)
    if not images:
        raise ValueError(f"no images in {input_dir}")
    return images


def _check_compress_level(level: int) -> None:
    if not 0 <= level <= 9:
        raise ValueError(f"--compress-level {level}: expected 0..9")


def prepare_output(folder: Path, overwrite: bool) -> None:
    """Create ``folder``; a non-empty one only with ``overwrite`` (files of the same names replaced, others kept)."""
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder}: output folder exists and is not empty; pass --overwrite to write into it")
    folder.mkdir(parents=True, exist_ok=True)


def _low_and_high_outputs(
    output_dir: str | os.PathLike[str], hr_output: str | os.PathLike[str] | None, overwrite: bool
) -> tuple[Path, Path | None]:
    """The LR output folder and the optional HR copy folder, each checked and created (see ``prepare_output``)."""
    out = Path(output_dir)
    prepare_output(out, overwrite)
    hr_out = Path(hr_output) if hr_output else None
    if hr_out is not None:
        prepare_output(hr_out, overwrite)
    return out, hr_out


# ---------------------------------------------------------------- extract-subimages


def _extract_one(job: tuple[Path, Path, int, int, int, int, int]) -> int:
    path, out, crop, step, thresh, scale, level = job
    img = imread(path)
    stem = strip_scale_suffix(path.stem, scale)
    count = 0
    for index, sub in iter_subimages(img, crop, step, thresh):
        imwrite(out / subimage_name(stem, index), sub, [cv2.IMWRITE_PNG_COMPRESSION, level])
        count += 1
    return count


def extract_subimages(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    crop_size: int = 480,
    step: int = 240,
    thresh_size: int = 48,
    scale: int = 1,
    compress_level: int = 3,
    workers: int = 1,
    overwrite: bool = False,
) -> int:
    """Cut every image of ``input_dir`` into sub-images ``<stem>_sNNN.png``; returns how many.

    ``scale`` > 1 is for an LR folder: the sizes are divided by it and an ``x<scale>`` name
    suffix is dropped, so the LR sub-images get the same names as the HR ones.
    """
    if scale < 1:
        raise ValueError(f"--scale {scale}: expected an integer >= 1")
    for name, value in (("crop-size", crop_size), ("step", step), ("thresh-size", thresh_size)):
        if value < (0 if name == "thresh-size" else 1):
            raise ValueError(f"--{name} {value}: expected {'>= 0' if name == 'thresh-size' else 'an integer >= 1'}")
        if value % scale:
            raise ValueError(f"--{name} {value} is not divisible by --scale {scale}; the LR crops would not align")
    _check_compress_level(compress_level)
    images = _input_images(input_dir)
    out = Path(output_dir)
    prepare_output(out, overwrite)
    crop, st, th = crop_size // scale, step // scale, thresh_size // scale
    jobs = [(p, out, crop, st, th, scale, compress_level) for p in images]
    total = sum(_run_parallel(_extract_one, jobs, workers, "extract"))
    logger.info("%d sub-images of %dx%d from %d images written to %s", total, crop, crop, len(images), out)
    return total


# ---------------------------------------------------------------- multiscale / meta-info (Real-ESRGAN's data)

# Real-ESRGAN's DF2K recipe: each HR image at 0.75, 0.5 and 1/3 of its size, plus one whose short
# side is ``short_side`` pixels; ``<stem>T<i>.png`` (T0 = scale 1 is the image itself).
MULTISCALE_FACTORS = (0.75, 0.5, 1 / 3)


def _lanczos(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (w, h) with PIL's Lanczos (Real-ESRGAN's choice); 16-bit images with OpenCV's."""
    if img.dtype != np.uint8:
        return cv2.resize(img, size, interpolation=cv2.INTER_LANCZOS4)
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def _multiscale_one(job: tuple[Path, Path, tuple[float, ...], int, int]) -> int:
    path, out, factors, short_side, level = job
    img = imread(path)
    h, w = img.shape[:2]
    sizes = [(int(w * f), int(h * f)) for f in factors]
    if short_side > 0:
        ratio = short_side / min(w, h)
        sizes.append((max(short_side, int(w * ratio)), max(short_side, int(h * ratio))))
    for i, size in enumerate(sizes):
        imwrite(out / f"{path.stem}T{i}.png", _lanczos(img, size), [cv2.IMWRITE_PNG_COMPRESSION, level])
    return len(sizes)


def multiscale_images(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    factors: Sequence[float] = MULTISCALE_FACTORS,
    short_side: int = 400,
    compress_level: int = 3,
    workers: int = 1,
    overwrite: bool = False,
) -> int:
    """Lanczos-downscaled copies of every image (Real-ESRGAN's multi-scale DF2K); returns how many.

    Smaller copies hold more of each image's content per training patch; ``short_side`` adds the
    copy whose shorter side is that many pixels (0 = none), the smallest that still fits a 400 crop.
    """
    if not factors and short_side <= 0:
        raise ValueError("--factors: give at least one factor or a --short-side")
    for f in factors:
        if not 0 < f <= 1:
            raise ValueError(f"--factors: {f} is not a downscaling factor in (0, 1]")
    _check_compress_level(compress_level)
    images = _input_images(input_dir)
    out = Path(output_dir)
    prepare_output(out, overwrite)
    jobs = [(p, out, tuple(factors), short_side, compress_level) for p in images]
    total = sum(_run_parallel(_multiscale_one, jobs, workers, "multiscale"))
    logger.info("%d scaled copies of %d images written to %s", total, len(images), out)
    return total


def write_meta_info(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    paired: bool = False,
    overwrite: bool = False,
) -> int:
    """A ``meta_info`` file listing the images of ``inputs`` relative to ``root`` (default: the inputs' parent).

    Plain: one path per line, every input folder in turn (``RealESRGANDataset``'s ``meta_info``
    with ``dataroot_gt: root``). ``paired``: two folders, GT and LQ, matched by file name, as
    ``gt_path, lq_path`` lines relative to each folder's parent (``RealESRGANPairedDataset``).
    """
    out = Path(output)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    folders = [Path(p) for p in inputs]
    lines: list[str] = []
    if paired:
        if len(folders) != 2:
            raise ValueError(f"--paired takes two input folders (GT, LQ), got {len(folders)}")
        gt, lq = folders
        lq_by_stem = {p.stem: p for p in _input_images(lq)}
        for p in _input_images(gt):
            if p.stem not in lq_by_stem:
                raise FileNotFoundError(f"{p} has no LQ partner named {p.stem}.* in {lq}")
            lq_path = lq_by_stem[p.stem].relative_to(lq.parent).as_posix()
            lines.append(f"{p.relative_to(gt.parent).as_posix()}, {lq_path}")
    else:
        base = Path(root) if root is not None else folders[0].parent
        for folder in folders:
            for p in _input_images(folder):
                try:
                    lines.append(p.resolve().relative_to(base.resolve()).as_posix())
                except ValueError:
                    raise ValueError(f"{p} is not inside --root {base}") from None
    from esrgan.utils.atomic import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines) + "\n")
    logger.info("%d entries written to %s", len(lines), out)
    return len(lines)


# ---------------------------------------------------------------- make-lr


def _make_lr_one(job: tuple[Path, Path, int, str, Path | None]) -> None:
    from esrgan.imageops.imresize import imresize

    path, out, scale, tmpl, hr_out = job
    hr = mod_crop(imread(path), scale)
    if hr.size == 0:
        raise ValueError(f"{path}: smaller than --scale {scale} pixels; no LR image to make")
    imwrite(out / (tmpl.format(path.stem) + ".png"), imresize(hr, 1.0 / scale))
    if hr_out is not None:
        imwrite(hr_out / (path.stem + ".png"), hr)


def make_lr(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    scale: int,
    filename_tmpl: str | None = None,
    hr_output: str | os.PathLike[str] | None = None,
    workers: int = 1,
    overwrite: bool = False,
) -> int:
    """LR = MATLAB ``imresize(modcrop(HR, scale), 1/scale, 'bicubic')`` for every image; returns how many.

    LR names follow ``filename_tmpl`` (default ``{}x<scale>``, as DIV2K: 0001.png -> 0001x4.png).
    ``hr_output`` also writes the mod-cropped HR images (MATLAB's GTmod<scale> folders).
    """
    if scale < 1:
        raise ValueError(f"--scale {scale}: expected an integer >= 1")
    tmpl = filename_tmpl if filename_tmpl is not None else f"{{}}x{scale}"
    if "{}" not in tmpl:
        raise ValueError(f"--filename-tmpl {tmpl!r} must contain '{{}}' (the HR name)")
    try:
        lr_name = tmpl.format("0001")
    except (IndexError, KeyError, ValueError) as exc:
        raise ValueError(f"--filename-tmpl {tmpl!r}: expected one '{{}}' for the HR name and no other braces "
                         f"({exc})") from None
    check_folder_name(lr_name, f"--filename-tmpl {tmpl!r} makes the LR name")  # one file inside the output folder
    images = _input_images(input_dir)
    out, hr_out = _low_and_high_outputs(output_dir, hr_output, overwrite)
    jobs = [(p, out, scale, tmpl, hr_out) for p in images]
    for _ in _run_parallel(_make_lr_one, jobs, workers, f"make-lr x{scale}"):
        pass
    logger.info("%d LR x%d images written to %s", len(images), scale, out)
    return len(images)


# ---------------------------------------------------------------- create-lmdb / verify-lmdb


def _encode_one(job: tuple[Path, int]) -> tuple[str, bytes, tuple[int, int, int]]:
    path, level = job
    img = imread(path)
    h, w = img.shape[:2]
    c = 1 if img.ndim == 2 else img.shape[2]
    return path.stem, imencode(img, ".png", png_params(level)), (h, w, c)


def create_lmdb(
    input_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    compress_level: int = 1,
    workers: int = 1,
    overwrite: bool = False,
    map_size: int | None = None,
) -> int:
    """Pack the images of ``input_dir`` into a BasicSR-compatible LMDB at ``output``; returns how many.

    Written atomically (temporary folder, renamed at the end); refuses an existing
    ``output`` unless ``overwrite``. The map size is estimated from the input (decoded size
    bound: file sizes cannot tell PNG's compression ratio, so a too-small map grows).
    """
    from esrgan.data.lmdb_backend import estimate_map_size, write_lmdb

    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output}: already exists; pass --overwrite to replace it")
    _check_compress_level(compress_level)
    images = _input_images(input_dir)
    by_key: dict[str, Path] = {}
    for path in images:
        if not path.stem.isascii() or " " in path.stem:
            raise ValueError(f"{path}: LMDB keys must be ASCII without spaces (BasicSR's meta_info format)")
        if path.stem in by_key:
            raise ValueError(f"{path} and {by_key[path.stem]} both give the LMDB key {path.stem!r}")
        by_key[path.stem] = path
    if map_size is None:
        # Photos compress ~2-3x in PNG; 4x the file sizes bounds the decoded data with room to spare.
        map_size = estimate_map_size(4 * sum(p.stat().st_size for p in images))
    jobs = [(p, compress_level) for p in images]
    items = _run_parallel(_encode_one, jobs, workers, "create-lmdb", ordered=True)
    entries = write_lmdb(items, output, map_size, compress_level, overwrite=overwrite)
    logger.info("%d images written to %s (meta_info.txt alongside)", len(entries), output)
    return len(entries)


def verify_lmdb(path: str | os.PathLike[str]) -> list[str]:
    """Decode every key listed in ``meta_info.txt`` and compare with the recorded shape; returns the errors."""
    from tqdm import tqdm

    from esrgan.data.lmdb_backend import iter_verify, read_meta_info

    total = len(read_meta_info(path))
    errors = []
    for _, error in tqdm(iter_verify(path), total=total, desc="verify-lmdb", unit="img"):
        if error:
            errors.append(error)
    return errors


