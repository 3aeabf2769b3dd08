"""Where the tiles of a tiled inference go: pure integer geometry, no tensors.

Every window along an axis has the same length, so that tiles stack into one batch; the windows
are spread evenly over the image and each core extends to the middle of the overlap with its
neighbour, so border tiles (which need context on one side only) get larger cores instead of
wasted context. Positions are multiples of ``multiple`` so that networks that pixel-unshuffle
their input (RRDBNet x2 and x1) see the same pixel grid in a tile as in the whole image.
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


def tile_spans(size: int, tile: int, pad: int, multiple: int = 1) -> list[Span]:
    """Split ``size`` pixels into windows of one length, each core having ``pad`` pixels of context.

    ``size`` must be a multiple of ``multiple``; ``tile`` and ``pad`` are rounded up to it.
    With ``n = ceil((size - 2 pad) / tile)`` windows of length ``ceil((size - 2 pad) / n) + 2 pad``
    (at most ``tile + 2 pad``), evenly spaced, consecutive windows overlap by at least ``2 pad``;
    cores split each overlap in the middle, so every core has at least ``pad`` pixels of context
    on each side that is not an image border, and the cores cover ``[0, size)`` exactly once.
    """
    if size <= 0 or tile <= 0 or pad < 0 or multiple <= 0:
        raise ValueError(f"tile_spans: need size > 0, tile > 0, pad >= 0, multiple > 0; got {size=}, {tile=}, {pad=}")
    if size % multiple:
        raise ValueError(f"tile_spans: size {size} is not a multiple of {multiple}")
    # Work in units of `multiple`, where all the arithmetic is exact, and scale back at the end.
    size_u, tile_u, pad_u = size // multiple, -(-tile // multiple), -(-pad // multiple)
    if tile_u + 2 * pad_u >= size_u:
        return [Span(0, size, 0, size)]
    n = -(-(size_u - 2 * pad_u) // tile_u)
    length = -(-(size_u - 2 * pad_u) // n) + 2 * pad_u
    # spacing <= (size - 2 pad) / n <= length - 2 pad: neighbours overlap by >= 2 pad
    starts = [i * (size_u - length) // (n - 1) for i in range(n)] if n > 1 else [0]
    bounds = [0] + [(starts[i] + length + starts[i + 1]) // 2 for i in range(n - 1)] + [size_u]
    m = multiple
    return [Span(s * m, (s + length) * m, bounds[i] * m, bounds[i + 1] * m) for i, s in enumerate(starts)]


def tile_grid(height: int, width: int, tile: int, pad: int, multiple: int = 1) -> list[Tile]:
    """All tiles of an image, row by row (see :func:`tile_spans`)."""
    return [
        Tile(y, x)
        for y, x in itertools.product(tile_spans(height, tile, pad, multiple), tile_spans(width, tile, pad, multiple))
    ]
