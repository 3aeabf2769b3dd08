"""Datasets of Real-ESRGAN training: HR patches with their blur kernels, and real LR/HR pairs for fine-tuning.

``RealESRGANDataset`` (HR only): each item is a ``crop_pad_size`` (400) HR crop, flipped/rotated,
with the three kernels drawn for it (``kernel1``, ``kernel2`` padded to ``blur_kernel_size(2)``,
``sinc_kernel`` 21x21); the LR is made later on the training device
(``esrgan.data.degradations.pipeline``). Item keys are BasicSR's: ``gt`` (CHW float32 RGB in [0, 1]),
``kernel1``, ``kernel2``, ``sinc_kernel``, ``gt_path``. Images smaller than the crop are padded by
reflection first, as in BasicSR. The draws (flips, crop, kernels) are BasicSR 1.4.2's, in its order.

``RealESRGANPairedDataset``: ``PairedImageDataset`` with Real-ESRGAN's ``meta_info`` of
``gt_path, lq_path`` lines (relative to the dataroots) as an alternative to pairing by name.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from esrgan.data.degradations.kernel_draws import blur_rounds, draw_sample_kernels
from esrgan.data.image import ImageReadError, img2tensor, imread, to_rgb
from esrgan.data.paired_dataset import (
    ImageRef,
    PairedImageDataset,
    check_image_files,
    hr_image_refs,
)
from esrgan.data.transforms import augment_pair
from esrgan.options.datasets import RealESRGANDatasetOptions

logger = logging.getLogger("esrgan.data.dataset")


def crop_or_pad(img: np.ndarray, size: int, rng: random.Random | None = None) -> np.ndarray:
    """Reflect-pad (bottom/right, OpenCV's REFLECT_101) to at least ``size``, then a random ``size`` crop."""
    r = rng if rng is not None else random._inst  # type: ignore[attr-defined]
    h, w = img.shape[:2]
    if h < size or w < size:
        pad = ((0, max(0, size - h)), (0, max(0, size - w))) + ((0, 0),) * (img.ndim - 2)
        img = np.pad(img, pad, mode="reflect")
    h, w = img.shape[:2]
    if h > size or w > size:
        top = r.randint(0, h - size)
        left = r.randint(0, w - size)
        img = img[top : top + size, left : left + size, ...]
    return img


class RealESRGANDataset(Dataset):
    """HR images (folder, folder + ``meta_info``, or LMDB) -> HR crop + the sample's blur kernels."""

    def __init__(self, opt: RealESRGANDatasetOptions) -> None:
        opt.validate(f"datasets.{opt.phase}")
        self.opt = opt
        # Before step 1: every LMDB key there, or every file whole (headers and ends, no decoding).
        self._reader, self.refs = hr_image_refs(opt.dataroot_gt, opt.io_backend.type == "lmdb", opt.meta_info)
        if self._reader is None:
            check_image_files([(ref.path, None) for ref in self.refs], 1, None)
        self.first, self.second = blur_rounds(opt)

    def __len__(self) -> int:
        return len(self.refs)

    def _read(self, ref: ImageRef) -> np.ndarray:
        img = self._reader.read_image(ref.key) if self._reader is not None and ref.key else imread(ref.path)
        if img.dtype not in (np.uint8, np.uint16):
            raise ImageReadError(f"{ref.path}: unsupported dtype {img.dtype}; expected 8- or 16-bit images")
        return to_rgb(img)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        opt = self.opt
        ref = self.refs[index]
        img = self._read(ref)
        (img,) = augment_pair([img], opt.use_hflip, opt.use_rot)
        img = crop_or_pad(img, opt.crop_pad_size)
        kernel1, kernel2, sinc = draw_sample_kernels(self.first, self.second, opt.final_sinc_prob)
        return {
            "gt": img2tensor(np.ascontiguousarray(img)),
            "kernel1": torch.from_numpy(kernel1).float(),
            "kernel2": torch.from_numpy(kernel2).float(),
            "sinc_kernel": torch.from_numpy(sinc).float(),
            "gt_path": ref.path,
        }


def _pairs_from_meta_info(opt: RealESRGANDatasetOptions) -> list[tuple[ImageRef, ImageRef]]:
    """Real-ESRGAN's paired meta_info: one ``gt_relpath, lq_relpath`` per line."""
    path = Path(opt.meta_info or "")
    if not path.is_file():
        raise FileNotFoundError(f"datasets.{opt.phase}.meta_info: {path} not found")
    pairs = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2:
            raise ValueError(f"{path}:{n}: expected 'gt_path, lq_path', got {line!r}")
        gt, lq = Path(opt.dataroot_gt) / parts[0], Path(opt.dataroot_lq or "") / parts[1]
        for p in (gt, lq):
            if not p.is_file():
                raise FileNotFoundError(f"{path}:{n}: {p} does not exist")
        pairs.append((ImageRef(str(gt)), ImageRef(str(lq))))
    if not pairs:
        raise ValueError(f"{path}: meta_info lists no pairs")
    return pairs


class RealESRGANPairedDataset(PairedImageDataset):
    """Real LR/HR pairs for fine-tuning; pairs by ``meta_info`` (``gt, lq`` per line) or by name."""

    opt: RealESRGANDatasetOptions

    def _make_pairs(self) -> list[tuple[ImageRef, ImageRef]]:
        if self.opt.io_backend.type == "disk" and self.opt.meta_info:
            return _pairs_from_meta_info(self.opt)
        return super()._make_pairs()
