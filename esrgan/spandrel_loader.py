"""Checkpoints of architectures we do not implement, loaded through spandrel (an optional dependency).

Our own architectures (RRDBNet, MSRResNet, SRVGGNetCompact) are detected by ``esrgan.archs.detect``
and never need spandrel. Anything else (SwinIR, HAT, DAT, SPAN, ...) is handed to spandrel's
detector rather than re-implementing it: ``pip install 'esrgan[spandrel]'``. The spandrel networks
this project trains (``esrgan.archs.SPANDREL_GENERATORS``) are checkpoints like any other here.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from esrgan.archs.spandrel_archs import INSTALL_HINT
from esrgan.checkpoint import CheckpointError


def load_with_spandrel(sd: Mapping[str, torch.Tensor], source: str, reason: str) -> tuple[nn.Module, int]:
    """``(network in eval mode, scale)`` for a state dict spandrel recognises.

    ``reason``: why our own detector declined it (shown when spandrel is missing or declines too).
    """
    if source not in reason:
        reason = f"{source}: {reason}"
    try:
        import spandrel
    except ImportError:
        raise CheckpointError(
            f"{reason}. Other architectures (SwinIR, HAT, DAT, SPAN, ...) load through spandrel, "
            f"which is not installed: {INSTALL_HINT}"
        ) from None
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(dict(sd))
    except Exception as exc:  # spandrel raises UnsupportedModelError, or shape errors for near-misses
        detail = " ".join(str(exc).split())  # torch's load_state_dict errors span lines: one line here
        raise CheckpointError(
            f"{reason}; spandrel {spandrel.__version__} does not recognise it either: {detail}"
        ) from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise CheckpointError(
            f"{source}: spandrel recognises it as {descriptor.architecture.name}, which is not an image-to-image "
            "super-resolution model"
        )
    from esrgan.archs.spandrel_archs import identify, prepare, remember_sizes

    model = descriptor.model
    remember_sizes(model, descriptor)  # what validation, esrgan test and tiling pad inputs to
    found = identify(model)
    if found is not None:
        prepare(found[0], model)
    return model.eval(), int(descriptor.scale)
