"""Temporal stability of an upscaled video: warping error and flicker index, from optical flow on the input.

- **Warping error** (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018, with L1 in levels of
  255 instead of their squared [0, 1] error): output frame t-1 is warped onto frame t along the motion between
  the two *input* frames (OpenCV's DIS optical flow, enlarged to the output's size), and the mean absolute
  difference to output frame t is taken over the pixels that stay visible (a forward-backward flow check masks
  occlusions, Sundaram et al. 2010; pixels whose motion leaves the frame are masked too). A correct pan scores
  near 0; anything that changes between frames without moving (flicker, a tile border that moves, noise that
  boils) raises it. The input's own changes (a fade, a flash) raise it too.
- **Flicker index**: the output's warping error minus that of the input enlarged with bicubic, per pair of
  frames, averaged: what the upscaler adds to the temporal change the input already has (0: as stable as
  the input; a fade or a flash in the input cancels out).

Conventions: frames are HWC RGB (or HW grey) arrays with values in [0, 255] (uint8 or float); input frames are
the upscaler's input, output frames its result, all of one size each, the output a whole-number or any larger
size. Scores are in levels of 255, over all channels. :class:`TemporalMeter` takes frames one at a time (a
long video never sits in memory); :func:`temporal_scores` scores whole sequences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

__all__ = ["TemporalMeter", "TemporalScores", "dis_flow", "temporal_profile", "temporal_scores", "warp"]

# Forward-backward consistency (Sundaram et al. 2010): |F_b + F_f(p + F_b)|^2 < A (|F_b|^2 + |F_f|^2) + B.
_FB_A, _FB_B = 0.01, 0.5


def _grey_u8(frame: np.ndarray) -> np.ndarray:
    img = np.clip(np.asarray(frame, dtype=np.float64), 0, 255).round().astype(np.uint8)
    if img.ndim == 3 and img.shape[2] >= 3:
        return cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)
    return img.reshape(img.shape[0], img.shape[1])


def dis_flow(frame_from: np.ndarray, frame_to: np.ndarray) -> np.ndarray:
    """Optical flow (HxWx2, x then y, pixels) such that ``frame_from(p) ~ frame_to(p + flow(p))``: OpenCV's DIS,
    medium preset, on the BT.601 grey of each frame."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_grey_u8(frame_from), _grey_u8(frame_to), None)


def warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``img`` sampled at ``p + flow(p)`` (bilinear, float32; HWC or HW as given)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    src = np.asarray(img, dtype=np.float32)
    out = cv2.remap(src, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(src.shape)


def _visible(back: np.ndarray, fwd: np.ndarray) -> np.ndarray:
    """Pixels of frame t whose backward motion lands inside frame t-1 and agrees with the forward motion there."""
    h, w = back.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    x, y = gx + back[..., 0], gy + back[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    fwd_at = warp(fwd, back)
    loop = back + fwd_at
    bound = _FB_A * ((back**2).sum(-1) + (fwd_at**2).sum(-1)) + _FB_B
    return inside & ((loop**2).sum(-1) < bound)


def _enlarge_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A flow field resized to ``size`` = (height, width), its vectors scaled with it."""
    h, w = flow.shape[:2]
    if (h, w) == size:
        return flow
    big = cv2.resize(flow, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return big * np.array([size[1] / w, size[0] / h], dtype=np.float32)


def _float(frame: np.ndarray) -> np.ndarray:
    return np.asarray(frame, dtype=np.float32)


def _masked_l1(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    if not mask.any():
        return float("nan")
    diff = np.abs(a - b)
    return float(diff[mask].mean())


@dataclass
class TemporalScores:
    """Warping error and flicker index (levels of 255), their values per pair of frames, and the share of
    pixels the occlusion mask kept."""

    warping_error: float
    flicker_index: float
    warping_per_pair: list[float] = field(default_factory=list)
    flicker_per_pair: list[float] = field(default_factory=list)
    visible: float = 1.0

    def as_dict(self) -> dict[str, float]:
        return {"warping_error": self.warping_error, "flicker_index": self.flicker_index, "visible": self.visible}


class TemporalMeter:
    """Scores a video frame by frame: ``add(input_frame, output_frame)`` for each frame in order, then
    :meth:`scores`. Holds only the previous frame of each; ``profile_row`` (0..1 of the height, default the
    middle) is kept from every output and enlarged-input frame for :func:`temporal_profile`-like strips."""

    def __init__(self, profile_row: float = 0.5) -> None:
        self.profile_row = profile_row
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._warp: list[float] = []
        self._flicker: list[float] = []
        self._visible: list[float] = []
        self.output_rows: list[np.ndarray] = []
        self.input_rows: list[np.ndarray] = []

    def add(self, input_frame: np.ndarray, output_frame: np.ndarray) -> None:
        out = _float(output_frame)
        size = out.shape[:2]
        if input_frame.shape[:2] == size:
            upscaled = _float(input_frame)
        else:
            upscaled = cv2.resize(_float(input_frame), (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
            upscaled = np.clip(upscaled, 0, 255).reshape(*size, *out.shape[2:])
        row = min(int(self.profile_row * size[0]), size[0] - 1)
        self.output_rows.append(np.asarray(output_frame)[row].copy())
        self.input_rows.append(np.clip(upscaled[row], 0, 255).round().astype(np.uint8))
        if self._prev is not None:
            prev_in, prev_out, prev_up = self._prev
            if prev_out.shape != out.shape or prev_in.shape != input_frame.shape:
                raise ValueError(f"frame {len(self.output_rows) - 1} is {out.shape}, the one before {prev_out.shape}: "
                                 "every frame of a video has one size")
            back = dis_flow(input_frame, prev_in)
            fwd = dis_flow(prev_in, input_frame)
            visible = _visible(back, fwd).astype(np.uint8)
            mask = cv2.resize(visible, (size[1], size[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
            big = _enlarge_flow(back, size)
            e_out = _masked_l1(out, warp(prev_out, big), mask)
            e_in = _masked_l1(upscaled, warp(prev_up, big), mask)
            self._warp.append(e_out)
            self._flicker.append(e_out - e_in)
            self._visible.append(float(mask.mean()))
        self._prev = (np.asarray(input_frame), out, upscaled)

    def scores(self) -> TemporalScores:
        """Means over the pairs of frames (pairs where nothing stays visible are left out); NaN for fewer
        than two frames."""
        w = np.array(self._warp, dtype=np.float64)
        f = np.array(self._flicker, dtype=np.float64)
        ok = ~np.isnan(w)
        mean = lambda v: float(v[ok].mean()) if ok.any() else float("nan")  # noqa: E731
        return TemporalScores(mean(w), mean(f), self._warp, self._flicker,
                              float(np.mean(self._visible)) if self._visible else float("nan"))


def temporal_scores(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> TemporalScores:
    """Warping error and flicker index of ``outputs`` (the upscaled frames of ``inputs``), in frame order."""
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} input frames but {len(outputs)} output frames")
    meter = TemporalMeter()
    for i, o in zip(inputs, outputs, strict=True):
        meter.add(i, o)
    return meter.scores()


def temporal_profile(frames: Sequence[np.ndarray], row: float = 0.5) -> np.ndarray:
    """One row of pixels (``row`` as a share of the height) from each frame, stacked in time: a T x W (x C)
    picture where motion draws slanted lines and flicker draws horizontal streaks."""
    rows = [np.asarray(f)[min(int(row * np.asarray(f).shape[0]), np.asarray(f).shape[0] - 1)] for f in frames]
    return np.stack(rows)
