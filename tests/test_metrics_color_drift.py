"""Colour drift (esrgan.metrics.color_drift): CIELAB and CIEDE2000 against scikit-image and Sharma's table, the
mean at the input's size, its batched form and its entry in the metric table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import deltaE_ciede2000, rgb2lab

from esrgan.metrics import METRIC_TABLE, color_drift_torch
from esrgan.metrics.color_drift import ciede2000, color_drift, rgb_to_lab


def test_lab_and_ciede2000_agree_with_scikit_image() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    img[0, :5] = [[0, 0, 0], [255, 255, 255], [128, 128, 128], [10, 10, 10], [255, 0, 0]]  # greys: no hue
    assert np.abs(rgb_to_lab(img) - rgb2lab(img)).max() < 1e-9
    lab1, lab2 = rgb_to_lab(img), rgb_to_lab(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    lab2[0, :3] = lab1[0, :3] + [5, 0, 0]  # achromatic pairs
    assert np.abs(ciede2000(lab1, lab2) - deltaE_ciede2000(lab1, lab2)).max() < 1e-9


def test_ciede2000_hand_computed() -> None:
    # Sharma, Wu & Dalal (2005), test pair 1 of their table
    assert ciede2000(np.array([50.0, 2.6772, -79.7751]), np.array([50.0, 0.0, -82.7485])) == pytest.approx(2.0425,
                                                                                                            abs=1e-4)
    # greys differing in lightness only: dE = dL / S_L, S_L = 1 + 0.015 (L' - 50)^2 / sqrt(20 + (L' - 50)^2)
    s_l = 1 + 0.015 * 25 / np.sqrt(20 + 25)
    assert ciede2000(np.array([50.0, 0, 0]), np.array([60.0, 0, 0])) == pytest.approx(10 / s_l, abs=1e-12)
    assert ciede2000(np.array([60.0, 10, -3]), np.array([60.0, 10, -3])) == 0


def test_color_drift_is_scale_aware_and_zero_for_a_faithful_enlargement() -> None:
    rng = np.random.default_rng(1)
    src = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    assert color_drift(np.repeat(np.repeat(src, 4, 0), 4, 1), src) == pytest.approx(0, abs=1e-9)
    cast = np.clip(src.astype(int) + np.array([12, 6, -10]), 0, 255).astype(np.uint8)
    expected = deltaE_ciede2000(rgb2lab(cast), rgb2lab(src)).mean()
    assert color_drift(np.repeat(np.repeat(cast, 4, 0), 4, 1), src) == pytest.approx(expected, rel=1e-9)
    assert expected > 3
    grey = src[:, :, 0]
    assert color_drift(np.repeat(np.repeat(grey, 2, 0), 2, 1), grey) == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="at least as large"):
        color_drift(src[:4], src)


def test_detail_inside_a_block_keeps_its_colour_and_the_batched_form_agrees() -> None:
    # a 2x2 input and an x2 output whose blocks average to shifted colours (one block exactly the input's)
    src = np.array([[[200, 30, 40], [20, 180, 60]], [[90, 90, 200], [250, 250, 250]]], np.uint8)
    shifted = src.astype(np.float64) + np.array([[[10, 0, 0], [0, -20, 5]], [[0, 0, 0], [-30, -30, 0]]])
    out = np.repeat(np.repeat(shifted, 2, 0), 2, 1)
    out[0::2, 0::2] += 4  # detail inside a block: the area average keeps the block's mean colour
    out[1::2, 1::2] -= 4
    want = deltaE_ciede2000(rgb2lab(src / 255.0), rgb2lab(shifted / 255.0)).mean()
    assert color_drift(out, src) == pytest.approx(want, rel=1e-9)
    # the batched form and the table entry: lower is better, compared with the input, not HR
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].float() / 255  # noqa: E731
    assert float(color_drift_torch(t(out), t(src))[0]) == pytest.approx(want, rel=1e-5)
    info = METRIC_TABLE["color_drift"]
    assert info.against_input and not info.higher_is_better and not info.needs_reference
