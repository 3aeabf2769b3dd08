"""The three kernels of one Real-ESRGAN training sample, drawn in the data worker (BasicSR's order of draws).

Per sample: a first-round kernel, a second-round kernel (each a sinc with probability
``sinc_prob`` else a mixed blur kernel of a random odd size from 7 to ``blur_kernel_size``) and a
final sinc (probability ``final_sinc_prob``, else the identity pulse). All are zero-padded to one
size per round so that a batch stacks.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from esrgan.data.degradations.kernels import (
    _np,
    _py,
    circular_lowpass_kernel,
    pad_kernel,
    random_mixed_kernel,
    random_sinc_cutoff,
)

if TYPE_CHECKING:
    from esrgan.options.datasets import RealESRGANDatasetOptions

MIN_KERNEL_SIZE = 7
# The final sinc filter's sizes (BasicSR fixes them at 7..21, independent of the blur settings).
FINAL_SINC_SIZE = 21


@dataclass(frozen=True)
class BlurRound:
    """Blur settings of one degradation round (BasicSR's dataset keys, without the ``2`` suffix).

    The values (and their defaults, the published recipe) come from the dataset options: :func:`blur_rounds`.
    """

    blur_kernel_size: int
    kernel_list: Sequence[str]
    kernel_prob: Sequence[float]
    sinc_prob: float
    blur_sigma: Sequence[float]
    betag_range: Sequence[float]
    betap_range: Sequence[float]

    @property
    def kernel_sizes(self) -> list[int]:
        return list(range(MIN_KERNEL_SIZE, self.blur_kernel_size + 1, 2))


def blur_rounds(ds: RealESRGANDatasetOptions) -> tuple[BlurRound, BlurRound]:
    """The two rounds' kernel settings of a ``RealESRGANDataset`` section (keys without / with ``2``)."""

    def round_(s: str) -> BlurRound:
        return BlurRound(
            getattr(ds, f"blur_kernel_size{s}"),
            tuple(getattr(ds, f"kernel_list{s}")),
            tuple(getattr(ds, f"kernel_prob{s}")),
            getattr(ds, f"sinc_prob{s}"),
            tuple(getattr(ds, f"blur_sigma{s}")),
            tuple(getattr(ds, f"betag_range{s}")),
            tuple(getattr(ds, f"betap_range{s}")),
        )

    return round_(""), round_("2")


def identity_kernel(size: int) -> np.ndarray:
    """A centred unit pulse: filtering with it changes nothing."""
    kernel = np.zeros((size, size))
    kernel[size // 2, size // 2] = 1.0
    return kernel


def draw_blur_kernel(
    blur: BlurRound, py_rng: random.Random | None = None, np_rng: np.random.RandomState | None = None
) -> np.ndarray:
    """One round's kernel, padded to ``blur.blur_kernel_size``."""
    pr, nr = _py(py_rng), _np(np_rng)
    size = pr.choice(blur.kernel_sizes)
    if nr.uniform() < blur.sinc_prob:
        kernel = circular_lowpass_kernel(random_sinc_cutoff(size, nr), size)
    else:
        kernel = random_mixed_kernel(
            blur.kernel_list,
            blur.kernel_prob,
            size,
            blur.blur_sigma,
            blur.blur_sigma,
            (-math.pi, math.pi),
            blur.betag_range,
            blur.betap_range,
            None,
            py_rng=pr,
            np_rng=nr,
        )
    return pad_kernel(kernel, blur.blur_kernel_size)


def draw_final_sinc(
    final_sinc_prob: float, py_rng: random.Random | None = None, np_rng: np.random.RandomState | None = None
) -> np.ndarray:
    """The last filter: a sinc with cutoff in [pi/3, pi] of a random size, or the identity; 21x21."""
    pr, nr = _py(py_rng), _np(np_rng)
    if nr.uniform() < final_sinc_prob:
        size = pr.choice(list(range(MIN_KERNEL_SIZE, FINAL_SINC_SIZE + 1, 2)))
        cutoff = nr.uniform(np.pi / 3, np.pi)
        return circular_lowpass_kernel(cutoff, size, pad_to=FINAL_SINC_SIZE)
    return identity_kernel(FINAL_SINC_SIZE)


def draw_sample_kernels(
    first: BlurRound,
    second: BlurRound,
    final_sinc_prob: float,
    py_rng: random.Random | None = None,
    np_rng: np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(kernel1, kernel2, sinc_kernel)`` for one sample, in BasicSR's order of draws."""
    kernel1 = draw_blur_kernel(first, py_rng, np_rng)
    kernel2 = draw_blur_kernel(second, py_rng, np_rng)
    return kernel1, kernel2, draw_final_sinc(final_sinc_prob, py_rng, np_rng)
