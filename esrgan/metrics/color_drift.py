"""Colour drift of an upscaler: how far the output's colours moved from the input's, in CIEDE2000 units.

``color_drift(output, source)`` shrinks the output to the source's size (area average: what a viewer sees of
the enlargement from afar) and takes the mean CIEDE2000 colour difference (Sharma, Wu & Dalal 2005;
kL = kC = kH = 1) between the two, in CIELAB computed from sRGB with the D65 white as scikit-image does. 1 is
about the smallest difference a viewer notices side by side; skin turning yellow or white turning cream is a
few units. Sharpening alone moves it little: the area average keeps a detail's mean colour.

Conventions: HWC RGB (sRGB, 8-bit scale) arrays with values in [0, 255], uint8, uint16 scaled to 8 bits
by the caller, or float; an HW or HWC single-channel image is taken as grey (R = G = B); alpha is not
scored (a 4th channel is dropped).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["CONVENTION", "ciede2000", "color_drift", "rgb_to_lab"]

# How reports and tables describe it.
CONVENTION = "mean CIEDE2000 between the output area-shrunk to the input's size and the input"

# sRGB (linear) -> XYZ, and the D65 2-degree white point, as scikit-image's rgb2lab uses them.
_RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_D65 = np.array([0.95047, 1.0, 1.08883])


def _as_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an HW or HWC image with 1, 3 or 4 channels; got shape {img.shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return img[:, :, :3].astype(np.float64)


def rgb_to_lab(img: np.ndarray) -> np.ndarray:
    """sRGB HWC in [0, 255] -> CIELAB (L in [0, 100]), float64, D65 white: scikit-image's ``rgb2lab``."""
    rgb = _as_rgb(img) / 255.0
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ _RGB_TO_XYZ.T / _D65
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 difference between CIELAB colours (last axis L, a, b), element-wise; kL = kC = kH = 1."""
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    L1, a1, b1 = np.moveaxis(lab1, -1, 0)
    L2, a2, b2 = np.moveaxis(lab2, -1, 0)
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    # hue difference and mean hue; a colour with no chroma has no hue (its terms are 0 by definition)
    no_hue = c1p * c2p == 0
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(no_hue, 0.0, dh)
    dL, dC = L2 - L1, c2p - c1p
    dH = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)
    L_bar, cp_bar = (L1 + L2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_bar = np.where(np.abs(h1p - h2p) > 180, np.where(h_sum < 360, h_sum + 360, h_sum - 360), h_sum) / 2
    h_bar = np.where(no_hue, h_sum, h_bar)
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))  # fmt: skip
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    s_l = 1 + 0.015 * (L_bar - 50) ** 2 / np.sqrt(20 + (L_bar - 50) ** 2)
    s_c = 1 + 0.045 * cp_bar
    s_h = 1 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((dL / s_l) ** 2 + (dC / s_c) ** 2 + (dH / s_h) ** 2 + r_t * (dC / s_c) * (dH / s_h))


def color_drift(output: np.ndarray, source: np.ndarray) -> float:
    """Mean CIEDE2000 between ``output`` area-downscaled to ``source``'s size and ``source``.

    ``output``, ``source``: HWC RGB (or HW grey) sRGB in [0, 255]; ``output`` at least as large as ``source``
    on both sides (any ratio; a whole-number scale averages exact blocks).
    """
    out, src = _as_rgb(output), _as_rgb(source)
    h, w = src.shape[:2]
    if out.shape[0] < h or out.shape[1] < w or min(h, w) < 1:
        raise ValueError(f"color_drift: the output ({out.shape[1]}x{out.shape[0]}) must be at least as large as "
                         f"the source ({w}x{h})")
    small = out if out.shape[:2] == (h, w) else cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)
    return float(ciede2000(rgb_to_lab(small), rgb_to_lab(src)).mean())
