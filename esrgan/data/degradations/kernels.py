"""Blur kernels of Real-ESRGAN's degradation model, as numpy arrays (drawn in the data workers).

Kernels are ``(k, k)`` float64 arrays that sum to 1, indexed ``[row, col]`` = ``[y, x]`` with the
centre at ``(k // 2, k // 2)``; ``k`` is odd. A kernel's "sigma" is the standard deviation in
pixels of the (un-normalised) Gaussian it is built from; ``theta`` rotates its covariance
counter-clockwise in the ``(x, y)`` plane (radians).

The random draws are BasicSR 1.4.2's, in the same order and from the same kinds of generator
(``random`` for choices, NumPy's legacy ``RandomState`` for uniforms), so for the same generator
states both draw the same kernels. Every ``random_*`` function takes the generators explicitly
(``py_rng``, ``np_rng``); ``None`` means the module-level ones, which the training loader seeds
per sample.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np

from esrgan.options.datasets import KERNEL_TYPES


def _py(rng: random.Random | None) -> random.Random:
    return rng if rng is not None else random._inst  # type: ignore[attr-defined]


def _np(rng: np.random.RandomState | None) -> np.random.RandomState:
    return rng if rng is not None else np.random.mtrand._rand  # type: ignore[attr-defined]


def _check_size(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd number, got {kernel_size}")


def mesh_grid(kernel_size: int) -> np.ndarray:
    """``(k, k, 2)`` array of ``(x, y)`` offsets from the centre pixel (x along columns)."""
    _check_size(kernel_size)
    ax = np.arange(-(kernel_size // 2), kernel_size // 2 + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def covariance(sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    """Covariance ``R diag(sig_x^2, sig_y^2) R^T`` with ``R`` the rotation by ``theta``."""
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    return rot @ np.diag([sig_x**2, sig_y**2]) @ rot.T


def _quadratic_form(kernel_size: int, sig_x: float, sig_y: float, theta: float, isotropic: bool) -> np.ndarray:
    """``d^T C^-1 d`` for every offset ``d`` of the grid (the squared Mahalanobis distance)."""
    cov = np.diag([sig_x**2, sig_x**2]) if isotropic else covariance(sig_x, sig_y, theta)
    grid = mesh_grid(kernel_size)
    inv = np.linalg.inv(cov)
    return np.sum((grid @ inv) * grid, axis=-1)


def _normalise(kernel: np.ndarray) -> np.ndarray:
    return kernel / np.sum(kernel)


def gaussian_kernel(
    kernel_size: int, sig_x: float, sig_y: float | None = None, theta: float = 0.0, isotropic: bool = True
) -> np.ndarray:
    """Bivariate Gaussian ``exp(-d^T C^-1 d / 2)``, normalised; isotropic uses ``sig_x`` only."""
    q = _quadratic_form(kernel_size, sig_x, sig_x if sig_y is None else sig_y, theta, isotropic)
    return _normalise(np.exp(-0.5 * q))


def generalized_gaussian_kernel(
    kernel_size: int, sig_x: float, sig_y: float | None, theta: float, beta: float, isotropic: bool = True
) -> np.ndarray:
    """Generalised Gaussian ``exp(-(d^T C^-1 d)^beta / 2)`` (beta = 1: Gaussian; large beta: flat top)."""
    q = _quadratic_form(kernel_size, sig_x, sig_x if sig_y is None else sig_y, theta, isotropic)
    return _normalise(np.exp(-0.5 * np.power(q, beta)))


def plateau_kernel(
    kernel_size: int, sig_x: float, sig_y: float | None, theta: float, beta: float, isotropic: bool = True
) -> np.ndarray:
    """Plateau ``1 / (1 + (d^T C^-1 d)^beta)``: flat near the centre, heavy tails."""
    q = _quadratic_form(kernel_size, sig_x, sig_x if sig_y is None else sig_y, theta, isotropic)
    return _normalise(1.0 / (np.power(q, beta) + 1.0))


def circular_lowpass_kernel(cutoff: float, kernel_size: int, pad_to: int = 0) -> np.ndarray:
    """2-D sinc (ideal circular low-pass, cutoff in radians, pi = Nyquist), normalised; zero-padded to ``pad_to``.

    ``h(r) = cutoff * J1(cutoff * r) / (2 pi r)``, with its limit ``cutoff^2 / (4 pi)`` at ``r = 0``.
    Truncating it to ``kernel_size`` is what makes the ringing and overshoot artifacts.
    """
    from scipy import special

    _check_size(kernel_size)
    grid = mesh_grid(kernel_size)
    r = np.sqrt(np.sum(grid**2, axis=-1))
    centre = kernel_size // 2
    r[centre, centre] = 1.0  # placeholder, replaced by the limit below
    kernel = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    kernel[centre, centre] = cutoff**2 / (4 * np.pi)
    kernel = _normalise(kernel)
    return pad_kernel(kernel, pad_to) if pad_to > kernel_size else kernel


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a centred odd ``(k, k)`` kernel to ``(size, size)`` (kernels of a batch share one size)."""
    k = kernel.shape[0]
    if size < k or (size - k) % 2:
        raise ValueError(f"cannot pad a {k}x{k} kernel to {size}x{size} (need an odd size >= {k})")
    p = (size - k) // 2
    return np.pad(kernel, ((p, p), (p, p)))


# ---- random kernels (BasicSR's draws) -----------------------------------------------------------


def _draw_shape(
    sigma_x_range: Sequence[float],
    sigma_y_range: Sequence[float],
    rotation_range: Sequence[float],
    isotropic: bool,
    np_rng: np.random.RandomState,
) -> tuple[float, float, float]:
    sig_x = np_rng.uniform(sigma_x_range[0], sigma_x_range[1])
    if isotropic:
        return sig_x, sig_x, 0.0
    sig_y = np_rng.uniform(sigma_y_range[0], sigma_y_range[1])
    theta = np_rng.uniform(rotation_range[0], rotation_range[1])
    return sig_x, sig_y, theta


def _draw_beta(beta_range: Sequence[float], np_rng: np.random.RandomState) -> float:
    # Half the draws below 1 and half above, whatever the range's width (BasicSR's choice).
    if np_rng.uniform() < 0.5:
        return np_rng.uniform(beta_range[0], 1)
    return np_rng.uniform(1, beta_range[1])


def _multiplicative_noise(
    kernel: np.ndarray, noise_range: Sequence[float] | None, np_rng: np.random.RandomState
) -> np.ndarray:
    if noise_range is not None:
        kernel = kernel * np_rng.uniform(noise_range[0], noise_range[1], size=kernel.shape)
    return _normalise(kernel)


def random_mixed_kernel(
    kernel_list: Sequence[str],
    kernel_prob: Sequence[float],
    kernel_size: int = 21,
    sigma_x_range: Sequence[float] = (0.6, 5.0),
    sigma_y_range: Sequence[float] = (0.6, 5.0),
    rotation_range: Sequence[float] = (-math.pi, math.pi),
    betag_range: Sequence[float] = (0.5, 8.0),
    betap_range: Sequence[float] = (0.5, 8.0),
    noise_range: Sequence[float] | None = None,
    *,
    py_rng: random.Random | None = None,
    np_rng: np.random.RandomState | None = None,
) -> np.ndarray:
    """One kernel: its type drawn from ``kernel_list`` with weights ``kernel_prob``, then its parameters.

    Plateau kernels never get the multiplicative ``noise_range`` noise (as in BasicSR).
    """
    pr, nr = _py(py_rng), _np(np_rng)
    kind = pr.choices(list(kernel_list), list(kernel_prob))[0]
    if kind not in KERNEL_TYPES:
        raise ValueError(f"unknown kernel type {kind!r}; known: {', '.join(KERNEL_TYPES)}")
    isotropic = kind.endswith("iso") and not kind.endswith("aniso")
    sig_x, sig_y, theta = _draw_shape(sigma_x_range, sigma_y_range, rotation_range, isotropic, nr)
    if kind in ("iso", "aniso"):
        kernel = gaussian_kernel(kernel_size, sig_x, sig_y, theta, isotropic)
        return _multiplicative_noise(kernel, noise_range, nr)
    if kind.startswith("generalized"):
        beta = _draw_beta(betag_range, nr)
        kernel = generalized_gaussian_kernel(kernel_size, sig_x, sig_y, theta, beta, isotropic)
        return _multiplicative_noise(kernel, noise_range, nr)
    beta = _draw_beta(betap_range, nr)
    return _normalise(plateau_kernel(kernel_size, sig_x, sig_y, theta, beta, isotropic))


def random_sinc_cutoff(kernel_size: int, np_rng: np.random.RandomState | None = None) -> float:
    """Cutoff of a blur-stage sinc: [pi/3, pi] for kernels under 13 pixels, [pi/5, pi] above (less ringing)."""
    low = np.pi / 3 if kernel_size < 13 else np.pi / 5
    return float(_np(np_rng).uniform(low, np.pi))
