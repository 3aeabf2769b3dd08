"""``esrgan export``: a generator to ONNX or TorchScript (``esrgan.inference.export``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from esrgan.inference.export import (
    DEFAULT_OPSET,
    FORMATS,
    ExportError,
    check_finite_weights,
    check_onnx,
    check_opset,
    export_onnx,
    export_torchscript,
)
from esrgan.utils.oserror import os_error_line

logger = logging.getLogger("esrgan.inference.export")


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
    from esrgan.commands.common import setup_cli_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_cli_logging()
    out = Path(args.output)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        parser.error(f"-o {out}: unknown format {out.suffix!r}; use one of {', '.join(FORMATS)}")
    try:
        if fmt == "onnx":
            check_opset(args.opset)
        model = load_model(args.model, device="cpu")
        check_finite_weights(model, args.model)
    except ExportError as exc:
        logger.error("%s", exc)
        return 1
    except (OSError, ValueError, RuntimeError) as exc:
        logger.error("cannot load model %s: %s", args.model, exc)
        return 1
    try:
        if fmt == "onnx":
            export_onnx(model, out, opset=args.opset)
        else:
            export_torchscript(model, out)
    except ExportError as exc:
        logger.error("%s", exc)
        return 1
    except OSError as exc:
        logger.error("cannot write %s: %s", out, os_error_line(exc))
        return 1
    if fmt == "onnx" and args.check:
        try:
            diff = check_onnx(model, out)
        except ImportError:
            logger.warning("onnxruntime is not installed: exported %s without checking it", out)
        else:
            logger.info("onnxruntime vs PyTorch: max abs difference %.2e", diff)
            if not diff <= 1e-3:
                logger.error("%s: the ONNX model differs from PyTorch by %.2e", out, diff)
                return 1
    logger.info("wrote %s (%s, %.1f MB)", out, fmt, out.stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
