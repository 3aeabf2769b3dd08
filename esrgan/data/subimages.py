"""Cutting large images into overlapping sub-images (BasicSR's DIV2K recipe: 480 px, step 240, thresh 48).

Reading a 2K PNG to crop one 128 px patch wastes most of the decode; sub-images make
random patches cheap. The positions for an LR image at scale s are the HR positions / s,
so HR and LR sub-images cut with ``crop/s, step/s, thresh/s`` stay aligned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np


def crop_positions(length: int, crop_size: int, step: int, thresh_size: int) -> list[int]:
    """Start offsets along one axis: every ``step``, plus a last crop flush with the end.

    The flush crop is added only when the remainder is more than ``thresh_size`` pixels
    (smaller slivers are dropped). An axis shorter than ``crop_size`` gives no crops.
    """
    if length < crop_size:
        return []
    positions = list(range(0, length - crop_size + 1, step))
    if length - (positions[-1] + crop_size) > thresh_size:
        positions.append(length - crop_size)
    return positions


def iter_subimages(
    img: np.ndarray, crop_size: int, step: int, thresh_size: int
) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, crop)`` pairs, index counting from 1 in row-major order (BasicSR's ``_s001`` suffix)."""
    h, w = img.shape[:2]
    index = 0
    for top in crop_positions(h, crop_size, step, thresh_size):
        for left in crop_positions(w, crop_size, step, thresh_size):
            index += 1
            yield index, np.ascontiguousarray(img[top : top + crop_size, left : left + crop_size, ...])


def strip_scale_suffix(stem: str, scale: int) -> str:
    """'0001x4' -> '0001' for scale 4, so LR sub-images get the HR sub-images' names."""
    return re.sub(rf"x{scale}$", "", stem) if scale > 1 else stem


def subimage_name(stem: str, index: int, ext: str = ".png") -> str:
    return f"{stem}_s{index:03d}{ext}"
