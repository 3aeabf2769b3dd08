"""Upscale a video in one stream: PyAV decode -> batches -> network -> encode, no frames on disk.

Three stages overlap: a decoder thread (demux, decode, convert to RGB), the calling thread (the
network, on batches of frames) and an encoder thread (convert to YUV, encode, mux). Bounded queues
between them keep memory flat. Video timestamps are the input's (same time base, same pts), so
the frame rate, frame count and timing carry over; audio packets are copied as they are (no
re-encoding). The file is written under a temporary name and renamed only when complete.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.logging
import numpy as np
import torch
from tqdm import tqdm

from esrgan.data.image import check_pixels
from esrgan.inference.upscaler import Upscaler
from esrgan.utils.atomic import atomic_path

logger = logging.getLogger("esrgan.inference.video")

# Tried in order when the asked-for encoder is not in this PyAV build.
CODEC_FALLBACKS = ("libx264", "libopenh264", "libx265", "libvpx-vp9", "mpeg4")
_CRF_CODECS = {"libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1"}
_END = object()


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "libx264"
    crf: int | None = 18
    preset: str | None = None
    pix_fmt: str | None = None  # default: yuv420p (yuv444p when an output side is odd)


class VideoDecodeError(ValueError):
    """The input video is damaged (truncated, corrupt packets, decoder errors)."""


@dataclass
class VideoStats:
    frames: int = 0
    frames_expected: int | None = None  # the container's frame count, or an estimate from its duration
    decode_problems: list[str] = field(default_factory=list)  # what was skipped with skip_bad_frames
    audio_packets: int = 0
    seconds: float = 0.0  # wall time, end to end
    model_seconds: float = 0.0  # time spent in the network (incl. tensor conversion)
    codec: str = ""
    size: tuple[int, int] = (0, 0)  # output (width, height)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def frames_lost(self) -> int:
        """Frames a damaged input should hold but that did not decode (0 for a sound input or an unknown count;
        an estimate from the duration when the container does not list its frames)."""
        return max((self.frames_expected or 0) - self.frames, 0) if self.decode_problems else 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def encoder_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # PyAV raises UnknownCodecError or ValueError depending on the version
        return False
    return True


def pick_codec(name: str) -> str:
    """``name`` if this PyAV build can encode it, else the first available fallback (with a warning)."""
    if encoder_available(name):
        return name
    for other in CODEC_FALLBACKS:
        if other != name and encoder_available(other):
            logger.warning("encoder %s is not in this PyAV build; using %s instead", name, other)
            return other
    raise RuntimeError(f"encoder {name} is not available and none of {', '.join(CODEC_FALLBACKS)} is either")


def _encoder_options(opts: EncodeOptions, codec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if opts.crf is not None:
        if codec in _CRF_CODECS:
            out["crf"] = str(opts.crf)
            if codec == "libvpx-vp9":
                out["b"] = "0"  # constant-quality mode
        else:
            logger.warning("encoder %s has no CRF; --crf %s ignored (encoder defaults used)", codec, opts.crf)
    if opts.preset:
        out["preset"] = opts.preset
    return out


class _Stage(threading.Thread):
    """A pipeline thread that keeps its exception for the caller instead of printing it."""

    def __init__(self, target: Callable[[], None], name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._fn, self._pipeline_stop = target, stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:
            self.error = exc
            self._pipeline_stop.set()  # wake the other stages: the pipeline is over


class _Pipe:
    """A bounded queue whose put/get give up when the pipeline is stopping (no deadlock on errors)."""

    def __init__(self, size: int, stop: threading.Event) -> None:
        self.q: queue.Queue = queue.Queue(maxsize=size)
        self.stop = stop

    def put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def get(self) -> Any:
        while not self.stop.is_set():
            try:
                return self.q.get(timeout=0.1)
            except queue.Empty:
                continue
        raise _Stopped


class _Stopped(Exception):
    """Raised inside a stage when another stage failed and the pipeline is shutting down."""


def _seconds(pts: int | None, time_base: Fraction) -> float:
    return float(pts * time_base) if pts is not None else 0.0


def _frames_to_tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255)


def _tensor_to_frames(x: torch.Tensor) -> np.ndarray:
    return x.mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


# Most frames per forward pass on a GPU (more gains nothing once the GPU is busy).
MAX_FRAMES_PER_PASS = 8


def frames_per_pass(upscaler: Upscaler, height: int, width: int) -> int:
    """Frames of ``height x width`` per forward pass for ``upscaler``'s device, precision and free memory.

    On a CPU one: a frame already keeps every core busy, and larger batches only add memory traffic
    (4 frames per pass cost a quarter of bf16's speed with RRDBNet x4 on 640x360 frames). On a GPU
    the most whole frames (up to ``MAX_FRAMES_PER_PASS``) whose activations fit in the memory share
    ``Upscaler.auto_tile`` allows; one when a frame needs tiles (the tiles are then sized from memory).
    """
    if upscaler.device.type == "cpu":
        return 1
    n = MAX_FRAMES_PER_PASS
    while n > 1 and upscaler.auto_tile(height, width, images=n) != 0:
        n //= 2
    return n


def upscale_video(
    upscaler: Upscaler,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    encode: EncodeOptions = EncodeOptions(),
    start: float | None = None,
    duration: float | None = None,
    batch: int | None = None,
    show_progress: bool = True,
    skip_bad_frames: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> VideoStats:
    """Upscale the first video stream of ``src`` into ``dst``, copying its audio streams; return stats.

    ``start``/``duration`` (seconds) select a section; its timestamps are shifted to start at 0.
    A damaged input (truncated file, corrupt packets, decoder errors, fewer frames than the container
    lists) raises :class:`VideoDecodeError` and writes nothing; with ``skip_bad_frames`` the frames
    that decode are written and ``stats.decode_problems`` / ``stats.frames_lost`` say what was lost.
    ``progress(frames done, frames expected or None)`` is called after each batch; an exception raised
    in it stops the run and writes nothing (a web app's cancel button).
    ``batch``: frames per forward pass (default: :func:`frames_per_pass` for this frame size).
    """
    src, dst = Path(src), Path(dst)
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be >= 1; got {batch}")
    if (start is not None and start < 0) or (duration is not None and duration <= 0):
        raise ValueError(f"start must be >= 0 and duration > 0; got start={start}, duration={duration}")
    if upscaler.info.in_ch != 3 or upscaler.info.out_ch != 3:
        raise ValueError(f"video needs an RGB->RGB model; this one maps {upscaler.info.in_ch}->{upscaler.info.out_ch}")
    try:
        inp = av.open(str(src))
    except (av.FFmpegError, OSError) as exc:
        raise ValueError(f"{src}: cannot open as a video ({exc})") from exc
    stats = VideoStats()
    t0 = time.perf_counter()
    try:
        if not inp.streams.video:
            raise ValueError(f"{src}: no video stream")
        vin = inp.streams.video[0]
        ains = list(inp.streams.audio)
        skipped = [s for s in inp.streams if s is not vin and s not in ains]
        if skipped:
            logger.info("%s: not copied: %s", src.name, ", ".join(f"#{s.index} {s.type}" for s in skipped))
        vin.thread_type = "AUTO"  # multi-threaded decoding
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        in_w, in_h = vin.codec_context.width, vin.codec_context.height
        check_pixels(f"{src} (frame size)", in_w, in_h)  # the image readers' pixel limit, before a frame decodes
        width, height = in_w * upscaler.scale, in_h * upscaler.scale
        codec = pick_codec(encode.codec)
        stats.codec, stats.size = codec, (width, height)
        offset_s = start or 0.0
        end_s = offset_s + duration if duration is not None else None
        total = _estimate_frames(inp, vin, rate, offset_s, end_s)
        if batch is None:
            batch = frames_per_pass(upscaler, in_h, in_w)
            logger.info("%d frame(s) per forward pass (--batch)", batch)
        if upscaler.tile == 0:
            upscaler = upscaler.batched(batch)  # whole frames (tiles when they do not fit): batch per pass
            # One tile layout for the whole video, sized from the memory free now. Sized per frame it moved (the
            # allocator keeps what earlier frames freed: 1056- then 1024-pixel tiles on 1080p), and with the
            # layout the rounding near tile borders changes from frame to frame: flicker where nothing moves.
            tile = upscaler.auto_tile(in_h, in_w, images=batch)
            if tile:
                upscaler = upscaler.tiled(tile)
                logger.info("%dx%d frames do not fit in memory whole: %d-pixel tiles for every frame", in_w, in_h, tile)
        if start:
            inp.seek(int(start * av.time_base))  # to the keyframe before; earlier frames are dropped below

        with atomic_path(dst) as tmp, av.open(str(tmp), "w") as out:
            vout = out.add_stream(codec, rate=rate, options=_encoder_options(encode, codec))
            vout.width, vout.height = width, height
            vout.pix_fmt = encode.pix_fmt or ("yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p")
            vout.time_base = vin.time_base
            vout.codec_context.time_base = vin.time_base
            vout.thread_type = "AUTO"
            aouts = {a.index: out.add_stream_from_template(a) for a in ains}
            logger.info(
                "%s: %dx%d %s fps -> %dx%d %s (%s), %d audio stream(s) copied",
                src.name, vin.codec_context.width, vin.codec_context.height, rate, width, height,
                codec, vout.pix_fmt, len(aouts),
            )  # fmt: skip
            stats.frames_expected = total
            # FFmpeg reports truncation and damaged data only in its log: let errors through while we run
            # (PyAV keeps FFmpeg's log off by default), captured per thread in the decoder stage.
            log_level = av.logging.get_level()
            if log_level is None or log_level < av.logging.ERROR:
                av.logging.set_level(av.logging.ERROR)
            try:
                _run_pipeline(
                    upscaler, inp, vin, ains, out, vout, aouts, offset_s, end_s, batch, total, show_progress, stats,
                    _DecodeCheck(src, vin, whole=not start and end_s is None, skip=skip_bad_frames, stats=stats),
                    progress,
                )
            finally:
                av.logging.set_level(log_level)
    finally:
        inp.close()
    stats.seconds = time.perf_counter() - t0
    return stats


class _DecodeCheck:
    """Decides what a decoding problem does: fail the job (default) or count it and go on."""

    def __init__(self, src: Path, vin: Any, *, whole: bool, skip: bool, stats: VideoStats) -> None:
        self.src, self.skip, self.stats = src, skip, stats
        # The container's own frame count (mp4 lists every sample) holds only for the whole video.
        self.listed = int(vin.frames) if whole and vin.frames else None
        self.discarded = 0  # packets an edit list drops on purpose (not lost)

    def problem(self, what: str) -> None:
        if not self.skip:
            raise VideoDecodeError(
                f"{self.src}: damaged video: {what}; no output written "
                "(--skip-bad-frames writes the frames that decode and reports those lost)"
            )
        self.stats.decode_problems.append(what)

    def at_end(self, decoded: int, logs: list[tuple[int, str, str]]) -> None:
        errors = [f"{name}: {msg.strip()}" for level, name, msg in logs if level <= av.logging.ERROR]
        if errors:
            more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
            self.problem("FFmpeg reported " + "; ".join(errors[:3]) + more)
        if self.listed is not None and decoded + self.discarded < self.listed:
            self.stats.frames_expected = self.listed
            self.problem(f"decoded {decoded} of the {self.listed} frames the file lists")


def _estimate_frames(inp: Any, vin: Any, rate: Fraction, start_s: float, end_s: float | None) -> int | None:
    if vin.frames and not start_s and end_s is None:
        return int(vin.frames)
    length = float(vin.duration * vin.time_base) if vin.duration else (inp.duration or 0) / av.time_base
    if end_s is not None:
        length = min(length, end_s) if length else end_s
    length -= start_s
    return max(round(length * rate), 0) or None


def _run_pipeline(
    upscaler: Upscaler,
    inp: Any,
    vin: Any,
    ains: list[Any],
    out: Any,
    vout: Any,
    aouts: dict[int, Any],
    start_s: float,
    end_s: float | None,
    batch: int,
    total: int | None,
    show_progress: bool,
    stats: VideoStats,
    check: _DecodeCheck,
    progress: Callable[[int, int | None], None] | None = None,
) -> None:
    stop = threading.Event()
    decoded = _Pipe(3 * batch + 16, stop)
    upscaled = _Pipe(3, stop)  # holds whole batches

    def decode() -> None:
        with av.logging.Capture(local=True) as logs:
            n = demux_and_decode()
        check.at_end(n, list(logs))
        decoded.put(_END)

    def demux_and_decode() -> int:
        audio_done: set[int] = set()
        video_done = False
        n = 0
        for packet in inp.demux([vin, *ains]):
            if stop.is_set():
                return n
            if packet.stream.index in aouts:
                if packet.dts is None or packet.stream.index in audio_done:
                    continue
                t = _seconds(packet.pts, packet.time_base)
                if end_s is not None and t >= end_s:
                    audio_done.add(packet.stream.index)
                elif not start_s or t >= start_s - 1e-6:  # whole packets only (copied audio is not cut)
                    decoded.put(("audio", packet))
            elif not video_done:
                where = f"{_seconds(packet.pts, packet.time_base):.3f} s" if packet.pts is not None else "the end"
                if packet.is_corrupt:
                    check.problem(f"corrupt video packet at {where}")
                if packet.is_discard:
                    check.discarded += 1
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    check.problem(f"cannot decode the video at {where} ({exc})")
                    continue
                for frame in frames:
                    t = _seconds(frame.pts, frame.time_base)
                    if end_s is not None and t >= end_s:
                        video_done = True
                        break
                    if t >= start_s - 1e-6:
                        decoded.put(("video", frame.to_ndarray(format="rgb24"), frame.pts))
                        n += 1
            if video_done and len(audio_done) == len(aouts):
                break
        return n

    v_offset = round(start_s / vin.time_base)

    def encode() -> None:
        while (item := upscaled.get()) is not _END:
            if item[0] == "audio":
                packet = item[1]
                shift = round(start_s / packet.time_base)
                if shift:
                    packet.pts -= shift
                    packet.dts -= shift
                packet.stream = aouts[packet.stream.index]
                out.mux(packet)
                stats.audio_packets += 1
                continue
            for arr, pts in zip(item[1], item[2]):
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
                frame.pts, frame.time_base = pts - v_offset, vin.time_base
                out.mux(vout.encode(frame))
        out.mux(vout.encode())  # flush the encoder's delayed frames

    stages = [_Stage(decode, "esrgan-video-decode", stop), _Stage(encode, "esrgan-video-encode", stop)]
    for stage in stages:
        stage.start()
    bar = tqdm(total=total, unit="frame", desc="video", disable=not show_progress, dynamic_ncols=True)
    frames: list[np.ndarray] = []
    pts: list[int] = []

    def flush() -> None:
        t = time.perf_counter()
        result = _tensor_to_frames(upscaler.upscale_tensor(_frames_to_tensor(frames)))
        stats.model_seconds += time.perf_counter() - t
        upscaled.put(("video", result, list(pts)))
        stats.frames += len(frames)
        bar.update(len(frames))
        frames.clear()
        pts.clear()
        if progress is not None:
            progress(stats.frames, total)

    try:
        while True:
            item = decoded.get()
            if item is _END:
                break
            if item[0] == "audio":
                upscaled.put(item)
                continue
            frames.append(item[1])
            pts.append(item[2])
            if len(frames) == batch:
                flush()
        if frames:
            flush()
        upscaled.put(_END)
        stages[1].join()
    except BaseException as exc:
        stop.set()
        for stage in stages:
            stage.join()
        errors = [s.error for s in stages if s.error is not None and not isinstance(s.error, _Stopped)]
        if isinstance(exc, _Stopped) and errors:
            raise errors[0] from None
        raise
    finally:
        bar.close()
    stop.set()
    stages[0].join()
    for stage in stages:
        if stage.error is not None and not isinstance(stage.error, _Stopped):
            raise stage.error
