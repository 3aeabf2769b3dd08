"""Upscale a video in one stream: PyAV decode -> batches -> network -> encode, no frames on disk.

Three stages overlap: a decoder thread (demux, decode, convert to RGB), the calling thread (the
network, on batches of frames) and an encoder thread (convert to YUV, encode, mux). Bounded queues
between them keep memory flat. Video timestamps are the input's (same time base, same pts), so
the frame rate, frame count and timing carry over; audio packets are copied as they are (no
re-encoding). The file is written under a temporary name and renamed only when complete.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
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
from esrgan.inference import video_parts
from esrgan.inference.ranks import Ranks
from esrgan.inference.upscaler import Upscaler
from esrgan.inference.video_parts import PART_SECONDS
from esrgan.utils.atomic import atomic_path
from esrgan.utils.lock import ExperimentInUseError, ExperimentLock

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
    resumed_frames: int = 0  # frames an earlier, interrupted run had done (not done again)
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
    """A bounded queue whose put/get give up when the pipeline is stopping (no deadlock on errors).

    ``drain``: get still hands out what was queued before the stop (the encoder's queue: frames already
    upscaled and a part's end are finished and committed rather than lost; at most its few items)."""

    def __init__(self, size: int, stop: threading.Event, drain: bool = False) -> None:
        self.q: queue.Queue = queue.Queue(maxsize=size)
        self.stop = stop
        self.drain = drain

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
        if self.drain:
            with contextlib.suppress(queue.Empty):
                return self.q.get_nowait()
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


# A GPU job of at least this many frames measures its frames per pass (a few seconds) instead of taking the most
# that fit; shorter ones are not worth the measurement.
MEASURE_FROM_FRAMES = 300
# Among the measured batch sizes, the smallest within this share of the fastest per-frame time wins (less memory,
# less latency, and a batch larger than needed buys nothing).
MEASURE_TOLERANCE = 0.05


def measure_frames_per_pass(
    upscaler: Upscaler,
    height: int,
    width: int,
    *,
    repeats: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[int, dict[int, float]]:
    """Frames per pass for ``height x width`` frames chosen by timing: each batch size from 1 to what fits in
    memory (:func:`frames_per_pass`, doubling) runs ``repeats`` timed passes of random frames after one
    untimed; the smallest within ``MEASURE_TOLERANCE`` of the best seconds per frame wins. Returns it and
    the seconds per frame measured for each size. On a CPU: 1, nothing measured (a frame keeps every core
    busy). ``clock``: seconds, after the device finished its queued work (the caller's synchronisation)."""
    if upscaler.device.type == "cpu":
        return 1, {}
    most = frames_per_pass(upscaler, height, width)
    sync = torch.cuda.synchronize if upscaler.device.type == "cuda" else (lambda: None)
    per_frame: dict[int, float] = {}
    n = 1
    while n <= most:
        view = upscaler.batched(n)
        x = torch.rand(n, 3, height, width)
        view.upscale_tensor(x)
        sync()
        best = float("inf")
        for _ in range(repeats):
            t0 = clock()
            view.upscale_tensor(x)
            sync()
            best = min(best, clock() - t0)
        per_frame[n] = best / n
        n *= 2
    fastest = min(per_frame.values())
    choice = min(k for k, v in per_frame.items() if v <= fastest * (1 + MEASURE_TOLERANCE))
    return choice, per_frame


def choose_frames_per_pass(upscaler: Upscaler, height: int, width: int, frames: int | None) -> int:
    """Frames per pass for a job of about ``frames`` frames: 1 on a CPU; on a GPU measured for long jobs
    (:func:`measure_frames_per_pass`), else the most that fit (:func:`frames_per_pass`)."""
    if upscaler.device.type == "cpu" or (frames or 0) < MEASURE_FROM_FRAMES:
        return frames_per_pass(upscaler, height, width)
    choice, per_frame = measure_frames_per_pass(upscaler, height, width)
    logger.info("frames per pass measured on %s: %s; %d chosen", upscaler.device,
                ", ".join(f"{k}: {1000 * v:.1f} ms/frame" for k, v in per_frame.items()), choice)
    return choice


def part_frames_for(rate: Fraction, part_seconds: float, batch: int) -> int:
    """Frames per part: ``part_seconds`` of video, at least one, a whole number of batches (a batch never
    spans two parts, so a part's pixels do not depend on where the job was interrupted)."""
    frames = max(1, round(part_seconds * float(rate)))
    return -(-frames // batch) * batch


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
    part_seconds: float = PART_SECONDS,
    restart: bool = False,
    ranks: Ranks | None = None,
) -> VideoStats:
    """Upscale the first video stream of ``src`` into ``dst``, copying its audio streams; return stats.

    ``start``/``duration`` (seconds) select a section; its timestamps are shifted to start at 0.
    A damaged input (truncated file, corrupt packets, decoder errors, fewer frames than the container
    lists) raises :class:`VideoDecodeError` and writes nothing; with ``skip_bad_frames`` the frames
    that decode are written and ``stats.decode_problems`` / ``stats.frames_lost`` say what was lost.
    ``progress(frames done, frames expected or None)`` is called after each batch; an exception raised
    in it stops the run (a web app's cancel button).
    ``batch``: frames per forward pass (default: :func:`frames_per_pass` for this frame size).

    Resumable (``esrgan.inference.video_parts``): the video is made in parts of ``part_seconds``, kept in a
    hidden folder beside ``dst`` until the output is whole; after an interruption the same call does only
    the missing parts, and the output's frames, audio and timestamps are those of an uninterrupted run.
    Parts from another input, model or setting raise :class:`ResumeRefused` (``restart`` discards them).
    ``ranks``: the processes of a torchrun job (each does every N-th part; rank 0 puts the output together).
    """
    src, dst = Path(src), Path(dst)
    ranks = ranks or Ranks()
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be >= 1; got {batch}")
    if (start is not None and not start >= 0) or (duration is not None and not duration > 0):  # NaN too
        raise ValueError(f"start must be >= 0 and duration > 0; got start={start}, duration={duration}")
    if not part_seconds > 0:
        raise ValueError(f"part_seconds must be > 0; got {part_seconds}")
    if upscaler.info.in_ch != 3 or upscaler.info.out_ch != 3:
        raise ValueError(f"video needs an RGB->RGB model; this one maps {upscaler.info.in_ch}->{upscaler.info.out_ch}")
    if dst.exists() and src.exists() and dst.samefile(src):
        raise ValueError(f"{src}: the output would overwrite the input")
    try:
        inp = av.open(str(src))
    except (av.FFmpegError, OSError) as exc:
        raise ValueError(f"{src}: cannot open as a video ({exc})") from exc
    stats = VideoStats()
    t0 = time.perf_counter()
    lock = None
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
        pix_fmt = encode.pix_fmt or ("yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p")
        stats.codec, stats.size = codec, (width, height)
        offset_s = start or 0.0
        end_s = offset_s + duration if duration is not None else None
        total = _estimate_frames(inp, vin, rate, offset_s, end_s)
        stats.frames_expected = total

        # What changes a pixel of the output, and what was chosen from this machine's free memory (the first
        # run's choice is kept by later ones: a layout that changed midway would show).
        manifest = {
            "format": video_parts.FORMAT,
            "version": video_parts.VERSION,
            "input": {"path": str(src.resolve()), **video_parts.file_fingerprint(src),
                      "stream": f"{vin.codec_context.name} {in_w}x{in_h} {rate} fps tb {vin.time_base} "
                                f"{vin.frames} frames", "audio": [a.codec_context.name for a in ains]},
            "model": {"name": upscaler.name, "weights_sha256": upscaler.weights_digest()},
            "settings": {
                "scale": upscaler.scale, "device": upscaler.device.type, "dtype": str(upscaler.dtype),
                "tile": upscaler.tile, "tile_pad": upscaler.tile_pad, "batch": batch,
                "channels_last": upscaler.channels_last, "color_fix": upscaler.color_fix, "codec": codec,
                "crf": encode.crf, "preset": encode.preset, "pix_fmt": pix_fmt, "start": start, "duration": duration,
                "skip_bad_frames": skip_bad_frames, "part_seconds": part_seconds,
            },
        }
        parts = video_parts.PartsFolder(dst)
        if ranks.rank == 0:
            try:
                lock = _lock_output(dst)
            except ExperimentInUseError as exc:
                failure: str | None = str(exc)
            else:
                failure = None
            chosen = None
            if failure is None:
                try:
                    chosen, resumed = _open_parts(parts, manifest, upscaler, in_h, in_w, rate, batch, part_seconds,
                                                  restart, verify=True, frames=total)
                except video_parts.ResumeRefused as exc:
                    failure = str(exc)
            failure, chosen = ranks.broadcast((failure, chosen))
        else:
            failure, chosen = ranks.broadcast((None, None))
            if failure is None:
                _, resumed = _open_parts(parts, {**manifest, "chosen": chosen}, upscaler, in_h, in_w, rate, batch,
                                         part_seconds, restart, verify=False, frames=total)
        if failure is not None:
            raise video_parts.ResumeRefused(failure)
        batch, tile, part_frames = chosen["batch"], chosen["tile"], chosen["part_frames"]
        if upscaler.tile == 0:
            upscaler = upscaler.batched(batch)  # whole frames (tiles when they do not fit): batch per pass
            if tile:
                upscaler = upscaler.tiled(tile)

        # Which parts are done (anywhere: ranks on other machines keep theirs), which are this rank's.
        done_where = ranks.gather(sorted(resumed.parts))
        done = {i for held in done_where for i in held}
        frames_total = ranks.broadcast(resumed.frames_total)
        resumed_frames = sum(ranks.gather(sum(r.frames for i, r in resumed.parts.items()
                                               if all(i not in held for held in done_where[: ranks.rank]))))
        stats.resumed_frames = resumed_frames
        mine = lambda p: p not in done and p % ranks.world_size == ranks.rank  # noqa: E731
        if resumed_frames:
            of = f" of {frames_total}" if frames_total else f" of about {total}" if total else ""
            logger.info("%s: resuming: %d%s frames (%d part%s) already done in %s", dst.name, resumed_frames, of,
                        len(done), "" if len(done) == 1 else "s", parts.path)
        logger.info(
            "%s: %dx%d %s fps -> %dx%d %s (%s), %d audio stream(s) copied; parts of %d frames%s",
            src.name, in_w, in_h, rate, width, height, codec, pix_fmt, len(ains), part_frames, ranks.describe(),
        )  # fmt: skip
        if start:
            inp.seek(int(start * av.time_base))  # to the keyframe before; earlier frames are dropped below

        left = (frames_total or total or 0) - resumed_frames
        share = -(-left // ranks.world_size) if left > 0 else None
        bar = tqdm(total=share, unit="frame", desc="video", disable=not show_progress or ranks.rank != 0,
                   dynamic_ncols=True)
        writer = _PartWriters(parts, codec, encode, pix_fmt, width, height, rate, vin.time_base)
        log_level = av.logging.get_level()
        # FFmpeg reports truncation and damaged data only in its log: let errors through while we run
        # (PyAV keeps FFmpeg's log off by default), captured per thread in the decoder stage.
        if log_level is None or log_level < av.logging.ERROR:
            av.logging.set_level(av.logging.ERROR)
        try:
            decoded = _run_pipeline(
                upscaler, inp, vin, offset_s, end_s, batch, part_frames, mine, writer, bar, stats,
                _DecodeCheck(src, vin, whole=not start and end_s is None, skip=skip_bad_frames, stats=stats),
                progress, resumed_frames, total,
            )
        except BaseException as exc:
            # Finished parts are kept for the next run; a folder with none (or a damaged input, which the next
            # run cannot finish either) is removed. Under torchrun the other ranks may still write: left.
            if not ranks.distributed and (isinstance(exc, VideoDecodeError) or not parts.present()):
                parts.remove()
            raise
        finally:
            av.logging.set_level(log_level)
            bar.close()
        if len(set(ranks.gather(decoded))) != 1:
            raise RuntimeError(f"{src}: the ranks decoded different numbers of frames: {ranks.gather(decoded)}")
        if decoded == 0:
            raise ValueError(f"{src}: no video frames to upscale" + (" in the section asked for" if start or duration
                                                                        else ""))
        stats.frames = decoded
        if ranks.rank == 0:
            parts.write_end(decoded)
        n_parts = -(-decoded // part_frames)
        records = _gather_parts(parts, n_parts, ranks, src)
        failure = None
        if ranks.rank == 0:
            try:
                _check_parts(records, decoded, part_frames, parts)
                stats.audio_packets = _assemble(parts, records, src, dst, offset_s, end_s, rate)
            except (ValueError, OSError, av.FFmpegError) as exc:
                failure = exc
        ok = ranks.broadcast(failure is None)
        if failure is not None:
            raise failure
        if not ok:
            raise RuntimeError(f"{dst}: rank 0 could not put the output together (see its message)")
        # Rank 0 first (on a shared disk that is every part), then the others, for what their own disks hold.
        ranks.barrier()
        if ranks.rank == 0:
            parts.remove()
        ranks.barrier()
        if ranks.rank != 0:
            parts.remove()
    finally:
        inp.close()
        if lock is not None:
            lock.release()
    stats.seconds = time.perf_counter() - t0
    return stats


def finished_video(dst: str | os.PathLike[str]) -> bool:
    """Whether ``dst`` is the finished output of a job whose parts are still beside it (the job died between
    renaming the output into place and removing its parts); if so the parts are removed."""
    parts = video_parts.PartsFolder(Path(dst))
    if not (Path(dst).is_file() and parts.finished()):
        return False
    lock = _lock_output(Path(dst))
    try:
        parts.remove()
    finally:
        lock.release()
    return True


def _lock_output(dst: Path) -> ExperimentLock:
    """One job per output (``.<name>.lock`` beside it; the kernel frees it however the job ends)."""
    try:
        return ExperimentLock(dst, what="esrgan video job").acquire()
    except ExperimentInUseError as exc:
        holder = str(exc).split(" is in use by another ", 1)[-1].split("; wait for it", 1)[0]
        raise ExperimentInUseError(f"{dst}: another {holder} is writing this output; wait for it to end or stop "
                                   "it, or choose another output name") from None


def _open_parts(
    parts: video_parts.PartsFolder, manifest: dict[str, Any], upscaler: Upscaler, in_h: int, in_w: int,
    rate: Fraction, batch: int | None, part_seconds: float, restart: bool, *, verify: bool, frames: int | None,
) -> tuple[dict[str, int], video_parts.Resumed]:
    """Check or start the parts folder; return the choices the parts were made with and what is done."""
    found = parts.read_manifest() if not restart else None
    if found is not None:
        chosen = found.get("chosen")  # what the parts were made with: kept (checked below)
    elif "chosen" in manifest:
        chosen = manifest["chosen"]
    else:
        if batch is None:
            batch = choose_frames_per_pass(upscaler, in_h, in_w, frames)
            logger.info("%d frame(s) per forward pass (--batch)", batch)
        tile = upscaler.tile
        if tile == 0:
            # One tile layout for the whole video, sized from the memory free now. Sized per frame it moved (the
            # allocator keeps what earlier frames freed: 1056- then 1024-pixel tiles on 1080p), and with the
            # layout the rounding near tile borders changes from frame to frame: flicker where nothing moves.
            tile = upscaler.batched(batch).auto_tile(in_h, in_w, images=batch)
            if tile:
                logger.info("%dx%d frames do not fit in memory whole: %d-pixel tiles for every frame", in_w, in_h,
                            tile)
        chosen = {"batch": batch, "tile": tile, "part_frames": part_frames_for(rate, part_seconds, batch)}
    valid = (isinstance(chosen, dict) and all(isinstance(chosen.get(k), int) for k in ("batch", "tile", "part_frames"))
             and chosen["batch"] >= 1 and chosen["tile"] >= 0 and chosen["part_frames"] >= 1)
    if not valid:
        raise video_parts.ResumeRefused(f"{parts.path / video_parts.MANIFEST}: its 'chosen' entry is damaged "
                                        f"({chosen!r}); pass --restart to discard the parts and start afresh")
    resumed = parts.start({**manifest, "chosen": chosen}, restart=restart, verify=verify)
    return chosen, resumed


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




class _PartWriters:
    """The encoder stage's side of the parts: one container per part, its packets' timestamps recorded."""

    def __init__(self, parts: video_parts.PartsFolder, codec: str, encode: EncodeOptions, pix_fmt: str, width: int,
                 height: int, rate: Fraction, time_base: Fraction) -> None:
        self.parts, self.codec, self.encode, self.pix_fmt = parts, codec, encode, pix_fmt
        self.width, self.height, self.rate, self.time_base = width, height, rate, time_base
        self.index: int | None = None
        self._ctx: Any = None

    def open(self, index: int, first_frame: int) -> None:
        self.index, self.first_frame = index, first_frame
        self._ctx = self.parts.writing(index)
        tmp = self._ctx.__enter__()
        self.out = av.open(str(tmp), "w")
        self.stream = self.out.add_stream(self.codec, rate=self.rate, options=_encoder_options(self.encode, self.codec))
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.width, self.height, self.pix_fmt
        self.stream.time_base = self.time_base
        self.stream.codec_context.time_base = self.time_base
        self.stream.thread_type = "AUTO"
        self.frame_pts: list[int] = []
        self.packets: list[list[int]] = []
        self.packet_tb: Fraction | None = None

    def write(self, arr: np.ndarray, pts: int) -> None:
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
        frame.pts, frame.time_base = pts, self.time_base
        self.frame_pts.append(pts)
        self._mux(self.stream.encode(frame))

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:
            self.packet_tb = self.packet_tb or packet.time_base
            self.packets.append([packet.pts, packet.dts, int(packet.is_keyframe)])
            self.out.mux(packet)

    def close(self) -> None:
        """Flush the encoder, rename the part into place and record it: the part is done."""
        self._mux(self.stream.encode())
        extradata = bytes(self.stream.codec_context.extradata or b"").hex()
        self.out.close()
        ctx, self._ctx = self._ctx, None
        ctx.__exit__(None, None, None)
        size, sha = self.parts.sealed(self.index)
        tb = self.packet_tb or self.time_base
        self.parts.commit(video_parts.PartRecord(
            index=self.index, first_frame=self.first_frame, frame_pts=self.frame_pts, packets=self.packets,
            time_base=[tb.numerator, tb.denominator], extradata=extradata, size=size, sha256=sha,
        ))  # fmt: skip
        self.index = None

    def abort(self, exc: BaseException) -> None:
        """An unfinished part: its temporary file is removed."""
        if self._ctx is None:
            return
        with contextlib.suppress(Exception):
            self.out.close()
        ctx, self._ctx = self._ctx, None
        with contextlib.suppress(BaseException):
            ctx.__exit__(type(exc), exc, exc.__traceback__)
        self.index = None


def _run_pipeline(
    upscaler: Upscaler,
    inp: Any,
    vin: Any,
    start_s: float,
    end_s: float | None,
    batch: int,
    part_frames: int,
    mine: Callable[[int], bool],
    writer: _PartWriters,
    bar: tqdm,
    stats: VideoStats,
    check: _DecodeCheck,
    progress: Callable[[int, int | None], None] | None,
    resumed: int,
    total: int | None,
) -> int:
    """Decode every frame; upscale and encode those of this process's parts still to do; return the frames
    decoded (the whole video's count, the same on every rank)."""
    stop = threading.Event()
    decoded = _Pipe(3 * batch + 16, stop)
    upscaled = _Pipe(3, stop, drain=True)  # holds whole batches
    count = [0]

    def decode() -> None:
        with av.logging.Capture(local=True) as logs:
            n = demux_and_decode()
        check.at_end(n, list(logs))
        decoded.put(("end", n))

    def demux_and_decode() -> int:
        n = 0
        for packet in inp.demux(vin):
            if stop.is_set():
                return n
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
                    return n
                if t >= start_s - 1e-6:
                    part = n // part_frames
                    if mine(part):  # frames of other parts are only counted (no conversion, no network)
                        decoded.put(("frame", part, n, frame.to_ndarray(format="rgb24"), frame.pts))
                    n += 1
        return n

    v_offset = round(start_s / vin.time_base)

    def encode() -> None:
        try:
            while (item := upscaled.get()) is not _END:
                if item[0] == "close":
                    writer.close()
                    continue
                _, part, first, arrays, pts = item
                if writer.index != part:
                    writer.open(part, first)
                for arr, p in zip(arrays, pts):
                    writer.write(arr, p - v_offset)
        except BaseException as exc:
            writer.abort(exc)
            raise

    stages = [_Stage(decode, "esrgan-video-decode", stop), _Stage(encode, "esrgan-video-encode", stop)]
    for stage in stages:
        stage.start()
    frames: list[np.ndarray] = []
    pts: list[int] = []
    current: list[int | None] = [None, None]  # part, its first frame's index

    def flush() -> None:
        if not frames:
            return
        t = time.perf_counter()
        result = _tensor_to_frames(upscaler.upscale_tensor(_frames_to_tensor(frames)))
        stats.model_seconds += time.perf_counter() - t
        upscaled.put(("frames", current[0], current[1], result, list(pts)))
        count[0] += len(frames)
        bar.update(len(frames))
        frames.clear()
        pts.clear()
        if progress is not None:
            progress(resumed + count[0], total)

    try:
        while True:
            item = decoded.get()
            if item[0] == "end":
                n = item[1]
                break
            _, part, index, arr, p = item
            if part != current[0]:
                flush()
                if current[0] is not None:
                    upscaled.put(("close",))
                current[:] = [part, index]
            frames.append(arr)
            pts.append(p)
            if len(frames) == batch:
                flush()
        flush()
        if current[0] is not None:
            upscaled.put(("close",))
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
    stop.set()
    stages[0].join()
    for stage in stages:
        if stage.error is not None and not isinstance(stage.error, _Stopped):
            raise stage.error
    return n


def _gather_parts(
    parts: video_parts.PartsFolder, n_parts: int, ranks: Ranks, src: Path
) -> list[video_parts.PartRecord] | None:
    """On rank 0, every part's record, its file in rank 0's parts folder (parts another rank made on a
    disk rank 0 does not see are sent over); None on the other ranks."""
    held = ranks.gather(parts.present())
    if ranks.rank == 0:
        here = parts.done_parts(list(range(n_parts)))
        fetch = []
        for i in range(n_parts):
            if i not in here:
                owner = next((r for r in range(1, ranks.world_size) if i in held[r]), None)
                fetch.append((i, owner))
        fetch = ranks.broadcast(fetch)
    else:
        fetch = ranks.broadcast(None)
    for i, owner in fetch:
        if owner is None:
            continue
        if ranks.rank == owner:
            ranks.send_file(parts.part_path(i), 0)
            ranks.send_file(parts.record_path(i), 0)
        elif ranks.rank == 0:
            with parts.writing(i) as tmp:
                ranks.recv_file(tmp, owner)
            with atomic_path(parts.record_path(i)) as tmp:
                ranks.recv_file(tmp, owner)
    if ranks.rank != 0:
        return None
    records = parts.done_parts(list(range(n_parts)))
    missing = [i for i in range(n_parts) if i not in records]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise ValueError(f"{src}: part(s) {shown} of {n_parts} are missing or damaged in {parts.path} (a rank's "
                         "part lost?); run the same command again to redo them")
    return [records[i] for i in range(n_parts)]


def _check_parts(records: list[video_parts.PartRecord] | None, decoded: int, part_frames: int,
                 parts: video_parts.PartsFolder) -> None:
    assert records is not None
    for r in records:
        expected = min(part_frames, decoded - r.index * part_frames)
        if r.first_frame != r.index * part_frames or r.frames != expected:
            raise ValueError(f"{parts.record_path(r.index)}: part {r.index} holds {r.frames} frames from frame "
                             f"{r.first_frame}, expected {expected} from {r.index * part_frames}; run again with "
                             "--restart")
        if r.extradata != records[0].extradata or r.time_base != records[0].time_base:
            raise ValueError(f"{parts.part_path(r.index)}: encoded with other encoder settings than part 0; run "
                             "again with --restart")


def _assemble(
    parts: video_parts.PartsFolder, records: list[video_parts.PartRecord] | None, src: Path, dst: Path,
    start_s: float, end_s: float | None, rate: Fraction,
) -> int:
    """Put the output together: the parts' packets with their recorded timestamps, and the input's audio
    packets as they are. Written under a temporary name and renamed; returns the audio packets copied."""
    assert records is not None
    tb = Fraction(*records[0].time_base)
    frame_pts = sorted(p for r in records for p in r.frame_pts)
    # Each frame lasts until the next one starts (the last: one frame at the nominal rate).
    durations = {a: b - a for a, b in itertools.pairwise(frame_pts)}
    durations[frame_pts[-1]] = max(round(1 / (rate * tb)), 1)
    audio_packets = [0]
    with atomic_path(dst) as tmp:
        with av.open(str(parts.part_path(0))) as first, av.open(str(src)) as inp, av.open(str(tmp), "w") as out:
            vout = out.add_stream_from_template(first.streams.video[0])
            vout.time_base = tb
            vout.codec_context.framerate = rate
            ains = list(inp.streams.audio)
            aouts = {a.index: out.add_stream_from_template(a) for a in ains}

            def video() -> Any:
                last_dts = None
                for r in records:
                    with av.open(str(parts.part_path(r.index))) as c:
                        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
                        if len(packets) != len(r.packets):
                            raise ValueError(f"{parts.part_path(r.index)}: {len(packets)} packets, its record lists "
                                             f"{len(r.packets)}; run the same command again with --restart")
                        for packet, (pts, dts, key) in zip(packets, r.packets):
                            packet.time_base, packet.pts, packet.dts = tb, pts, dts
                            packet.duration, packet.is_keyframe = durations.get(pts, 0), bool(key)
                            if last_dts is not None and dts is not None and packet.dts <= last_dts:
                                # a part's first packets are timed back from its first frame: keep decode
                                # order strictly increasing across the join (presentation times untouched)
                                packet.dts = last_dts + 1
                            last_dts = packet.dts if dts is not None else last_dts
                            packet.stream = vout
                            yield float(packet.dts * tb), packet

            def audio() -> Any:
                if not ains:
                    return
                if start_s:
                    inp.seek(int(start_s * av.time_base))
                for packet in inp.demux(*ains):
                    if packet.dts is None:
                        continue
                    t = _seconds(packet.pts, packet.time_base)
                    if end_s is not None and t >= end_s:
                        continue
                    if start_s and t < start_s - 1e-6:  # whole packets only (copied audio is not cut)
                        continue
                    shift = round(start_s / packet.time_base)
                    if shift:
                        packet.pts -= shift
                        packet.dts -= shift
                    packet.stream = aouts[packet.stream.index]
                    yield _seconds(packet.dts, packet.time_base), packet

            for _, packet in heapq.merge(video(), audio(), key=lambda item: item[0]):
                if packet.stream is not vout:
                    audio_packets[0] += 1
                out.mux(packet)
        parts.mark_finished(tmp)
    return audio_packets[0]
