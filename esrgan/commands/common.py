"""Options shared by ``esrgan upscale`` and ``esrgan video``: the model, device, precision and tiling."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator

import torch
from tqdm import tqdm

from esrgan.inference.color_fix import COLOR_FIXES, DEFAULT_COLOR_FIX
from esrgan.inference.ranks import Ranks
from esrgan.inference.upscaler import ALPHA_UPSAMPLERS, PRECISIONS, TILE_PADS, Upscaler

DEFAULT_MODEL = "RRDB_ESRGAN_x4"


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model and device")
    g.add_argument(
        "--model",
        "-m",
        default=DEFAULT_MODEL,
        help=f"zoo name or checkpoint path (.pth/.safetensors; architecture detected) (default: {DEFAULT_MODEL})",
    )
    g.add_argument("--device", choices=("cpu", "cuda", "mps"), help="default: cuda, else mps, else cpu")
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto = fp16 on GPU; on CPU bf16 where it has native bf16 (AMX / AVX512-BF16), else fp32 (default: auto)",
    )
    g.add_argument(
        "--tile",
        type=int,
        default=0,
        help="tile size in input pixels; 0 = automatic: the whole image when it fits in half the free memory, "
        "else the largest tiles that do (default: 0)",
    )
    g.add_argument(
        "--tile-pad",
        type=int,
        default=None,
        help=f"context pixels around each tile (default: {TILE_PADS[torch.float32]}, {TILE_PADS[torch.bfloat16]} in "
        "bf16: tiles within a few levels of the whole-image result)",
    )
    g.add_argument(
        "--batch-tiles",
        type=int,
        default=1,
        help="tiles per forward pass (default: 1)",
    )
    g.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC memory layout (default: on for cpu and cuda)",
    )
    g.add_argument(
        "--color-fix",
        choices=COLOR_FIXES,
        default=DEFAULT_COLOR_FIX,
        help="put the input's colours back: wavelet = the input's low frequencies under the network's detail, "
        f"histogram = each channel's histogram matched to the input's (default: {DEFAULT_COLOR_FIX}; "
        "see docs/upscaling.md for the measured colour drift)",
    )


def add_alpha_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--alpha-upsampler",
        choices=ALPHA_UPSAMPLERS,
        default="model",
        help="how the alpha channel of RGBA images is enlarged (default: model)",
    )


def check_device(parser: argparse.ArgumentParser, device: str | None) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine (torch sees no GPU)")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        parser.error("--device mps: Apple MPS is not available on this machine")


def build_upscaler(args: argparse.Namespace, *, show_progress: bool) -> Upscaler | None:
    """The command's Upscaler, or None after logging why the model did not load (the command exits 1)."""
    try:
        return Upscaler(
            args.model,
            device=args.device,
            tile=args.tile,
            tile_pad=args.tile_pad,
            precision=args.precision,
            channels_last=args.channels_last,
            batch_tiles=args.batch_tiles,
            alpha_upsampler=getattr(args, "alpha_upsampler", "model"),
            show_progress=show_progress,
            color_fix=args.color_fix,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        logging.getLogger("esrgan.inference").error("cannot load model %s: %s", args.model, exc)
        return None


class _TqdmHandler(logging.Handler):
    """Writes above the progress bars (``tqdm.write``) to the current ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def setup_cli_logging(verbose: bool = False, rank: int = 0) -> None:
    """Messages of the ``esrgan`` loggers on stderr, above the progress bars (installed once).

    Under torchrun the first process tells the story; the others print only warnings and errors, marked
    with their rank."""
    log = logging.getLogger("esrgan")
    handler = next((h for h in log.handlers if isinstance(h, _TqdmHandler)), None)
    if handler is None:
        handler = _TqdmHandler()
        log.addHandler(handler)
    handler.setFormatter(logging.Formatter(("%(levelname)s: " if rank == 0 else f"%(levelname)s: rank {rank}: ")
                                           + "%(message)s"))
    log.setLevel(logging.DEBUG if verbose else logging.INFO if rank == 0 else logging.WARNING)


# A torchrun rank waits for the others at the end (their last parts); torchrun itself ends the job when one fails.
_RANKS_TIMEOUT_S = 7 * 24 * 3600.0


@contextlib.contextmanager
def join_ranks() -> Iterator[Ranks]:
    """The process group of a ``torchrun`` launch (gloo: only file lists and part files travel between ranks,
    on GPU machines too), or one process when not launched by torchrun; the group is closed on the way out."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield Ranks()
        return
    from esrgan.training import dist

    dist.init_dist("pytorch", backend="gloo", timeout_s=_RANKS_TIMEOUT_S)
    try:
        yield Ranks.current()
    finally:
        dist.destroy()
