"""Where the tiles of a tiled inference go: pure integer geometry, no tensors.

Every window has the same size, so that tiles can be stacked into one batch:
edge tiles are shifted inward instead of being cut short. Window positions are
multiples of ``multiple`` so that networks that pixel-unshuffle their input
(RRDBNet x2 and x1) see the same pixel grid in a tile as in the whole image.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple


class Span(NamedTuple):
    """One tile along one axis, in input pixels: the window fed to the network and the core kept from it."""

    win_start: int
    win_end: int
    core_start: int
    core_end: int


class Tile(NamedTuple):
    y: Span
    x: Span


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def tile_spans(size: int, tile: int, pad: int, multiple: int = 1) -> list[Span]:
    """Split ``size`` pixels into cores of ``tile`` pixels, each read with ``pad`` pixels of context per side.

    ``size`` must be a multiple of ``multiple``; ``tile`` and ``pad`` are rounded up to it.
    Cores cover ``[0, size)``; the last one is shifted inward (so it overlaps its
    neighbour) rather than shortened, and windows touching an image border are shifted
    inward too, so every window has the same length ``min(tile + 2 * pad, size)`` and
    every core has at least ``pad`` pixels of context on each side that is not an image border.
    """
    if size <= 0 or tile <= 0 or pad < 0 or multiple <= 0:
        raise ValueError(f"tile_spans: need size > 0, tile > 0, pad >= 0, multiple > 0; got {size=}, {tile=}, {pad=}")
    if size % multiple:
        raise ValueError(f"tile_spans: size {size} is not a multiple of {multiple}")
    tile = _round_up(tile, multiple)
    pad = _round_up(pad, multiple)
    if tile >= size:
        return [Span(0, size, 0, size)]
    window = min(tile + 2 * pad, size)
    spans = []
    for i in range(-(-size // tile)):
        core_start = min(i * tile, size - tile)
        win_start = min(max(core_start - pad, 0), size - window)
        spans.append(Span(win_start, win_start + window, core_start, core_start + tile))
    return spans


def tile_grid(height: int, width: int, tile: int, pad: int, multiple: int = 1) -> list[Tile]:
    """All tiles of an image, row by row (see :func:`tile_spans`)."""
    return [
        Tile(y, x)
        for y, x in itertools.product(tile_spans(height, tile, pad, multiple), tile_spans(width, tile, pad, multiple))
    ]
