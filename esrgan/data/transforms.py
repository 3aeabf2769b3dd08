"""Paired crops and augmentations on numpy images (HWC or HW, any dtype, as read from disk).

The random draws come from a ``random.Random`` (default: the module-level one, which the
loader seeds in every worker), so a pair always receives the same crop and the same
flips: pairing is preserved by construction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np


def _rng(rng: random.Random | None) -> random.Random:
    # random's module functions are bound methods of this hidden instance.
    return rng if rng is not None else random._inst  # type: ignore[attr-defined]


def check_pair_size(img_gt: np.ndarray, img_lq: np.ndarray, scale: int, gt_name: str = "", lq_name: str = "") -> None:
    """Raise ValueError unless the LR size times ``scale`` is exactly the GT size."""
    h_gt, w_gt = img_gt.shape[:2]
    h_lq, w_lq = img_lq.shape[:2]
    if (h_lq * scale, w_lq * scale) != (h_gt, w_gt):
        raise ValueError(
            f"LR/HR size mismatch: LR {lq_name or '<lq>'} is {w_lq}x{h_lq} (WxH), x{scale} = "
            f"{w_lq * scale}x{h_lq * scale}, but HR {gt_name or '<gt>'} is {w_gt}x{h_gt}; "
            f"expected the LR to be the HR size / {scale}"
        )


def paired_random_crop(
    img_gt: np.ndarray,
    img_lq: np.ndarray,
    gt_patch_size: int,
    scale: int,
    gt_name: str = "",
    lq_name: str = "",
    rng: random.Random | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned random crop: an LR patch of ``gt_patch_size // scale`` and the GT patch it maps to.

    The LR top-left corner ``(top, left)`` is drawn uniformly; the GT corner is ``(top*scale, left*scale)``.
    """
    if gt_patch_size % scale:
        raise ValueError(f"GT patch size {gt_patch_size} is not divisible by scale {scale}")
    check_pair_size(img_gt, img_lq, scale, gt_name, lq_name)
    lq_patch = gt_patch_size // scale
    h_lq, w_lq = img_lq.shape[:2]
    if h_lq < lq_patch or w_lq < lq_patch:
        h_gt, w_gt = img_gt.shape[:2]
        raise ValueError(
            f"patch larger than image: {gt_name or '<gt>'} is {w_gt}x{h_gt} (WxH) but gt_size is {gt_patch_size} "
            f"(LR {lq_name or '<lq>'} is {w_lq}x{h_lq}, LR patch {lq_patch}); expected images of at least "
            f"{gt_patch_size}x{gt_patch_size}: lower gt_size or remove the image"
        )
    r = _rng(rng)
    top = r.randint(0, h_lq - lq_patch)
    left = r.randint(0, w_lq - lq_patch)
    lq = img_lq[top : top + lq_patch, left : left + lq_patch, ...]
    gt = img_gt[top * scale : (top + lq_patch) * scale, left * scale : (left + lq_patch) * scale, ...]
    return gt, lq


def random_crop(
    img: np.ndarray, patch_size: int, name: str = "", rng: random.Random | None = None
) -> np.ndarray:
    """Uniform random ``patch_size`` square crop of one image."""
    h, w = img.shape[:2]
    if h < patch_size or w < patch_size:
        raise ValueError(
            f"patch larger than image: {name or '<image>'} is {w}x{h} (WxH) but gt_size is {patch_size}; "
            f"expected images of at least {patch_size}x{patch_size}: lower gt_size or remove the image"
        )
    r = _rng(rng)
    top = r.randint(0, h - patch_size)
    left = r.randint(0, w - patch_size)
    return img[top : top + patch_size, left : left + patch_size, ...]


@dataclass(frozen=True)
class Augmentation:
    """One draw of the dihedral augmentations, applied in this order: hflip, vflip, transpose."""

    hflip: bool = False
    vflip: bool = False
    rot90: bool = False  # transpose H and W; with the flips this covers all 8 rotations/reflections

    @classmethod
    def draw(cls, use_hflip: bool, use_rot: bool, rng: random.Random | None = None) -> Augmentation:
        # Same three coin tosses as BasicSR's ``augment`` (hflip, then vflip/rot90 under ``use_rot``).
        r = _rng(rng)
        hflip = use_hflip and r.random() < 0.5
        vflip = use_rot and r.random() < 0.5
        rot90 = use_rot and r.random() < 0.5
        return cls(hflip, vflip, rot90)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.hflip:
            img = img[:, ::-1, ...]
        if self.vflip:
            img = img[::-1, :, ...]
        if self.rot90:
            img = img.swapaxes(0, 1)
        return np.ascontiguousarray(img)


def augment_pair(
    imgs: list[np.ndarray], use_hflip: bool = True, use_rot: bool = True, rng: random.Random | None = None
) -> list[np.ndarray]:
    """Apply one random flip/rotation draw to every image of ``imgs`` (a GT/LQ pair stays aligned)."""
    aug = Augmentation.draw(use_hflip, use_rot, rng)
    return [aug(img) for img in imgs]
