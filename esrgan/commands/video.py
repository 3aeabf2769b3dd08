"""``esrgan video``: upscale a video, keeping frame rate, timestamps, frame count and audio."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from esrgan.commands.common import (
    add_model_args,
    build_upscaler,
    check_device,
    join_ranks,
    setup_cli_logging,
)
from esrgan.inference.ranks import Ranks
from esrgan.inference.video_parts import PART_SECONDS
from esrgan.utils.signals import Terminated

logger = logging.getLogger("esrgan.inference.video")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="esrgan video",
        description="Upscale a video with PyAV: decode, network and encode overlap; audio streams are copied as "
        "they are. Made in parts kept beside OUT until it is whole: after an interruption (Ctrl-C, kill, a crash, "
        "a full disk) the same command continues where it stopped. torchrun --nproc-per-node N -m esrgan video "
        "... shares the parts among N processes.",
    )
    p.add_argument("input", metavar="IN", help="video file (anything FFmpeg reads: mp4, mkv, mov, webm, ...)")
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="output file, or a folder for <name>_x<s>.<ext>"
    )
    p.add_argument("--codec", default="libx264", help="video encoder (default: libx264; falls back if missing)")
    p.add_argument("--crf", type=int, default=18, help="constant-quality factor for x264/x265/vp9 (default: 18)")
    p.add_argument("--preset", help="encoder preset, e.g. veryfast, medium, slow (default: the encoder's)")
    p.add_argument("--pix-fmt", help="output pixel format (default: yuv420p, or yuv444p for odd sizes)")
    p.add_argument("--start", type=float, help="start of the section, in seconds")
    p.add_argument("--duration", type=float, help="length of the section, in seconds")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists from before")
    p.add_argument(
        "--restart",
        action="store_true",
        help="discard the parts an interrupted run left (made with other settings, say) and start afresh",
    )
    p.add_argument(
        "--part-seconds",
        type=float,
        default=PART_SECONDS,
        help=f"seconds of video per part: the most an interruption can cost, and where keyframes are forced "
        f"(default: {PART_SECONDS:g})",
    )
    p.add_argument(
        "--skip-bad-frames",
        action="store_true",
        help="on a damaged input (truncated, corrupt frames) write the frames that decode and report those "
        "lost (default: fail and write nothing)",
    )
    p.add_argument(
        "--batch",
        type=int,
        help="frames per forward pass (default: from the frame size, device, precision and free memory: "
        "1 on a CPU, up to 8 on a GPU)",
    )
    add_model_args(p)
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        parser.error(f"--batch must be >= 1, got {args.batch}")
    if args.start is not None and not 0 <= args.start < float("inf"):  # NaN too
        parser.error(f"--start must be a number of seconds >= 0, got {args.start}")
    if args.duration is not None and not args.duration > 0:
        parser.error(f"--duration must be > 0 seconds, got {args.duration}")
    if not args.part_seconds > 0:
        parser.error(f"--part-seconds must be > 0, got {args.part_seconds}")
    check_device(parser, args.device)
    try:
        with join_ranks() as ranks:
            setup_cli_logging(args.verbose, rank=ranks.rank)
            return _run(parser, args, ranks)
    except KeyboardInterrupt as exc:
        # Only whole parts were kept (a part being written is removed): the same command continues from them.
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        logger.error("%s: no output written (%s); the finished parts are kept: run the same command again to "
                     "continue", what, args.output)
        return exc.exit_code if isinstance(exc, Terminated) else 130


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, ranks: Ranks) -> int:
    import av

    from esrgan.inference.video import EncodeOptions, VideoDecodeError, finished_video, upscale_video
    from esrgan.inference.video_parts import ResumeRefused

    src = Path(args.input)
    if not src.is_file():
        logger.error("%s: %s", src, "a folder, not a video file" if src.is_dir() else "no such video file")
        return 1
    upscaler = build_upscaler(args, show_progress=False)
    if upscaler is None:
        return 1
    dst = Path(args.output)
    if dst.is_dir() or not dst.suffix:
        dst = dst / f"{src.stem}_x{upscaler.scale}{src.suffix}"
    if dst.exists() and dst.samefile(src):
        parser.error(f"{src}: the output would overwrite the input")
    if dst.exists() and not args.overwrite:
        try:
            finished = ranks.broadcast(finished_video(dst) if ranks.rank == 0 else None)
        except ValueError as exc:  # another job holds the output
            logger.error("%s", exc)
            return 1
        if finished:
            logger.info("%s: already finished (the parts a run left beside it are removed)", dst)
            return 0
        parser.error(f"{dst} exists from before: pass --overwrite to replace it")

    encode = EncodeOptions(codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt)
    try:
        stats = upscale_video(
            upscaler, src, dst, encode=encode, start=args.start, duration=args.duration, batch=args.batch,
            skip_bad_frames=args.skip_bad_frames, part_seconds=args.part_seconds, restart=args.restart, ranks=ranks,
        )  # fmt: skip
    except (VideoDecodeError, ResumeRefused) as exc:
        logger.error("%s", exc)
        return 1
    except (ValueError, OSError, RuntimeError, av.FFmpegError) as exc:
        logger.error("%s: %s: %s; no output written", src, type(exc).__name__, exc)
        return 1
    if ranks.rank != 0:
        return 0
    if stats.decode_problems:
        lost = f"{stats.frames_lost} frame(s) lost" if stats.frames_expected else "frames lost (count unknown)"
        expected = f" of about {stats.frames_expected}" if stats.frames_expected else ""
        logger.warning(
            "%s: damaged input, %s (wrote the %d%s that decode): %s",
            src, lost, stats.frames, expected, "; ".join(stats.decode_problems),
        )  # fmt: skip
    share = stats.model_seconds / stats.seconds if stats.seconds else 0.0
    # A CPU with a large model takes seconds per frame, where "0.01 frames/s" would say little.
    done = stats.frames - stats.resumed_frames
    fps = done / stats.seconds if stats.seconds else 0.0
    rate = f"{fps:.2f} frames/s" if fps >= 1 or not fps else f"{1 / fps:.1f} s/frame"
    resumed = f" ({stats.resumed_frames} resumed from an earlier run)" if stats.resumed_frames else ""
    logger.info(
        "%s: %d frames%s, %d audio packets, %s%s (network %.0f%% of the time)",
        dst, stats.frames, resumed, stats.audio_packets, rate, ranks.describe(), 100 * share,
    )  # fmt: skip
    return 0
