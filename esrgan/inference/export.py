"""``esrgan export``: a generator to ONNX (dynamic batch/height/width) or TorchScript.

The exported graph is the bare network: input ``input`` NCHW float32 RGB in [0, 1], output
``output`` NCHW, ``scale`` times larger, not clamped. ONNX uses PyTorch's TorchScript-based
exporter (``dynamo=False``): the newer dynamo exporter needs the ``onnxscript`` package, which
this project does not install, and gives nothing more for plain conv nets.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from esrgan.utils.atomic import atomic_path

logger = logging.getLogger("esrgan.inference.export")

DEFAULT_OPSET = 17
# Opsets written correctly for every network here: below 11 ONNX's Resize has other coordinates than PyTorch's
# bilinear upsampling (MSRResNet's output moves by 0.5), below 9 it does not exist; above the exporter's own.
MIN_OPSET = 11
try:
    from torch.onnx._constants import ONNX_MAX_OPSET as MAX_OPSET
except ImportError:  # a private module: an older or newer torch may not have it
    MAX_OPSET = 20
FORMATS = {".onnx": "onnx", ".pt": "torchscript", ".ts": "torchscript"}


class ExportError(ValueError):
    """A network cannot be exported as asked (non-finite weights, an opset or operator the exporter lacks)."""


def check_finite_weights(model: nn.Module, name: str) -> None:
    """Refuse a network with NaN or infinite weights: its export would compute NaN for every input."""
    bad = [(k, int((~t.isfinite()).sum())) for k, t in model.state_dict().items()
           if t.is_floating_point() and not bool(t.isfinite().all())]
    if bad:
        total = sum(n for _, n in bad)
        raise ExportError(f"{name}: {total} weight value(s) are NaN or infinite (first in {bad[0][0]!r}, "
                          f"{len(bad)} tensor(s) in all); not exported")


def check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"--opset {opset}: expected {MIN_OPSET}..{MAX_OPSET} (the opsets this exporter writes "
                          f"these networks in; default {DEFAULT_OPSET})")


def _example(model: nn.Module, size: int) -> torch.Tensor:
    from esrgan.inference.upscaler import probe_model

    info = probe_model(model, torch.device("cpu"), torch.float32)
    return torch.rand(1, info.in_ch, size, size)


def _export_copy(model: nn.Module) -> nn.Module:
    """The model as exported (eval, CPU, fp32), as a copy: the caller's module keeps its device, dtype and mode."""
    return copy.deepcopy(model).eval().cpu().float()


def export_onnx(model: nn.Module, path: str | Path, *, opset: int = DEFAULT_OPSET, example_size: int = 32) -> Path:
    """Write ``model`` (eval, CPU, fp32) as ONNX with dynamic batch, height and width; atomically.

    :class:`ExportError` for an opset outside ``MIN_OPSET..MAX_OPSET`` or an operator the exporter lacks.
    """
    check_opset(opset)
    model = _export_copy(model)
    example = _example(model, example_size)
    dynamic = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "out_height", 3: "out_width"}}
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter announces its deprecation, and tracing warns about the input-size
        # checks of pixel-unshuffle nets (they become constants: fine, sizes are the caller's job).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
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
        except (torch.onnx.errors.OnnxExporterError, RuntimeError) as exc:  # not an OSError: those are the caller's
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            name = type(model).__name__
            raise ExportError(f"{name} cannot be exported to ONNX opset {opset}: {first[:200]}") from None
    return Path(path)


def export_torchscript(model: nn.Module, path: str | Path, *, example_size: int = 32) -> Path:
    """Write ``model`` as a traced TorchScript module (load with ``torch.jit.load``); atomically.

    Tracing records the conv/upsample graph with sizes taken from the input, so any height/width works.
    """
    model = _export_copy(model)
    example = _example(model, example_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream, still the portable format
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example)
    with atomic_path(path) as tmp:
        traced.save(str(tmp))
    return Path(path)


def check_onnx(model: nn.Module, path: str | Path, sizes: Sequence[tuple[int, int]] = ((32, 32), (24, 40))) -> float:
    """Max |onnxruntime - PyTorch| over random inputs of the given sizes (CPU, fp32); inf where one side is NaN or
    infinite and the other is not the same (NaN compares false, so a plain max would say 0)."""
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
        same = (got == ref) | (np.isnan(got) & np.isnan(ref))
        diff = np.where(same, 0.0, np.abs(got.astype(np.float64) - ref))
        worst = max(worst, float(np.nan_to_num(diff, nan=np.inf).max()))
    return worst
