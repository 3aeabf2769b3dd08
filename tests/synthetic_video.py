"""Short videos made with PyAV for tests and benchmarks (not part of the package; benchmarks put tests/ on
sys.path): synthetic bars with sound, or a pan across a photo."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def make_test_clip(
    path: str | os.PathLike[str],
    *,
    frames: int = 24,
    width: int = 64,
    height: int = 48,
    fps: Fraction | int = 25,
    codec: str = "libx264",
    audio: str | None = "aac",
    sample_rate: int = 44100,
) -> Path:
    """Write a clip of moving coloured bars (and a 440 Hz tone unless ``audio`` is None); return its path.

    Frames differ from each other (a moving bar, a changing tint), so dropped or duplicated frames
    would show. The container follows the suffix (.mkv holds AAC or PCM; .mp4 needs AAC).
    """
    path = Path(path)
    rate = Fraction(fps)
    yy, xx = np.mgrid[:height, :width]
    with av.open(str(path), "w") as out:
        # every stream must exist before the first packet is written (the header lists them)
        video = out.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream(audio, rate=sample_rate) if audio is not None else None
        if sound is not None:
            sound.layout = "mono"
        for i in range(frames):
            img = np.empty((height, width, 3), np.uint8)
            img[..., 0] = (xx * 255 // max(width - 1, 1)).astype(np.uint8)
            img[..., 1] = (yy * 255 // max(height - 1, 1)).astype(np.uint8)
            img[..., 2] = (i * 37) % 256
            bar = (i * 3) % width
            img[:, bar : bar + 4] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if sound is not None:
            samples = int(sample_rate * frames / rate)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / sample_rate)).astype(np.float32)
            fmt = sound.codec_context.format.name  # fltp for AAC, s16 for PCM
            chunk = sound.codec_context.frame_size or 1024
            for start in range(0, samples, chunk):
                part = tone[start : start + chunk][None]
                if fmt.startswith("s16"):
                    part = (part * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(part, format=fmt, layout="mono")
                frame.sample_rate, frame.pts = sample_rate, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode())
    return path


def make_pan_clip(
    path: str | os.PathLike[str],
    picture: np.ndarray,
    *,
    frames: int = 4,
    width: int = 640,
    height: int = 360,
    step: int = 8,
    fps: int = 24,
    crf: int = 12,
) -> Path:
    """Write an H.264 clip (no sound) panning across ``picture`` (HWC RGB uint8) ``step`` pixels a frame.

    Real content for what synthetic bars hide (what a trained network does to texture); the picture
    is enlarged (bicubic) when it is smaller than the pan needs. Returns the path.
    """
    path = Path(path)
    need_w, need_h = width + step * (frames - 1), height
    grow = max(need_w / picture.shape[1], need_h / picture.shape[0], 1.0)
    if grow > 1:
        size = (int(np.ceil(picture.shape[1] * grow)), int(np.ceil(picture.shape[0] * grow)))
        picture = cv2.resize(picture, size, interpolation=cv2.INTER_CUBIC)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": str(crf)}
        for i in range(frames):
            crop = np.ascontiguousarray(picture[:height, i * step : i * step + width, :3])
            frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
    return path
