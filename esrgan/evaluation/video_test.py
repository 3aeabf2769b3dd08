"""``esrgan test`` on a video: temporal stability (warping error, flicker index), colour drift and, with an HR
video, PSNR/SSIM per frame, for each model; temporal-profile strips to look at beside the numbers.

The input is a video file (anything PyAV reads) or a folder of frames (sorted by name); with only an HR video
the LR frames are made from it with MATLAB bicubic (as ``esrgan test`` does for images). Networks are scored as
trained (no colour fix), in fp32 unless asked otherwise. Writes ``experiments/<name>/results.json``, the strips
(``strips/<model>.png``: one row of pixels, the middle one, from every frame, top to bottom in time) and
``report.html``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from esrgan.data.image import imread, imwrite, list_images
from esrgan.evaluation.tested_models import TestedModel, build_models
from esrgan.evaluation.testsets import bicubic_downscale
from esrgan.metrics import psnr, ssim
from esrgan.metrics.color_drift import CONVENTION as COLOR_DRIFT
from esrgan.metrics.color_drift import color_drift
from esrgan.metrics.temporal import TemporalMeter
from esrgan.utils.atomic import atomic_write_text
from esrgan.utils.folders import EXPERIMENTS_ROOT, check_experiment_name, experiment_dir, fresh_output_dir
from esrgan.utils.lock import ExperimentLock

logger = logging.getLogger("esrgan.evaluation")

STRIPS = "strips"
HR_STRIP = "_hr"
INPUT_STRIP = "_input_bicubic"
CONVENTIONS = (
    "warping error and flicker index in levels of 255 over RGB (optical flow: OpenCV DIS on the input frames, "
    "occlusions masked; flicker index = the output's warping error minus the bicubic input's); colour drift = "
    f"{COLOR_DRIFT}; PSNR/SSIM against HR on Y (BT.601), "
    "crop_border = scale, mean over frames"
)


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """HWC RGB uint8 frames of a video file, or of a folder's images in name order (grey made RGB, alpha
    dropped, 16-bit narrowed to 8)."""
    path = Path(path)
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise ValueError(f"{path}: no frames (images) in this folder")
        for f in files:
            img = imread(f)
            if img.dtype == np.uint16:
                img = (img.astype(np.uint32) * 255 // 65535).astype(np.uint8)
            img = img[:, :, None] if img.ndim == 2 else img
            yield np.repeat(img, 3, axis=2) if img.shape[2] == 1 else np.ascontiguousarray(img[:, :, :3])
        return
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file or folder of frames")
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise ValueError(f"{path}: cannot open as a video ({exc})") from exc
    with container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise ValueError(f"{path}: damaged video ({exc})") from exc


@dataclass
class VideoScores:
    """One model's scores on the video (``temporal``: warping error, flicker index, visible share)."""

    label: str
    temporal: dict[str, float]
    color_drift: float
    psnr: float | None = None
    ssim: float | None = None
    warping_per_pair: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.label, **self.temporal, "color_drift": self.color_drift}
        if self.psnr is not None:
            out.update(psnr_y=self.psnr, ssim_y=self.ssim)
        return out


@dataclass
class VideoTestReport:
    name: str
    scale: int
    out_dir: Path
    frames: int
    models: list[VideoScores]
    hr_temporal: dict[str, float] | None = None

    def format_table(self) -> str:
        cols = ["warping_error", "flicker_index", "color_drift"] + (["psnr_y", "ssim_y"] if self.hr_temporal else [])
        width = max(len(m.label) for m in self.models) if self.models else 5
        lines = [f"x{self.scale} video results ({self.name}, {self.frames} frames)", f"conventions: {CONVENTIONS}",
                 f"{'model':<{width}}  " + "  ".join(f"{c:>13}" for c in cols)]
        for m in self.models:
            row = m.row()
            lines.append(f"{m.label:<{width}}  " + "  ".join(f"{_fmt(row.get(c)):>13}" for c in cols))
        if self.hr_temporal:
            lines.append(f"{'(HR itself)':<{width}}  {_fmt(self.hr_temporal['warping_error']):>13}")
        return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def _json_number(v: float | None) -> float | None:
    """JSON has no NaN or inf: a score that is not defined (one frame: no pair) is null."""
    return None if v is None or not math.isfinite(v) else float(v)


def _pairs(video: Path | None, hr: Path | None, scale: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(LR frame, HR frame or None) in order; LR made from HR with MATLAB bicubic when no LR is given."""
    if video is not None and hr is not None:
        for i, (lr, hi) in enumerate(itertools.zip_longest(read_frames(video), read_frames(hr))):
            if lr is None or hi is None:
                raise ValueError(f"{video} and {hr} hold different numbers of frames (one ends at frame {i})")
            if hi.shape[0] < lr.shape[0] * scale or hi.shape[1] < lr.shape[1] * scale:
                raise ValueError(f"{hr}: frame {i} is {hi.shape[1]}x{hi.shape[0]}, smaller than x{scale} of the "
                                 f"input's {lr.shape[1]}x{lr.shape[0]}")
            yield lr, hi[: lr.shape[0] * scale, : lr.shape[1] * scale]
        return
    if video is not None:
        for lr in read_frames(video):
            yield lr, None
        return
    assert hr is not None
    for hi in read_frames(hr):
        hi = hi[: hi.shape[0] - hi.shape[0] % scale, : hi.shape[1] - hi.shape[1] % scale]
        yield bicubic_downscale(hi, scale), hi


def score_video(
    model: TestedModel, video: Path | None, hr: Path | None, scale: int, *, progress: bool = False
) -> tuple[VideoScores, TemporalMeter, TemporalMeter | None, int]:
    """One model over the video: its scores, its meter (strip rows), the HR's meter (or None), frames."""
    meter, hr_meter = TemporalMeter(), TemporalMeter() if hr is not None else None
    drift, ps, ss = [], [], []
    n = 0
    for lr, hi in tqdm(_pairs(video, hr, scale), desc=model.name, unit="frame", disable=not progress, leave=False):
        out = model.upscale(lr)
        meter.add(lr, out)
        drift.append(color_drift(out, lr))
        if hi is not None:
            assert hr_meter is not None
            hr_meter.add(lr, hi)
            ps.append(psnr(out, hi, crop_border=scale, y_channel=True))
            ss.append(ssim(out, hi, crop_border=scale, y_channel=True))
        n += 1
    if n == 0:
        raise ValueError(f"{video or hr}: no frames")
    t = meter.scores()
    scores = VideoScores(model.name, t.as_dict(), float(np.mean(drift)), float(np.mean(ps)) if ps else None,
                         float(np.mean(ss)) if ss else None, list(t.warping_per_pair))
    return scores, meter, hr_meter, n


def run_video_test(
    models: Sequence[str | tuple[str, str]],
    video: str | Path | None,
    hr: str | Path | None,
    scale: int,
    name: str,
    *,
    experiments_root: str | Path = EXPERIMENTS_ROOT,
    progress: bool = True,
    **model_options: Any,
) -> VideoTestReport:
    """Score ``models`` on a video (``video``: LR video or folder of frames; ``hr``: its HR, optional; one of
    the two at least). Writes ``experiments_root/name/`` (results.json, strips, report.html).
    ``model_options``: ``device``, ``tile``, ``precision`` (default: the tester's, fp32) as ``build_models``."""
    if video is None and hr is None:
        raise ValueError("give the video to upscale (--video) and/or its HR (--video-hr)")
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    check_experiment_name(name)
    video, hr = (Path(video) if video is not None else None), (Path(hr) if hr is not None else None)
    for path in (video, hr):
        if path is not None and not path.exists():
            raise FileNotFoundError(f"{path}: no such video file or folder of frames")
    built = build_models(list(models), scale, **model_options)
    folder = experiment_dir(experiments_root, name)
    with ExperimentLock(folder, what="test run"):
        out_dir = fresh_output_dir(folder)
        results: list[VideoScores] = []
        hr_scores = None
        frames = 0
        for model in built:
            scores, meter, hr_meter, frames = score_video(model, video, hr, scale, progress=progress)
            results.append(scores)
            imwrite(out_dir / STRIPS / f"{model.name}.png", np.stack(meter.output_rows))
            if hr_meter is not None and hr_scores is None:
                hr_scores = hr_meter.scores().as_dict()
                imwrite(out_dir / STRIPS / f"{HR_STRIP}.png", np.stack(hr_meter.output_rows))
            if model is built[0]:
                imwrite(out_dir / STRIPS / f"{INPUT_STRIP}.png", np.stack(meter.input_rows))
            logger.info("%s: warping error %.3f, flicker index %.3f, colour drift %.3f", model.name,
                        scores.temporal["warping_error"], scores.temporal["flicker_index"], scores.color_drift)
        report = VideoTestReport(name, scale, out_dir, frames, results, hr_scores)
        data = {
            "kind": "video",
            "name": name,
            "scale": scale,
            "input": str(video) if video is not None else None,
            "hr": str(hr) if hr is not None else None,
            "frames": frames,
            "conventions": CONVENTIONS,
            "models": [{k: (_json_number(v) if isinstance(v, float) else v) for k, v in m.row().items()}
                       | {"warping_per_pair": [_json_number(v) for v in m.warping_per_pair],
                          "strip": f"{STRIPS}/{m.label}.png"} for m in results],
            "hr_temporal": {k: _json_number(v) for k, v in hr_scores.items()} if hr_scores else None,
            "strips": {"input (bicubic)": f"{STRIPS}/{INPUT_STRIP}.png",
                       **({"HR": f"{STRIPS}/{HR_STRIP}.png"} if hr_scores else {})},
        }
        atomic_write_text(out_dir / "results.json", json.dumps(data, indent=1, allow_nan=False))
    return report
