"""NIQE (Natural Image Quality Evaluator), as the official MATLAB release computes it.

Mittal, Soundararajan, Bovik, "Making a 'Completely Blind' Image Quality Analyzer" (2013).
No reference image: the score is the distance between a multivariate Gaussian fitted to
the image's natural-scene statistics and one fitted to pristine photographs (the MATLAB
release's ``mu_prisparam`` / ``cov_prisparam``, shipped in ``data/niqe_pris_params.npz``).
Lower is better.

What matches the MATLAB release (and BasicSR's ``calculate_niqe``):
- the image is rounded to integers, cropped to whole 96x96 blocks (no overlap);
- MSCN coefficients with a 7x7 Gaussian window (sigma 7/6), borders replicated,
  ``(I - mu) / (sigma + 1)``;
- per block, 18 AGGD features (shape picked on MATLAB's 0.2:0.001:10 grid; products of
  neighbours along 4 directions, wrapping inside the block as ``circshift``);
- the same on the image shrunk by 0.5 with MATLAB's bicubic ``imresize`` (48x48 blocks);
- NaN features dropped from the covariance (``nancov``) and ignored in the mean (``nanmean``);
- ``sqrt((mu_p - mu_d) pinv((S_p + S_d) / 2) (mu_p - mu_d)')``.

The arithmetic is float32 where BasicSR's is (colour conversion, MSCN, block statistics):
NIQE is sensitive to it on smooth images (float64 moves it by up to 2e-2), and the float32
values are the ones that agree with MATLAB's published example (Set14 baboon, Y:
5.72957338; float32 gives 5.72958, float64 5.72996). An image with exactly one block gets a
zero covariance, as MATLAB's ``cov`` of one observation (BasicSR's ``np.cov`` returns NaN).
All blocks are processed at once with numpy; nothing loops over pixels or blocks in Python.
"""

from __future__ import annotations

import functools
import math
from importlib import resources

import cv2
import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma

from esrgan.imageops.imresize import imresize

__all__ = ["NIQE_BLOCK", "niqe", "niqe_features"]

NIQE_BLOCK = 96
# MATLAB rgb2ycbcr's Y weights in B, G, R order (the reference's summation order).
_Y_WEIGHTS_BGR = np.array([24.966, 128.553, 65.481])
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@functools.lru_cache(maxsize=1)
def _params() -> dict[str, np.ndarray]:
    with resources.files("esrgan.metrics").joinpath("data/niqe_pris_params.npz").open("rb") as f:
        data = np.load(f)
        return {k: data[k].astype(np.float64) for k in ("mu_pris_param", "cov_pris_param", "gaussian_window")}


@functools.lru_cache(maxsize=1)
def _gamma_table() -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's grid gam = 0.2:0.001:10 and r(gam) = G(2/g)^2 / (G(1/g) G(3/g)) (strictly increasing)."""
    gam = np.arange(0.2, 10.001, 0.001)
    r = np.square(gamma(2 / gam)) / (gamma(1 / gam) * gamma(3 / gam))
    return gam, r


def _nearest_on_grid(x: np.ndarray) -> np.ndarray:
    """Index of ``argmin((r_gam - x)^2)`` for each x (first on ties; 0 for NaN as MATLAB's ``min``)."""
    _, r = _gamma_table()
    i = np.clip(np.searchsorted(r, x), 1, r.size - 1)
    lo = i - 1
    # r is increasing, so the nearest grid value is one of the two neighbours of the insertion point.
    pick = np.where(np.square(r[lo] - x) <= np.square(r[i] - x), lo, i)
    return np.where(np.isnan(x), 0, pick)


def _aggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian fit per row of ``x`` (n, m): (alpha, beta_l, beta_r)."""
    x2 = x * x
    neg, pos = x < 0, x > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(np.where(neg, x2, 0.0).sum(axis=1) / neg.sum(axis=1))
        right_std = np.sqrt(np.where(pos, x2, 0.0).sum(axis=1) / pos.sum(axis=1))
        gammahat = left_std / right_std
        rhat = np.square(np.abs(x).mean(axis=1)) / x2.mean(axis=1)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / np.square(gammahat**2 + 1)
        gam, _ = _gamma_table()
        alpha = gam[_nearest_on_grid(rhatnorm)]
        factor = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left_std * factor, right_std * factor


def _block_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """18 features per ``block`` x ``block`` tile of ``mscn`` (blocks in MATLAB's column-major order)."""
    h, w = mscn.shape
    nh, nw = h // block, w // block
    blocks = mscn[: nh * block, : nw * block].reshape(nh, block, nw, block).transpose(2, 0, 1, 3)
    blocks = blocks.reshape(nh * nw, block, block)
    flat = blocks.reshape(nh * nw, -1)
    alpha, bl, br = _aggd(flat)
    feats = [alpha, (bl + br) / 2]
    for shift in _SHIFTS:
        prod = (blocks * np.roll(blocks, shift, axis=(1, 2))).reshape(nh * nw, -1)
        alpha, bl, br = _aggd(prod)
        with np.errstate(invalid="ignore"):
            mean = (br - bl) * (gamma(2 / alpha) / gamma(1 / alpha))
        feats += [alpha, mean, bl, br]
    return np.stack(feats, axis=1)


def _mscn(img: np.ndarray) -> np.ndarray:
    """MSCN coefficients of a float32 image; float32 throughout as the reference computes them."""
    window = _params()["gaussian_window"]
    mu = convolve(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(convolve(img * img, window, mode="nearest") - mu * mu))
    return (img - mu) / (sigma + 1)


def niqe_features(img: np.ndarray, block: int = NIQE_BLOCK) -> np.ndarray:
    """The (blocks, 36) feature matrix of a 2-D float image in [0, 255] (already rounded, cropped)."""
    h, w = img.shape
    img = img[: h // block * block, : w // block * block]
    fine = _block_features(_mscn(img), block)
    half = imresize(img, 0.5)
    coarse = _block_features(_mscn(half), block // 2)
    return np.concatenate([fine, coarse], axis=1)


def _to_plane(img: np.ndarray, convert_to: str) -> np.ndarray:
    if not isinstance(img, np.ndarray):
        raise TypeError(f"niqe: image must be a numpy array, got {type(img).__name__}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    x = img.astype(np.float64) / 257.0 if img.dtype == np.uint16 else img
    if x.ndim == 2:
        return x.astype(np.float32)  # single-channel images are scored on their own values
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"niqe: image must be HW or HWC RGB, got shape {img.shape}")
    # The reference's float32 arithmetic, step by step: the result is rounded to integers next,
    # and a value landing on the other side of .5 moves NIQE by up to 1e-2 on smooth images.
    x = x.astype(np.float32) / np.float32(255)
    if convert_to == "y":
        y = x[:, :, ::-1] @ _Y_WEIGHTS_BGR + 16.0
        return (y / 255.0).astype(np.float32) * np.float32(255)
    # OpenCV's BGR and RGB kernels round differently in the last bit: use the reference's (BGR).
    return cv2.cvtColor(np.ascontiguousarray(x[:, :, ::-1]), cv2.COLOR_BGR2GRAY) * np.float32(255)


def niqe(img: np.ndarray, crop_border: int = 0, convert_to: str = "y") -> float:
    """NIQE of an HWC RGB (or HW grey) image with values in [0, 255] (uint8, float; uint16 is /257).

    ``convert_to``: ``"y"`` (MATLAB ``rgb2ycbcr`` Y, the SR literature's choice) or ``"gray"``
    (0.299 R + 0.587 G + 0.114 B); ``crop_border`` pixels are removed on each side first.
    The image must hold at least one 96x96 block after cropping. Lower is better.
    """
    if convert_to not in ("y", "gray"):
        raise ValueError(f"niqe: convert_to must be 'y' or 'gray', got {convert_to!r}")
    if int(crop_border) != crop_border or crop_border < 0:
        raise ValueError(f"niqe: crop_border must be a non-negative integer, got {crop_border!r}")
    plane = _to_plane(img, convert_to)
    crop_border = int(crop_border)
    if crop_border:
        plane = plane[crop_border:-crop_border, crop_border:-crop_border]
    h, w = plane.shape
    if h < NIQE_BLOCK or w < NIQE_BLOCK:
        raise ValueError(
            f"niqe: image of {max(h, 0)}x{max(w, 0)} pixels (after crop_border={crop_border}) is smaller than "
            f"one {NIQE_BLOCK}x{NIQE_BLOCK} block"
        )
    # MATLAB works on the rounded (integer) image.
    feats = niqe_features(np.round(plane))
    mu_p, cov_p = _params()["mu_pris_param"], _params()["cov_pris_param"]
    valid = feats[~np.isnan(feats).any(axis=1)]
    if valid.shape[0] == 0:
        return math.nan  # no block has defined statistics (a flat image)
    mu_d = np.nanmean(feats, axis=0)
    cov_d = np.cov(valid, rowvar=False) if valid.shape[0] > 1 else np.zeros_like(cov_p)
    d = mu_p - mu_d
    quality = d @ np.linalg.pinv((cov_p + cov_d) / 2) @ d
    return float(np.sqrt(quality))
