"""``Upscaler``: run a super-resolution network over images of any size.

Whole-image or tiled (same-size overlapping windows, batched), at the precision that
suits the device, in ``torch.inference_mode``. One instance serves concurrent calls
from several threads: everything a call needs lives in that call's local variables;
the instance holds only what was fixed at construction.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from esrgan.archs.sizes import SizeRequirements, pad_to_fit
from esrgan.data.image import max_value
from esrgan.inference.color_fix import apply_color_fix, check_color_fix
from esrgan.inference.tiling import tile_grid
from esrgan.utils.hardware import cpu_native_bf16, cuda_native_bf16, fast_dtype, free_memory

logger = logging.getLogger("esrgan.inference")

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
ALPHA_UPSAMPLERS = ("model", "bicubic")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_NAMES = {v: k for k, v in _DTYPES.items()}
_LOGGED: set[str] = set()
# Grey from RGB as OpenCV's RGB2GRAY (BT.601 luma), used to fold a 3-channel output of a grey input back.
_LUMA = (0.299, 0.587, 0.114)
# How a colour network's output is folded back to grey for a grey input (also printed by the tester).
GREY_FROM_RGB = "BT.601 luma (0.299 R + 0.587 G + 0.114 B)"
# A tile never gets smaller than this when halving after an out-of-memory error.
MIN_TILE = 16
# Context read around each tile, in input pixels, by compute dtype, when no tile_pad is given. Tiles differ
# from the whole-image output by the error a border at this distance leaves: with real weights (RealESRGAN
# anime_6B, Set14 crops, fp32) 10 px leave up to 146 levels of 255, 32 px up to 13, 48 px at most 3. bf16 needs
# more: it rounds every activation to 8 significant bits, and the tiny difference a far border still makes
# flips some of those roundings, which the network amplifies; at 48 px tiled bf16 is up to 11 levels from
# whole-image bf16, at 80 px at most 4 (fp16, 11 bits: 4 levels at 48 px). benchmarks/bench_upscale_real.py.
TILE_PADS = {torch.float32: 48, torch.float16: 48, torch.bfloat16: 80}
# Automatic tiles: the whole image when its activations fit in this share of the free memory,
# else the largest tiles that do (other processes and the output image need the rest).
MEMORY_SHARE = 0.5
# Peak memory of a forward pass / the largest activation of the network (measured 3.0x in fp32 and
# 2.3x in bf16 for RRDBNet x4 on the CPU): the margin covers allocator and convolution workspaces.
PEAK_PER_ACTIVATION = 4.0
# Automatic tiles keep every activation of one pass below 2**31 elements: CUDA kernels that index with 32-bit
# integers fail beyond (some convolutions with an illegal memory access, which no retry survives), and a card
# with 141 GB would otherwise run ~8.7 MP whole through RRDBNet x4 (1,024 activation elements per input pixel).
MAX_ACTIVATION_ELEMENTS = 2**31 - 1

# Receives (batch index, output rows y0:y1, output columns x0:x1, float NCHW block of one image) per piece.
Sink = Callable[[int, int, int, int, int, torch.Tensor], None]
# Receives (network passes done, passes in total) after each forward pass of one call; raising stops the call.
Progress = Callable[[int, int], None]


class _StepCounter:
    """Counts forward passes over the runs of one call (colour, alpha, each of ``passes``) for a ``Progress``.

    ``plan`` holds the expected passes of each run; a run restarted with smaller tiles after an
    out-of-memory error replaces its entry, so the total stays true and the count never runs past it.
    """

    def __init__(self, callback: Progress, plan: list[int] | None = None) -> None:
        self.callback = callback
        self.plan = list(plan or [])
        self.run = -1
        self.done = 0
        self.base = 0

    def start_run(self, steps: int, retry: bool) -> None:
        if retry:
            self.done = self.base
        else:
            self.run += 1
            self.base = self.done
        if self.run < len(self.plan):
            self.plan[self.run] = steps
        else:
            self.plan.append(steps)

    def step(self) -> None:
        self.done += 1
        self.callback(self.done, sum(self.plan))


def default_device() -> str:
    """``cuda`` if available, else ``mps`` if available, else ``cpu``."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _log_once(message: str) -> None:
    if message not in _LOGGED:
        _LOGGED.add(message)
        logger.info("%s", message)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype for ``precision`` on ``device``.

    ``auto``: fp16 on a GPU; on the CPU bf16 when it has native bf16 matrix instructions (AMX-BF16
    or AVX512-BF16, as torch reports them: about 4x faster than fp32 there, outputs ~48 dB from
    fp32), else fp32 (bf16 is emulated there and many times slower). The choice is logged once.
    fp16 on a CPU, or bf16 on a CPU without native support, runs when asked for, with a warning.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        dtype, reason = fast_dtype(device)
        if device.type in ("cuda", "mps"):
            _log_once(f"precision auto: {reason}")
        elif dtype == torch.bfloat16:
            _log_once(f"precision auto: bf16 ({reason}; fp32 on request)")
        else:
            _log_once(f"precision auto: fp32 ({reason})")
        return dtype
    dtype = _DTYPES[precision]
    if device.type == "cpu" and dtype == torch.float16:
        logger.warning("precision fp16 on the CPU: usually several times slower than fp32 (no fast fp16 convolutions)")
    elif device.type == "cpu" and dtype == torch.bfloat16 and not cpu_native_bf16():
        logger.warning(
            "precision bf16 on a CPU without native bf16 instructions (AMX-BF16, AVX512-BF16): many times "
            "slower than fp32 here"
        )
    if dtype == torch.bfloat16 and device.type == "cuda" and not cuda_native_bf16(device):
        logger.warning("precision bf16 on %s: emulated before compute capability 8.0 (Ampere), slower than fp16 here",
                       torch.cuda.get_device_name(device))
    return dtype


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 runs natively on ``device`` (a fallback for fp16 overflows worth trying before fp32)."""
    if device.type == "cuda":
        return cuda_native_bf16(device)
    return device.type == "cpu" and bool(cpu_native_bf16())


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures (not for other runtime errors).

    cuDNN and cuBLAS report a failed workspace allocation as their own status, not as torch's OutOfMemoryError.
    """
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        sign in msg for sign in ("out of memory", "can't allocate memory", "cudnn_status_alloc_failed",
                                 "cublas_status_alloc_failed")
    )


class NonFiniteOutputError(RuntimeError):
    """The network produced NaN or Inf values (broken weights, or an overflow no precision avoids)."""


@dataclass(frozen=True)
class ModelInfo:
    """What a network does to its input, found by running it on tiny inputs."""

    scale: int
    in_ch: int
    out_ch: int
    # Input height/width must be a multiple of this (4 for RRDBNet x1, 2 for x2: pixel-unshuffle; a window
    # size for some of spandrel's networks).
    multiple: int
    # Elements of the largest activation per input pixel (64 x 16 = 1024 for RRDBNet x4): what memory grows with.
    activation_per_pixel: float = 0.0
    # Input height/width must be at least this (smaller inputs and tiles are padded up to it).
    minimum: int = 0

    def sizes(self) -> SizeRequirements:
        return SizeRequirements(minimum=self.minimum, multiple_of=self.multiple)


def probe_model(
    model: nn.Module, device: torch.device, dtype: torch.dtype, sizes: SizeRequirements | None = None
) -> ModelInfo:
    """Find a network's scale, channels, input-size multiple and activation size by running it on tiny inputs.

    Works for any architecture, including ones that pixel-unshuffle their input (whose
    first convolution's channel count is not the image's). ``sizes``: what the network is known to
    need (``esrgan.archs.size_requirements``; spandrel's descriptors state it): the probe starts
    there, and the multiple found is a multiple of it.
    """
    sizes = sizes or SizeRequirements()
    base = 16 + sizes.padding(16, 16)[0]
    largest = [0]

    def record(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            largest[0] = max(largest[0], output.numel())

    def attempt(channels: int, size: int) -> torch.Tensor | None:
        x = torch.zeros(1, channels, size, size, device=device, dtype=dtype)
        try:
            return model(x)
        except (RuntimeError, ValueError) as exc:  # shape errors: torch raises RuntimeError, some archs ValueError
            if is_out_of_memory(exc):
                raise
            return None

    with torch.inference_mode():
        for in_ch in (3, 1, 4):
            out = attempt(in_ch, base)
            if out is not None:
                break
        else:
            raise ValueError(
                f"cannot run {type(model).__name__} on a 1x3x{base}x{base}, 1x1x{base}x{base} or 1x4x{base}x{base} "
                "input: is it an image-to-image network?"
            )
        if out.ndim != 4 or out.shape[-1] % base or out.shape[-2] != out.shape[-1]:
            raise ValueError(
                f"{type(model).__name__} maps a {base}x{base} input to shape {tuple(out.shape)}; "
                "expected an NCHW image enlarged by a whole factor"
            )
        scale = out.shape[-1] // base
        multiple = next((m for m in (1, 2, 4, 8) if attempt(in_ch, base + m) is not None), base)
        multiple = sizes.merge(SizeRequirements(multiple_of=multiple)).multiple_of
        # The largest module output on a 32x32 input (borders are a small share there) sizes the memory need.
        size = max(32, sizes.minimum)
        size += -size % multiple
        hooks = [m.register_forward_hook(record) for m in model.modules()]
        try:
            final = attempt(in_ch, size)
        except (torch.OutOfMemoryError, RuntimeError):  # even a 32x32 input fails: size from the 16x16 output
            final = None
        finally:
            for h in hooks:
                h.remove()
        largest[0] = max(largest[0], final.numel() if final is not None else out.numel() * 4)
    return ModelInfo(
        scale=scale, in_ch=in_ch, out_ch=int(out.shape[1]), multiple=multiple,
        activation_per_pixel=largest[0] / (size * size), minimum=sizes.minimum,
    )  # fmt: skip


def _counter(progress: Progress | None) -> _StepCounter | None:
    return _StepCounter(progress) if progress is not None else None


def _resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Final resize for ``outscale``: area when shrinking (no aliasing), Lanczos when enlarging."""
    shrink = height * width < img.shape[0] * img.shape[1]
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)
    return out[:, :, None] if img.ndim == 3 and out.ndim == 2 else out


class Upscaler:
    """Upscale images and tensors with a super-resolution network.

    ``model``: an ``nn.Module`` (copied, never modified) or a checkpoint path / zoo name
    (``esrgan.load_model``). ``tile``: core tile size in input pixels; ``0`` (the default) =
    automatic: the whole image when the network's activations for it fit in half the device's
    free memory, else the largest tiles that do (and smaller ones after an out-of-memory error).
    ``tile_pad``: context read around each tile (default: 48 pixels, 80 in bf16, see ``TILE_PADS``: tiles
    within a few levels of 255 of the whole-image output with real weights).
    ``batch_tiles``: tiles (or whole images of a batch, untiled) per forward pass.
    ``precision``: auto|fp32|fp16|bf16 (auto = fp16 on GPU; bf16 on CPUs with native bf16, else fp32).
    ``channels_last``: default on for CPU and CUDA. ``alpha_upsampler``: "model" (alpha run
    through the network as a grey image) or "bicubic". ``show_progress``: a tqdm bar over tiles.
    ``color_fix``: none|wavelet|histogram (``esrgan.inference.color_fix``): the input's colours put back into
    the output (once, after the last of ``passes``, before ``outscale``; alpha is left as the network made it).
    The class runs the network as it is unless asked; the commands and the web page ask for
    ``DEFAULT_COLOR_FIX`` (wavelet, measured).
    A NaN/Inf output is redone at a wider precision (fp16 -> bf16 -> fp32) with one warning, and
    raises ``NonFiniteOutputError`` naming the model when even fp32 gives one.
    """

    def __init__(
        self,
        model: nn.Module | str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        tile: int = 0,
        tile_pad: int | None = None,
        precision: str = "auto",
        channels_last: bool | None = None,
        batch_tiles: int = 1,
        alpha_upsampler: str = "model",
        show_progress: bool = False,
        color_fix: str = "none",
    ) -> None:
        if tile < 0 or (tile_pad is not None and tile_pad < 0):
            raise ValueError(
                f"tile must be >= 0 (0 = automatic, also where -1 meant it before; N = N-pixel tiles) and tile_pad "
                f">= 0; got tile={tile}, "
                f"tile_pad={tile_pad}"
            )
        if batch_tiles < 1:
            raise ValueError(f"batch_tiles must be >= 1; got {batch_tiles}")
        if alpha_upsampler not in ALPHA_UPSAMPLERS:
            raise ValueError(f"alpha_upsampler must be one of {', '.join(ALPHA_UPSAMPLERS)}; got {alpha_upsampler!r}")
        self.device = torch.device(device if device is not None else default_device())
        self.dtype = resolve_precision(precision, self.device)
        self.channels_last = self.device.type != "mps" if channels_last is None else bool(channels_last)
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.tile = int(tile)
        self.tile_pad = TILE_PADS[self.dtype] if tile_pad is None else int(tile_pad)
        self.batch_tiles = int(batch_tiles)
        self.alpha_upsampler = alpha_upsampler
        self.show_progress = show_progress
        self.color_fix = check_color_fix(color_fix)

        if isinstance(model, nn.Module):
            net = copy.deepcopy(model)
            self.name = type(model).__name__
        else:
            from esrgan import load_model

            net = load_model(str(model), device="cpu")
            self.name = str(model)
        net.eval().requires_grad_(False)
        # The full-precision weights, kept on the host for redoing a NaN/Inf output at a wider precision
        # (a module given on a GPU is moved off it: only the working copy stays on the device).
        self._reference = net.to("cpu") if self.dtype != torch.float32 else None
        self.model = (copy.deepcopy(net) if self._reference is not None else net).to(
            device=self.device, dtype=self.dtype, memory_format=self.memory_format
        )
        self._wider: dict[torch.dtype, nn.Module] = {}
        self._digest: str | None = None
        self._lock = threading.Lock()
        self._warned_non_finite = False
        from esrgan.archs import size_requirements

        self.info = probe_model(self.model, self.device, self.dtype, size_requirements(net))
        self.scale = self.info.scale

    def __repr__(self) -> str:
        tile = self.tile or "auto"
        return (
            f"Upscaler({type(self.model).__name__} x{self.scale}, device={self.device}, dtype={self.dtype}, "
            f"tile={tile}, tile_pad={self.tile_pad}, batch_tiles={self.batch_tiles}, "
            f"channels_last={self.channels_last}, color_fix={self.color_fix})"
        )

    def weights_digest(self) -> str:
        """SHA-256 of the network's full-precision weights (names, shapes, dtypes and values, in order): the
        same for the same network however it was loaded (a resumed video checks it)."""
        with self._lock:
            if self._digest is None:
                h = hashlib.sha256()
                for name, t in (self._reference or self.model).state_dict().items():
                    t = t.detach().to("cpu", torch.float32 if t.is_floating_point() else t.dtype).contiguous()
                    h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
                    h.update(t.numpy().tobytes())
                self._digest = h.hexdigest()
            return self._digest

    def batched(self, batch_tiles: int) -> Upscaler:
        """The same network (shared, not copied) run ``batch_tiles`` tiles or whole images per forward pass."""
        if batch_tiles < 1:
            raise ValueError(f"batch_tiles must be >= 1; got {batch_tiles}")
        return self._view(batch_tiles=int(batch_tiles))

    def tiled(self, tile: int) -> Upscaler:
        """The same network (shared, not copied) run in ``tile``-pixel tiles (0: automatic, per call)."""
        if tile < 0:
            raise ValueError(f"tile must be >= 0; got {tile}")
        return self._view(tile=int(tile))

    def _view(self, **settings: int) -> Upscaler:
        view = copy.copy(self)
        for name, value in settings.items():
            setattr(view, name, value)
        return view

    # ----------------------------------------------------------------- memory

    def bytes_per_pixel(self) -> float:
        """Estimated peak memory of a forward pass per input pixel (largest activation x margin)."""
        size = torch.empty((), dtype=self.dtype).element_size()
        return max(self.info.activation_per_pixel, 1.0) * size * PEAK_PER_ACTIVATION

    def auto_tile(self, height: int, width: int, images: int = 1, budget: float | None = None) -> int:
        """The tile size ``tile=0`` uses for ``images`` images of ``height x width`` per pass: 0 = whole images.

        ``budget``: bytes the network may use (default: ``MEMORY_SHARE`` of the device's free memory now, less
        the wider copies of the weights a NaN/Inf output would bring to the device).
        Tiles are as large as fit (fewest seams, least overlap work), a multiple of 8 input pixels, and no pass
        holds an activation of 2**31 elements or more (``MAX_ACTIVATION_ELEMENTS``).
        """
        if budget is None:
            budget = MEMORY_SHARE * free_memory(self.device) - self._fallback_bytes()
        per_pixel = self.bytes_per_pixel()
        largest_pass = MAX_ACTIVATION_ELEMENTS / max(self.info.activation_per_pixel, 1.0)  # input pixels
        budget = min(max(budget, 0.0), largest_pass * per_pixel)
        if images * height * width * per_pixel <= budget:
            return 0
        window = int((budget / (self.batch_tiles * per_pixel)) ** 0.5)
        tile = (window - 2 * self.tile_pad) // 8 * 8
        return max(tile, MIN_TILE, self.info.multiple)

    def _fallback_bytes(self) -> int:
        """Device memory the wider copies of the network not made yet would take (made at the first NaN/Inf)."""
        if self._reference is None:
            return 0
        numel = sum(t.numel() for t in (*self._reference.parameters(), *self._reference.buffers()))
        return sum(numel * d.itemsize for d in self._fallback_dtypes() if d not in self._wider)

    def _fallback_dtypes(self) -> list[torch.dtype]:
        """The wider precisions a NaN/Inf output is redone in, in order."""
        wider = [torch.bfloat16] if self.dtype == torch.float16 and bf16_is_fast(self.device) else []
        return wider + ([torch.float32] if self.dtype != torch.float32 else [])

    # ----------------------------------------------------------------- tensors

    def upscale_tensor(self, x: torch.Tensor, *, progress: Progress | None = None) -> torch.Tensor:
        """NCHW float in [0, 1] -> NCHW float in [0, 1] (clamped), ``scale`` times larger, on ``x``'s device.

        Tiled when ``tile > 0``, when the whole image does not fit in memory (``tile=0``) or after
        an out-of-memory error; the network's input only ever holds one batch of tiles, so its
        memory is bounded by the tile size.
        ``progress(done, total)`` is called after every forward pass; an exception raised in it stops the call.
        The colour fix (``color_fix``) is applied to each image against ``x``.
        """
        return self._color_fixed(self._upscale_tensor(x, _counter(progress)), x)

    def _color_fixed(self, out: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        if self.color_fix == "none":
            return out
        # On the network's device (a GPU does a 4K frame's wavelets in milliseconds), back where ``out`` was.
        fixed = apply_color_fix(self.color_fix, out.to(self.device), source.to(self.device))
        return fixed.to(out.device)

    def _upscale_tensor(self, x: torch.Tensor, counter: _StepCounter | None) -> torch.Tensor:
        self._check_tensor(x)
        n, _, h, w = x.shape
        out = torch.empty(n, self.info.out_ch, h * self.scale, w * self.scale, dtype=x.dtype, device=x.device)

        def sink(i: int, y0: int, y1: int, x0: int, x1: int, block: torch.Tensor) -> None:
            out[i, :, y0:y1, x0:x1] = block[0].clamp_(0, 1).to(out.device, out.dtype)

        self._run(x, sink, counter)
        return out

    def _check_tensor(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            got = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"upscale_tensor expects a float NCHW tensor in [0, 1]; got {got}")
        if x.shape[1] != self.info.in_ch:
            raise ValueError(f"the model takes {self.info.in_ch}-channel input; got a tensor of shape {tuple(x.shape)}")

    def forward_passes(self, n: int, height: int, width: int, tile: int | None = None) -> int:
        """How many forward passes a batch of ``n`` images of ``height`` x ``width`` takes at ``tile``."""
        tile = self.tile if tile is None else tile
        if tile == 0:
            tile = self.auto_tile(height, width, images=min(self.batch_tiles, n))
        m = self.info.multiple
        hp, wp = height + (-height % m), width + (-width % m)
        if tile == 0 or (tile >= hp and tile >= wp):
            return -(-n // self.batch_tiles)
        return -(-n * len(tile_grid(hp, wp, tile, self.tile_pad, m)) // self.batch_tiles)

    def _run(self, x: torch.Tensor, sink: Sink, counter: _StepCounter | None = None) -> None:
        """Run the whole batch, halving the tile and starting again after an out-of-memory error."""
        tile = self.tile
        if tile == 0:
            h, w = x.shape[-2:]
            tile = self.auto_tile(h, w, images=min(self.batch_tiles, x.shape[0]))
            if tile:
                logger.debug("%dx%d input: %d-pixel tiles (the whole image does not fit in memory)", w, h, tile)
        retry = False
        while True:
            if counter is not None:
                counter.start_run(self.forward_passes(x.shape[0], x.shape[-2], x.shape[-1], tile), retry)
            retry = True
            try:
                with torch.inference_mode():
                    self._forward(x, tile, sink, counter)
                return
            except (torch.OutOfMemoryError, RuntimeError) as exc:
                if not is_out_of_memory(exc):
                    raise
                failed = tile
            # Outside the except block, so the failed attempt's tensors (held by the traceback) are freed.
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            longest = max(x.shape[-2:])
            tile = (min(failed, longest) if failed else longest) // 2
            if tile < max(MIN_TILE, self.info.multiple):
                raise RuntimeError(
                    f"out of memory on {self.device} even with {failed}-pixel tiles; "
                    "use a smaller --tile, fewer --batch-tiles, or another device"
                )
            logger.warning(
                "out of memory on %s with %s; retrying this image with %d-pixel tiles",
                self.device,
                f"{failed}-pixel tiles" if failed else "the whole image",
                tile,
            )

    def _to_model(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        return x.to(device=self.device, dtype=dtype or self.dtype).contiguous(memory_format=self.memory_format)

    def _wider_model(self, dtype: torch.dtype) -> nn.Module:
        with self._lock:
            if dtype not in self._wider:
                assert self._reference is not None
                self._wider[dtype] = copy.deepcopy(self._reference).to(
                    device=self.device, dtype=dtype, memory_format=self.memory_format
                )
            return self._wider[dtype]

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        """The network on one batch (float32 result); a NaN/Inf output is redone at wider precisions.

        An input smaller than the network's minimum is padded up to it and the output cropped back.
        """
        h, w = x.shape[-2:]
        if self.info.minimum:
            x = pad_to_fit(x, self.info.sizes())
        result = self._infer_fitting(x)
        return result[..., : h * self.scale, : w * self.scale]

    def _infer_fitting(self, x: torch.Tensor) -> torch.Tensor:
        result = self.model(self._to_model(x)).float()
        if bool(torch.isfinite(result).all()):
            return result
        wider = self._fallback_dtypes()
        for dtype in wider:
            result = self._wider_model(dtype)(self._to_model(x, dtype)).float()
            if bool(torch.isfinite(result).all()):
                with self._lock:
                    warn, self._warned_non_finite = not self._warned_non_finite, True
                if warn:
                    logger.warning(
                        "%s: NaN/Inf output in %s (overflow); redone in %s (this and any later such tile or frame)",
                        self.name, _NAMES[self.dtype], _NAMES[dtype],
                    )  # fmt: skip
                return result
        tried = ", ".join(_NAMES[d] for d in [self.dtype, *wider])
        raise NonFiniteOutputError(
            f"model {self.name} produced NaN/Inf values (tried {tried}): its weights are probably broken "
            "(NaN/Inf in the checkpoint, or a diverged training run)"
        )

    def _forward(self, x: torch.Tensor, tile: int, sink: Sink, counter: _StepCounter | None = None) -> None:
        n, _, h, w = x.shape
        s, m = self.scale, self.info.multiple
        if h % m or w % m:
            # Networks that pixel-unshuffle need sizes divisible by m: pad (mirror, like Real-ESRGAN), crop after.
            ph, pw = -h % m, -w % m
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        hp, wp = x.shape[-2:]
        if tile == 0 or (tile >= hp and tile >= wp):
            for start in range(0, n, self.batch_tiles):  # whole images, up to batch_tiles per forward pass
                result = self._infer(x[start : start + self.batch_tiles])
                for j in range(result.shape[0]):
                    sink(start + j, 0, h * s, 0, w * s, result[j : j + 1, :, : h * s, : w * s])
                if counter is not None:
                    counter.step()
            return

        tiles = [(i, t) for i in range(n) for t in tile_grid(hp, wp, tile, self.tile_pad, m)]
        bar = tqdm(total=len(tiles), unit="tile", leave=False, disable=not self.show_progress or len(tiles) < 2)
        try:
            for start in range(0, len(tiles), self.batch_tiles):
                chunk = tiles[start : start + self.batch_tiles]
                windows = torch.cat(
                    [x[i : i + 1, :, t.y.win_start : t.y.win_end, t.x.win_start : t.x.win_end] for i, t in chunk]
                )
                result = self._infer(windows)
                for j, (i, t) in enumerate(chunk):
                    y0, y1 = t.y.core_start * s, min(t.y.core_end, h) * s
                    x0, x1 = t.x.core_start * s, min(t.x.core_end, w) * s
                    if y1 <= y0 or x1 <= x0:  # a core lying wholly in the size padding
                        continue
                    oy, ox = t.y.win_start * s, t.x.win_start * s
                    sink(i, y0, y1, x0, x1, result[j : j + 1, :, y0 - oy : y1 - oy, x0 - ox : x1 - ox])
                bar.update(len(chunk))
                if counter is not None:
                    counter.step()
        finally:
            bar.close()

    # ----------------------------------------------------------------- numpy images

    def upscale(
        self, img: np.ndarray, outscale: float | None = None, *, passes: int = 1, progress: Progress | None = None
    ) -> np.ndarray:
        """Upscale an image array as read by ``esrgan.data.image.imread``.

        ``img``: HW grey, HWC grey/RGB/RGBA; uint8 or uint16 (16-bit stays 16-bit).
        Returns the same layout and dtype, ``scale ** passes`` times larger, or resized
        to ``round(h * outscale) x round(w * outscale)`` when ``outscale`` is given.
        ``progress(done, total)``: forward passes over the whole call (colour, alpha, every pass),
        called after each; an exception raised in it stops the call (a web app's cancel button).
        """
        if not isinstance(img, np.ndarray) or img.dtype not in (np.uint8, np.uint16):
            got = img.dtype if isinstance(img, np.ndarray) else type(img).__name__
            raise ValueError(f"upscale expects a uint8 or uint16 image array; got {got}")
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)) or min(img.shape[:2]) < 1:
            raise ValueError(f"upscale expects an HW or HWC image with 1, 3 or 4 channels; got shape {img.shape}")
        if passes < 1:
            raise ValueError(f"passes must be >= 1; got {passes}")
        if outscale is not None and not outscale > 0:
            raise ValueError(f"outscale must be > 0; got {outscale}")
        if outscale is not None and min(round(img.shape[0] * outscale), round(img.shape[1] * outscale)) < 1:
            h, w = img.shape[:2]
            raise ValueError(
                f"outscale {outscale:g} would make this {w}x{h} image {round(w * outscale)}x{round(h * outscale)} "
                f"pixels; the smallest outscale for it is {0.5 / min(h, w):.3g}"
            )

        planes = img if img.ndim == 3 else img[:, :, None]
        color, alpha = (planes[:, :, :3], planes[:, :, 3:]) if planes.shape[2] == 4 else (planes, None)
        counter = None
        if progress is not None:
            groups = [color] + ([alpha] if alpha is not None and self.alpha_upsampler == "model" else [])
            h, w = img.shape[:2]
            plan = [
                self.forward_passes(g.shape[2] if self.info.in_ch == 1 else 1, h * self.scale**p, w * self.scale**p)
                for g in groups
                for p in range(passes)
            ]
            counter = _StepCounter(progress, plan)
        out = self._upscale_planes(color, passes, counter, fix=True)
        if alpha is not None:
            if self.alpha_upsampler == "model":
                out_alpha = self._upscale_planes(alpha, passes, counter, fix=False)
            else:
                size = (out.shape[1], out.shape[0])
                out_alpha = cv2.resize(alpha[:, :, 0], size, interpolation=cv2.INTER_CUBIC)[:, :, None]
            out = np.concatenate([out, out_alpha], axis=2)

        h, w = img.shape[:2]
        if outscale is not None and (round(h * outscale), round(w * outscale)) != out.shape[:2]:
            out = _resize(out, round(h * outscale), round(w * outscale))
        return out if img.ndim == 3 else out[:, :, 0]

    def _upscale_planes(
        self, planes: np.ndarray, passes: int, counter: _StepCounter | None = None, *, fix: bool = False
    ) -> np.ndarray:
        """HWC (1 or 3 channels) integer array -> HWC array of the same dtype and channel count, upscaled
        (with the colour fix against ``planes`` when ``fix``)."""
        dtype, channels, in_ch = planes.dtype, planes.shape[2], self.info.in_ch
        x = torch.from_numpy(np.ascontiguousarray(planes.transpose(2, 0, 1))).float().div_(max_value(dtype))[None]
        reduce = None
        if channels == in_ch:
            pass
        elif in_ch == 1:  # a grey network on colour: each channel is a grey image of its own
            x = x.transpose(0, 1)
        elif channels == 1 and in_ch == 3:  # a colour network on grey: run as RGB, take the luma back
            x = x.expand(-1, 3, -1, -1)
            luma = torch.tensor(_LUMA).view(1, 3, 1, 1)
            reduce = lambda b: (b * luma.to(b.device)).sum(dim=1, keepdim=True)  # noqa: E731
        else:
            raise ValueError(f"the model takes {in_ch}-channel input; cannot run it on a {channels}-channel image")
        source = x
        for _ in range(passes - 1):
            x = self._upscale_tensor(x, counter)

        h, w = x.shape[-2] * self.scale, x.shape[-1] * self.scale
        out = np.empty((h, w, channels), dtype=dtype)
        full = max_value(dtype)
        per_item = out.shape[2] // x.shape[0]
        # uint16 does not exist on every device: quantise to int32 there, narrow on the host.
        quant = torch.uint8 if dtype == np.uint8 else torch.int32

        def sink(i: int, y0: int, y1: int, x0: int, x1: int, block: torch.Tensor) -> None:
            if reduce is not None:
                block = reduce(block)
            q = block[0].clamp_(0, 1).mul_(full).round_().to(quant).permute(1, 2, 0).cpu().numpy()
            out[y0:y1, x0:x1, i * per_item : (i + 1) * per_item] = q

        if fix and self.color_fix != "none":
            # The fix needs the whole float result: quantised once, after it.
            result = self._color_fixed(self._upscale_tensor(x, counter), source)
            for i in range(result.shape[0]):
                sink(i, 0, h, 0, w, result[i : i + 1])
            return out
        self._run(x, sink, counter)
        return out
