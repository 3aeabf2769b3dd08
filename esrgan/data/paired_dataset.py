"""Paired HR/LR datasets from folders or LMDB, and HR-only datasets with LR made on the fly.

Each item is ``{"lq": CHW, "gt": CHW, "lq_path": str, "gt_path": str}`` with float32 RGB
tensors in [0, 1] (BasicSR's keys). Training items are aligned random crops with random
flips/rotations; validation items are whole images, GT mod-cropped to the scale.
Grey images are replicated to RGB and alpha is dropped, so every item has 3 channels.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from esrgan.data.image import (
    ImageReadError,
    img2tensor,
    imread,
    inspect_image_file,
    is_image_file,
    mod_crop,
    to_rgb,
)
from esrgan.data.lmdb_backend import LmdbKeyError, LmdbReader, read_meta_info
from esrgan.data.transforms import augment_pair, check_pair_size, paired_random_crop, random_crop
from esrgan.options.datasets import DatasetOptions

logger = logging.getLogger("esrgan.data.dataset")


@dataclass(frozen=True)
class ImageRef:
    """Where one image lives: a file path, or a key inside an LMDB."""

    path: str  # file path, or "<lmdb folder>/<key>" for display
    key: str | None = None  # LMDB key (None for files)
    shape: tuple[int, int, int] | None = None  # (h, w, c) from meta_info.txt when known


def _scan_folder(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and is_image_file(p)}


def _lq_candidates(stem: str, ext: str, tmpl: str, scale: int) -> list[str]:
    """LR names to try for an HR image, most specific first.

    The template wins; with the default '{}' we also accept the '<name>x<scale>' naming of the
    DIV2K and EDSR benchmark packages (Set5/LR_bicubic/X4/babyx4.png), so both layouts work.
    """
    stems = [tmpl.format(stem)]
    if tmpl == "{}":
        stems.append(f"{stem}x{scale}")
    return [s + e for s in stems for e in (ext, ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")]


def _read_names(meta_info_file: str) -> list[str]:
    path = Path(meta_info_file)
    if not path.is_file():
        raise FileNotFoundError(f"meta_info_file not found: {path}")
    names = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: meta_info_file lists no images")
    return names


def paired_refs_from_folders(
    gt_folder: str | os.PathLike[str],
    lq_folder: str | os.PathLike[str],
    filename_tmpl: str = "{}",
    scale: int = 4,
    meta_info_file: str | None = None,
) -> list[tuple[ImageRef, ImageRef]]:
    """Pair every HR image with its LR partner by name; a missing partner is an error naming both."""
    gt_folder, lq_folder = Path(gt_folder), Path(lq_folder)
    lq_files = _scan_folder(lq_folder)
    if meta_info_file:
        gt_paths = [gt_folder / name for name in _read_names(meta_info_file)]
        missing = [p for p in gt_paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{meta_info_file}: lists {missing[0].name} but {missing[0]} does not exist")
    else:
        gt_paths = list(_scan_folder(gt_folder).values())
    if not gt_paths:
        raise ValueError(f"no HR images in {gt_folder} (extensions: png, jpg, webp, bmp, tif, ppm)")
    pairs = []
    used: set[str] = set()
    for gt_path in gt_paths:
        stem, ext = os.path.splitext(gt_path.name)
        candidates = _lq_candidates(stem, ext, filename_tmpl, scale)
        lq_name = next((c for c in candidates if c in lq_files), None)
        if lq_name is None:
            raise FileNotFoundError(
                f"HR image {gt_path} has no LR partner: expected {lq_folder / candidates[0]} "
                f"(filename_tmpl {filename_tmpl!r}); found {len(lq_files)} images in {lq_folder}"
            )
        used.add(lq_name)
        pairs.append((ImageRef(str(gt_path)), ImageRef(str(lq_files[lq_name]))))
    if not meta_info_file and len(used) < len(lq_files):
        extra = sorted(set(lq_files) - used)
        logger.warning(
            "%d LR images in %s have no HR partner and are ignored, e.g. %s", len(extra), lq_folder, extra[0]
        )
    return pairs


def _lmdb_pairing_hint(key: str, lq_keys: list[str]) -> str:
    """A ``filename_tmpl`` that maps HR key ``key`` onto an LR key which contains it, if any does."""
    found = next((k for k in lq_keys if key in k and k != key), None)
    if found is None:
        return ""
    prefix, _, suffix = found.partition(key)
    return f"; the LR key {found!r} contains it: set filename_tmpl: '{prefix}{{}}{suffix}' to pair them"


def paired_refs_from_lmdb(
    gt_lmdb: str | os.PathLike[str], lq_lmdb: str | os.PathLike[str], scale: int, filename_tmpl: str = "{}"
) -> list[tuple[ImageRef, ImageRef]]:
    """Pair LMDB keys: the LR key is ``filename_tmpl`` of the HR key (the same key by default, as BasicSR), or
    with the default ``<key>x<scale>`` too (an LR LMDB made from DIV2K's ``0001x4.png`` files), as for folders.
    Shapes are checked from meta-info up front; a key without a partner is one error naming both LMDBs."""
    gt_entries = {e.key: e for e in read_meta_info(gt_lmdb)}
    lq_entries = {e.key: e for e in read_meta_info(lq_lmdb)}
    pairs = []
    for key, gt in gt_entries.items():
        candidates = [filename_tmpl.format(key)] + ([f"{key}x{scale}"] if filename_tmpl == "{}" else [])
        lq_key = next((c for c in candidates if c in lq_entries), None)
        if lq_key is None:
            lq_keys = list(lq_entries)
            raise LmdbKeyError(  # a ValueError too: commands give it as one line
                f"HR key {key!r} of {gt_lmdb} has no LR partner in {lq_lmdb}: expected the key {candidates[0]!r} "
                f"(filename_tmpl {filename_tmpl!r}); {len(lq_keys)} keys there, e.g. {lq_keys[0]!r}"
                + _lmdb_pairing_hint(key, lq_keys)
            )
        lq = lq_entries[lq_key]
        if (lq.shape[0] * scale, lq.shape[1] * scale) != gt.shape[:2]:
            raise ValueError(
                f"LR/HR size mismatch for key {key!r}: LR {lq_lmdb} records (h,w)=({lq.shape[0]},{lq.shape[1]}), "
                f"x{scale} = ({lq.shape[0] * scale},{lq.shape[1] * scale}), but HR {gt_lmdb} records "
                f"({gt.shape[0]},{gt.shape[1]}); expected the LR to be the HR size / {scale}"
            )
        pairs.append(
            (ImageRef(f"{gt_lmdb}/{key}", key, gt.shape), ImageRef(f"{lq_lmdb}/{lq_key}", lq_key, lq.shape))
        )
    return pairs


def _refs_from_lmdb(lmdb_path: str) -> list[ImageRef]:
    return [ImageRef(f"{lmdb_path}/{e.key}", e.key, e.shape) for e in read_meta_info(lmdb_path)]


def _report(problems: list[str], what: str) -> None:
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ImageReadError(f"{len(problems)} {what} found before training: " + "; ".join(problems[:5]) + more)


def check_image_files(
    pairs: list[tuple[str, str | None]], scale: int, gt_size: int | None
) -> None:
    """The cheap pre-flight of a training set on disk: every file's header and end, and the sizes.

    ``pairs``: (HR path, LR path or None). Finds truncated and unreadable files, LR images whose size
    times ``scale`` is not their HR's, and images smaller than the ``gt_size`` patch, without decoding
    anything; all problems are listed (the first five in the message), each naming its file.
    """
    problems: list[str] = []
    for gt_path, lq_path in pairs:
        try:
            gw, gh = inspect_image_file(gt_path)
            lw, lh = inspect_image_file(lq_path) if lq_path else (gw // scale, gh // scale)
        except ImageReadError as exc:
            problems.append(str(exc))
            continue
        if lq_path and (lw * scale, lh * scale) != (gw, gh):
            problems.append(
                f"LR/HR size mismatch: {lq_path} is {lw}x{lh} (x{scale} = {lw * scale}x{lh * scale}) "
                f"but {gt_path} is {gw}x{gh}"
            )
        elif gt_size and (gw < gt_size or gh < gt_size):
            problems.append(f"patch larger than image: {gt_path} is {gw}x{gh} (WxH) but gt_size is {gt_size}")
    _report(problems, "bad training image(s)")


class PairedImageDataset(Dataset):
    """HR (GT) and LR (LQ) images paired by name, from folders or LMDBs (``io_backend.type``)."""

    def __init__(self, opt: DatasetOptions) -> None:
        opt.validate(f"datasets.{opt.phase}")
        self.opt = opt
        self.scale = opt.scale
        self.lmdb = opt.io_backend.type == "lmdb"
        self._readers: dict[str, LmdbReader] = {}
        self.pairs = self._make_pairs()
        if self.lmdb:
            self._readers["gt"].check_keys(gt.key for gt, _ in self.pairs)  # type: ignore[misc]
            self._readers["lq"].check_keys(lq.key for _, lq in self.pairs)  # type: ignore[misc]
            if opt.is_train:
                self._check_patch_fits()
        elif opt.is_train:
            check_image_files([(gt.path, lq.path) for gt, lq in self.pairs], self.scale, opt.gt_size)

    def _make_pairs(self) -> list[tuple[ImageRef, ImageRef]]:
        opt = self.opt
        assert opt.dataroot_lq is not None  # validate() guarantees it
        if self.lmdb:
            self._readers = {"gt": LmdbReader(opt.dataroot_gt), "lq": LmdbReader(opt.dataroot_lq)}
            return paired_refs_from_lmdb(opt.dataroot_gt, opt.dataroot_lq, opt.scale, opt.filename_tmpl)
        return paired_refs_from_folders(
            opt.dataroot_gt, opt.dataroot_lq, opt.filename_tmpl, opt.scale, opt.meta_info_file
        )

    def _check_patch_fits(self) -> None:
        # Shapes are known from meta_info.txt: report a too-small image before training starts.
        gt_size = self.opt.gt_size or 0
        for gt, _ in self.pairs:
            if gt.shape is not None and (gt.shape[0] < gt_size or gt.shape[1] < gt_size):
                raise ValueError(
                    f"patch larger than image: {gt.path} is {gt.shape[1]}x{gt.shape[0]} (WxH) but gt_size is "
                    f"{gt_size}; expected images of at least {gt_size}x{gt_size}: lower gt_size or remove the image"
                )

    def __len__(self) -> int:
        return len(self.pairs)

    def _read(self, ref: ImageRef, side: str) -> np.ndarray:
        if ref.key is not None:
            try:
                img = self._readers[side].read_image(ref.key)
            except KeyError as exc:
                raise ImageReadError(str(exc).strip("'\"")) from None
        else:
            img = imread(ref.path)
        if img.dtype not in (np.uint8, np.uint16):
            raise ImageReadError(f"{ref.path}: unsupported dtype {img.dtype}; expected 8- or 16-bit images")
        return to_rgb(img)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        gt_ref, lq_ref = self.pairs[index]
        img_gt = self._read(gt_ref, "gt")
        img_lq = self._read(lq_ref, "lq")
        opt = self.opt
        if opt.is_train:
            img_gt, img_lq = paired_random_crop(
                img_gt, img_lq, opt.gt_size, self.scale, gt_ref.path, lq_ref.path  # type: ignore[arg-type]
            )
            img_gt, img_lq = augment_pair([img_gt, img_lq], opt.use_hflip, opt.use_rot)
        else:
            # Benchmark HR images are not always multiples of the scale; their LR comes from modcrop(HR).
            img_gt = mod_crop(img_gt, self.scale)
            check_pair_size(img_gt, img_lq, self.scale, gt_ref.path, lq_ref.path)
        return {"lq": img2tensor(img_lq), "gt": img2tensor(img_gt), "lq_path": lq_ref.path, "gt_path": gt_ref.path}


def hr_image_refs(dataroot: str, lmdb: bool, meta_info: str | None) -> tuple[LmdbReader | None, list[ImageRef]]:
    """The HR images of an HR-only dataset: an LMDB's keys (every one checked to be there), a ``meta_info``
    list of names under ``dataroot``, or the image files of the folder. Returns the LMDB reader (None for
    files) and the references; an empty set is an error naming ``dataroot``."""
    reader = None
    if lmdb:
        reader = LmdbReader(dataroot)
        refs = _refs_from_lmdb(dataroot)
    elif meta_info:
        refs = [ImageRef(str(Path(dataroot) / n)) for n in _read_names(meta_info)]
    else:
        refs = [ImageRef(str(p)) for p in _scan_folder(Path(dataroot)).values()]
    if not refs:
        raise ValueError(f"no HR images in {dataroot}")
    if reader is not None:
        reader.check_keys(ref.key for ref in refs)
    return reader, refs


class SingleHRDataset(Dataset):
    """HR images only; the LR input is ``imresize(HR, 1/scale)`` (MATLAB bicubic) computed on the fly.

    Training crops the GT patch first and downscales the (augmented) patch, so LR patches are
    exactly the bicubic-downscaled GT patches. ``lq_path`` equals ``gt_path``.
    """

    def __init__(self, opt: DatasetOptions) -> None:
        opt.validate(f"datasets.{opt.phase}")
        self.opt = opt
        self.scale = opt.scale
        self.lmdb = opt.io_backend.type == "lmdb"
        self._reader, self.refs = hr_image_refs(opt.dataroot_gt, self.lmdb, opt.meta_info_file)
        if self._reader is None and opt.is_train:
            check_image_files([(ref.path, None) for ref in self.refs], self.scale, opt.gt_size)

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        from esrgan.imageops.imresize import imresize

        ref = self.refs[index]
        img_gt = self._reader.read_image(ref.key) if self._reader and ref.key else imread(ref.path)
        img_gt = to_rgb(img_gt)
        opt = self.opt
        if opt.is_train:
            img_gt = random_crop(img_gt, opt.gt_size, ref.path)  # type: ignore[arg-type]
            (img_gt,) = augment_pair([img_gt], opt.use_hflip, opt.use_rot)
        else:
            img_gt = mod_crop(img_gt, self.scale)
        img_lq = imresize(img_gt, 1.0 / self.scale)
        return {"lq": img2tensor(img_lq), "gt": img2tensor(img_gt), "lq_path": ref.path, "gt_path": ref.path}
