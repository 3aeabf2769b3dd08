"""``esrgan export``: a generator to ONNX (dynamic batch/height/width) or TorchScript.

The exported graph is the bare network: input ``input`` NCHW float32 RGB in [0, 1], output
``output`` NCHW, ``scale`` times larger, not clamped. ONNX uses PyTorch's TorchScript-based
exporter (``dynamo=False``): the newer dynamo exporter needs the ``onnxscript`` package, which
this project does not install, and gives nothing more for plain conv nets.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from esrgan.utils.atomic import atomic_path

logger = logging.getLogger("esrgan.inference.export")

DEFAULT_OPSET = 17
FORMATS = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript"}


def _example(model: nn.Module, size: int) -> torch.Tensor:
    from esrgan.inference.upscaler import probe_model

    info = probe_model(model, torch.device("cpu"), torch.float32)
    return torch.rand(1, info.in_ch, size, size)


def export_onnx(model: nn.Module, path: str | Path, *, opset: int = DEFAULT_OPSET, example_size: int = 32) -> Path:
    """Write ``model`` (eval, CPU, fp32) as ONNX with dynamic batch, height and width; atomically."""
    model = model.eval().cpu().float()
    example = _example(model, example_size)
    dynamic = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "out_height", 3: "out_width"}}
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter announces its deprecation, and tracing warns about the input-size
        # checks of pixel-unshuffle nets (they become constants: fine, sizes are the caller's job).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes=dynamic,
        )
    return Path(path)


def export_torchscript(model: nn.Module, path: str | Path, *, example_size: int = 32) -> Path:
    """Write ``model`` as a traced TorchScript module (load with ``torch.jit.load``); atomically.

    Tracing records the conv/upsample graph with sizes taken from the input, so any height/width works.
    """
    model = model.eval().cpu().float()
    example = _example(model, example_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream, still the portable format
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example)
    with atomic_path(path) as tmp:
        traced.save(str(tmp))
    return Path(path)


def check_onnx(model: nn.Module, path: str | Path, sizes: Sequence[tuple[int, int]] = ((32, 32), (24, 40))) -> float:
    """Max |onnxruntime - PyTorch| over random inputs of the given sizes (CPU, fp32)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    in_ch = _example(model, 16).shape[1]
    worst = 0.0
    for h, w in sizes:
        x = torch.rand(1, in_ch, h, w)
        with torch.no_grad():
            ref = model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        if got.shape != ref.shape:
            raise RuntimeError(f"{path}: ONNX output shape {got.shape} != PyTorch's {ref.shape} for input {h}x{w}")
        worst = max(worst, float(abs(got - ref).max()))
    return worst


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="esrgan export",
        description="Export a generator to ONNX (.onnx, dynamic batch/height/width) or TorchScript (.pt). "
        "Input: NCHW float32 RGB in [0, 1]; output: the network's, not clamped.",
    )
    p.add_argument("--model", "-m", required=True, help="zoo name or checkpoint path (.pth/.safetensors)")
    p.add_argument("-o", "--output", required=True, help="output file: .onnx or .pt")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default: {DEFAULT_OPSET})")
    p.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ONNX: compare onnxruntime with PyTorch at two input sizes after export (default: on)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from esrgan import load_model
    from esrgan.inference.cli_common import setup_cli_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_cli_logging()
    out = Path(args.output)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        parser.error(f"-o {out}: unknown format {out.suffix!r}; use one of {', '.join(FORMATS)}")
    try:
        model = load_model(args.model, device="cpu")
    except (OSError, ValueError, RuntimeError) as exc:
        logger.error("cannot load model %s: %s", args.model, exc)
        return 1
    if fmt == "onnx":
        export_onnx(model, out, opset=args.opset)
        if args.check:
            try:
                diff = check_onnx(model, out)
            except ImportError:
                logger.warning("onnxruntime is not installed: exported %s without checking it", out)
            else:
                logger.info("onnxruntime vs PyTorch: max abs difference %.2e", diff)
                if diff > 1e-3:
                    logger.error("%s: the ONNX model differs from PyTorch by %.2e", out, diff)
                    return 1
    else:
        export_torchscript(model, out)
    logger.info("wrote %s (%s, %.1f MB)", out, fmt, out.stat().st_size / 1e6)
    return 0
