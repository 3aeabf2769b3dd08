"""Comparison pictures: the same crop of several results side by side, each with a caption.

Pure numpy/OpenCV on uint8 images (HW grey or HWC RGB); the caller writes the result.
The crop is chosen where a reference result (bicubic, or the difference between two
interpolation endpoints) is worst, because that is where methods differ visibly.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from esrgan.data.image import to_rgb

CAPTION_HEIGHT = 22
GAP = 4
BACKGROUND = 255


def error_map(img: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-pixel absolute error (mean over channels), HW float64, images in any common range."""
    if img.shape != ref.shape:
        raise ValueError(f"error_map: shapes differ, {img.shape} vs {ref.shape}")
    diff = np.abs(img.astype(np.float64) - ref.astype(np.float64))
    return diff.mean(axis=2) if diff.ndim == 3 else diff


def default_crop_size(height: int, width: int) -> int:
    """A quarter of the short side, kept within [32, 128] px and inside the image."""
    return int(min(height, width, max(32, min(128, min(height, width) // 4))))


def select_crop(err: np.ndarray, size: int, border: int = 0) -> tuple[int, int]:
    """(top, left) of the ``size`` x ``size`` window with the largest summed ``err``.

    ``border`` pixels at each edge are excluded (they are not scored either); ties go to
    the top-left-most window, so the choice is deterministic.
    """
    h, w = err.shape
    if size > h or size > w:
        raise ValueError(f"select_crop: crop {size} larger than the {w}x{h} image")
    b = border if size + 2 * border <= min(h, w) else 0
    region = err[b : h - b, b : w - b]
    # Summed-area table: every window sum in O(1).
    sat = np.zeros((region.shape[0] + 1, region.shape[1] + 1))
    sat[1:, 1:] = region.cumsum(0).cumsum(1)
    sums = sat[size:, size:] - sat[:-size, size:] - sat[size:, :-size] + sat[:-size, :-size]
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top) + b, int(left) + b


def crop(img: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    return img[top : top + size, left : left + size]


def _caption(text: str, width: int, lines: int = 1) -> np.ndarray:
    """A white band of ``lines`` caption rows; ``text`` lines (split at newlines) are centred in them."""
    band = np.full((CAPTION_HEIGHT * lines, width, 3), BACKGROUND, np.uint8)
    for i, line in enumerate(text.split("\n")[:lines]):
        band[i * CAPTION_HEIGHT : (i + 1) * CAPTION_HEIGHT] = _caption_line(line, width)
    return band


def _caption_line(text: str, width: int) -> np.ndarray:
    band = np.full((CAPTION_HEIGHT, width, 3), BACKGROUND, np.uint8)
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    scale = 0.45
    # Shrink the font until the label fits the tile; very long labels are cut.
    while scale > 0.25 and cv2.getTextSize(text, font, scale, thickness)[0][0] > width - 4:
        scale -= 0.05
    while len(text) > 1 and cv2.getTextSize(text, font, scale, thickness)[0][0] > width - 4:
        text = text[:-2] + "~"
    (tw, th), _ = cv2.getTextSize(text, font, scale, thickness)
    org = (max(2, (width - tw) // 2), (CAPTION_HEIGHT + th) // 2)
    cv2.putText(band, text, org, font, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return band


def side_by_side(tiles: Sequence[np.ndarray], labels: Sequence[str], zoom: int = 1) -> np.ndarray:
    """Tiles (same size, uint8, grey or RGB) enlarged by ``zoom`` (nearest: pixels stay visible),
    each above its caption (a newline starts a second caption row), left to right with a white gap.
    Returns HWC RGB uint8."""
    if len(tiles) != len(labels):
        raise ValueError(f"side_by_side: {len(tiles)} tiles but {len(labels)} labels")
    if not tiles:
        raise ValueError("side_by_side: no tiles")
    shape = tiles[0].shape[:2]
    lines = max(label.count("\n") + 1 for label in labels)
    columns = []
    for tile, label in zip(tiles, labels):
        if tile.shape[:2] != shape:
            raise ValueError(f"side_by_side: tile {label!r} is {tile.shape[:2]}, expected {shape}")
        if tile.dtype != np.uint8:
            raise TypeError(f"side_by_side: tile {label!r} has dtype {tile.dtype}, expected uint8")
        big = to_rgb(tile)
        if zoom > 1:
            big = np.repeat(np.repeat(big, zoom, axis=0), zoom, axis=1)
        columns.append(np.concatenate([big, _caption(label, big.shape[1], lines)], axis=0))
    gap = np.full((columns[0].shape[0], GAP, 3), BACKGROUND, np.uint8)
    parts: list[np.ndarray] = []
    for i, col in enumerate(columns):
        if i:
            parts.append(gap)
        parts.append(col)
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def display_zoom(size: int, target: int = 192) -> int:
    """Integer zoom that brings a ``size`` px crop close to ``target`` px on screen."""
    return max(1, round(target / size))


def comparison_picture(
    images: Sequence[np.ndarray],
    labels: Sequence[str],
    reference_error: np.ndarray,
    border: int = 0,
    size: int | None = None,
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Crop every image at the window where ``reference_error`` is largest; returns the picture
    and the crop as (top, left, size)."""
    h, w = reference_error.shape
    size = default_crop_size(h, w) if size is None else min(size, h, w)
    top, left = select_crop(reference_error, size, border)
    tiles = [crop(img, top, left, size) for img in images]
    return side_by_side(tiles, labels, zoom=display_zoom(size)), (top, left, size)
