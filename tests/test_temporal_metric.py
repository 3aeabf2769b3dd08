"""The temporal metric on synthetic videos whose flicker is known: warping error and flicker index."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from esrgan.metrics.temporal import TemporalMeter, dis_flow, temporal_profile, temporal_scores, warp


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A smooth random texture (blurred noise): DIS finds its motion, bilinear warping reproduces it."""
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (200, 400, 3)).astype(np.float32), (0, 0), 3)
    return (big - big.min()) / (big.max() - big.min()) * 255


def _pan(scene: np.ndarray, frames: int = 6, step: int = 4, w: int = 128, h: int = 96):
    """HR frames panning ``step`` pixels a frame (1 input pixel at x4), and their area-downscaled inputs."""
    hr = [scene[20 : 20 + h, 10 + i * step : 10 + i * step + w] for i in range(frames)]
    lr = [cv2.resize(f, (w // 4, h // 4), interpolation=cv2.INTER_AREA) for f in hr]
    return lr, hr


def test_correct_motion_scores_near_zero(scene: np.ndarray) -> None:
    lr, hr = _pan(scene)
    s = temporal_scores(lr, hr)
    assert s.warping_error < 0.3 and abs(s.flicker_index) < 0.3  # levels of 255
    assert 0.8 < s.visible < 1  # the strip entering on the right is masked
    assert len(s.warping_per_pair) == len(lr) - 1


def test_one_brightened_frame_scores_worse_than_the_static_scene(scene: np.ndarray) -> None:
    lr, hr = _pan(scene, frames=1)
    static = temporal_scores(lr * 6, hr * 6)
    assert static.warping_error == 0 and static.flicker_index == 0
    flashed = [f.copy() for f in hr * 6]
    flashed[3] = np.clip(flashed[3] + 30, 0, 255)
    s = temporal_scores(lr * 6, flashed)
    # the flash is seen on both sides of frame 3: pairs (2, 3) and (3, 4), 30 levels each
    assert s.warping_per_pair == pytest.approx([0, 0, 30, 30, 0], abs=1e-3)
    assert s.warping_error > static.warping_error + 10 and s.flicker_index == pytest.approx(12, abs=1e-3)
    # a flash already in the input is not the upscaler's: warping error sees it, the flicker index does not
    lr_flash = [f.copy() for f in lr * 6]
    lr_flash[3] = np.clip(lr_flash[3] + 30, 0, 255)
    both = temporal_scores(lr_flash, flashed)
    assert both.warping_error > 10 and abs(both.flicker_index) < 0.1


def test_boiling_noise_on_a_pan_is_flicker(scene: np.ndarray) -> None:
    lr, hr = _pan(scene)
    rng = np.random.default_rng(1)
    noisy = [np.clip(f + rng.normal(0, 5, f.shape), 0, 255) for f in hr]
    s = temporal_scores(lr, noisy)
    assert 4 < s.warping_error < 7 and 4 < s.flicker_index < 7  # E|N(0,5) - N(0,5)| = 5.64


def test_flow_and_warp_conventions(scene: np.ndarray) -> None:
    a = scene[:64, :96]
    b = scene[:64, 3:99]  # the content moved 3 pixels to the left
    flow = dis_flow(b, a)  # b(p) ~ a(p + flow): +3 in x
    assert np.median(flow[..., 0]) == pytest.approx(3, abs=0.2) and abs(np.median(flow[..., 1])) < 0.2
    assert np.abs(warp(a, flow) - b)[8:-8, 8:-8].mean() < 0.5


def test_meter_streams_frames_and_keeps_profile_rows(scene: np.ndarray) -> None:
    lr, hr = _pan(scene, frames=4)
    meter = TemporalMeter()
    for i, o in zip(lr, hr, strict=True):
        meter.add(i, o.astype(np.uint8))
    assert len(meter.output_rows) == 4 and meter.output_rows[0].shape == (128, 3)
    strip = temporal_profile([o.astype(np.uint8) for o in hr])
    assert strip.shape == (4, 128, 3) and np.array_equal(strip, np.stack(meter.output_rows))
    # a pan draws slanted lines: row t is row 0 shifted by 4 t pixels
    assert np.array_equal(strip[2, :-8], strip[0, 8:])
    with pytest.raises(ValueError, match="one size"):
        meter.add(lr[0][:10], hr[0][:40])
    assert np.isnan(temporal_scores(lr[:1], hr[:1]).warping_error)
