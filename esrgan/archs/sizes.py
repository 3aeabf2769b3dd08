"""Input sizes a network takes: at least ``minimum`` pixels, a multiple of ``multiple_of``, maybe square.

The same three fields as spandrel's ``SizeRequirements`` (its descriptors state them for every
architecture), so that our networks and spandrel's are handled alike: training crops are checked
against them when the options load, and validation, ``esrgan test`` and tiling pad an input up to
them and crop the output back (:func:`pad_to_fit`, reflect then replicate, as spandrel pads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SizeRequirements:
    """Height and width (input pixels) a network takes: ``>= minimum``, multiples of ``multiple_of``."""

    minimum: int = 0
    multiple_of: int = 1
    square: bool = False

    def __post_init__(self) -> None:
        if self.minimum < 0 or self.multiple_of < 1:
            raise ValueError(f"SizeRequirements: need minimum >= 0 and multiple_of >= 1, got {self}")

    @property
    def none(self) -> bool:
        return self.minimum == 0 and self.multiple_of == 1 and not self.square

    def padding(self, height: int, width: int) -> tuple[int, int]:
        """``(pad_height, pad_width)``: the fewest pixels to add at the bottom and right to fit."""
        m = self.multiple_of
        h = -(-max(height, self.minimum) // m) * m
        w = -(-max(width, self.minimum) // m) * m
        if self.square:
            h = w = max(h, w)
        return h - height, w - width

    def fits(self, height: int, width: int) -> bool:
        return self.padding(height, width) == (0, 0)

    def describe(self) -> str:
        """``'a multiple of 8 and at least 16 pixels'``: for error messages."""
        parts = [f"a multiple of {self.multiple_of}"] if self.multiple_of > 1 else []
        parts += [f"at least {self.minimum} pixels"] if self.minimum else []
        parts += ["square"] if self.square else []
        return " and ".join(parts) or "any size"

    def merge(self, other: SizeRequirements) -> SizeRequirements:
        """Both at once (the least common multiple, the larger minimum)."""
        return SizeRequirements(
            minimum=max(self.minimum, other.minimum),
            multiple_of=math.lcm(self.multiple_of, other.multiple_of),
            square=self.square or other.square,
        )


def pad_to_fit(x: torch.Tensor, req: SizeRequirements) -> torch.Tensor:
    """``x`` (NCHW) padded at the bottom/right to fit ``req``: mirrored where it can, else edge pixels.

    Callers crop the output back to ``scale x`` the original size.
    """
    ph, pw = req.padding(x.shape[-2], x.shape[-1])
    if not (ph or pw):
        return x
    # reflect pads at most size - 1 pixels; the rest (tiny inputs, big minimums) repeats the edge
    rh, rw = min(ph, x.shape[-2] - 1), min(pw, x.shape[-1] - 1)
    x = F.pad(x, (0, rw, 0, rh), mode="reflect")
    if ph > rh or pw > rw:
        x = F.pad(x, (0, pw - rw, 0, ph - rh), mode="replicate")
    return x
