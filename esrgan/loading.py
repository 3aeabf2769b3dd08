"""The one way to read network weights: checkpoint (or zoo name) -> state dict -> network.

- :func:`load_generator`: ``(arch, kwargs, state dict in our layout)`` detected from the weights (the
  checkpoint's weights chosen by ``esrgan.checkpoint.select_state_dict``); the place where
  architectures we do not build ourselves are recognised;
- :func:`build_generator`: the network of ``(arch, kwargs, state dict)``, weights loaded strictly (the
  one way: ``esrgan.load_model``, the tester and interpolation build with it);
- :func:`load_weights_into`: weights into a network built from options (``pretrain_network_g/d``,
  the tester's ``network_g``), shapes compared first so a mismatch is one line naming file and keys;
- :func:`load_model`: ``esrgan.load_model``, a ready generator in eval mode.

Imports only the networks and checkpoint code: no trainer, TensorBoard or data pipeline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from esrgan.checkpoint import CheckpointError, load_checkpoint_file, select_state_dict

logger = logging.getLogger("esrgan.loading")

def resolve_path(path_or_zoo_name: str | os.PathLike[str]) -> Path:
    """A local file as it is; otherwise a model-zoo name (downloaded into the cache once)."""
    path = Path(path_or_zoo_name)
    if path.is_file():
        return path
    from esrgan.zoo import resolve_model_path

    return resolve_model_path(path_or_zoo_name)


def load_generator(
    path_or_zoo_name: str | os.PathLike[str], param_key: str | None = None
) -> tuple[str, dict, dict[str, torch.Tensor]]:
    """``(arch name, detected kwargs, state dict)`` for a generator checkpoint.

    Ours are detected by :mod:`esrgan.archs.detect` (state dict in our BasicSR layout); the spandrel
    networks we train (``esrgan.archs.SPANDREL_GENERATORS``) by spandrel, their kwargs being the
    hyper-parameters it reads from the weights. Other networks: :class:`UnknownArchitectureError`
    (``load_model`` still loads what spandrel recognises).
    """
    from esrgan.archs.detect import UnknownArchitectureError

    path, sd = _read_generator(path_or_zoo_name, param_key)
    try:
        return _detect(path, sd)
    except UnknownArchitectureError as exc:
        return _spandrel_generator(exc.state_dict or sd, str(exc), path)


def _read_generator(
    path_or_zoo_name: str | os.PathLike[str], param_key: str | None = None
) -> tuple[Path, dict[str, torch.Tensor]]:
    path = resolve_path(path_or_zoo_name)
    return path, select_state_dict(load_checkpoint_file(path), str(path), param_key)


def _detect(path: Path, sd: Mapping[str, torch.Tensor]) -> tuple[str, dict, dict[str, torch.Tensor]]:
    """Our detector, its errors naming the file."""
    from esrgan.archs.detect import UnknownArchitectureError, detect_generator

    try:
        return detect_generator(sd)
    except UnknownArchitectureError as exc:
        raise UnknownArchitectureError(f"{path}: {exc}", exc.state_dict) from exc
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def build_generator(
    arch: str, kwargs: Mapping[str, Any], sd: Mapping[str, torch.Tensor], source: str | os.PathLike[str] = ""
) -> nn.Module:
    """``GENERATORS[arch](**kwargs)`` with ``sd`` loaded strictly, in eval mode on the CPU; a state dict that does
    not fit is a :class:`CheckpointError` naming ``source``."""
    from esrgan.archs import build_network

    model = build_network({"type": arch, **kwargs})
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        # torch lists every mismatch on its own line after a header: the first one says enough, on one line
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = lines[1] if len(lines) > 1 else (lines[0] if lines else "")
        more = f" (+{len(lines) - 2} more)" if len(lines) > 2 else ""
        detected = f"{arch}({dict(kwargs)})"
        raise CheckpointError(f"{source}: weights do not fit the detected {detected}: {reason}{more}") from exc
    return model.eval()


def check_finite_weights(sd: Mapping[str, torch.Tensor], source: str | os.PathLike[str]) -> None:
    """Refuse weights holding NaN or Inf (a diverged run): every output of such a network is broken."""
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise CheckpointError(f"{source}: the weights hold NaN/Inf values in {', '.join(bad[:3])}{more}: a diverged "
                              "training run? use an earlier checkpoint")


def _spandrel_generator(
    sd: Mapping[str, torch.Tensor], reason: str, path: Path
) -> tuple[str, dict, dict[str, torch.Tensor]]:
    from esrgan.archs.detect import UnknownArchitectureError
    from esrgan.archs.spandrel_archs import identify
    from esrgan.spandrel_loader import load_with_spandrel

    model, _scale = load_with_spandrel(sd, str(path), reason)
    found = identify(model)
    if found is None:
        raise UnknownArchitectureError(
            f"{path}: spandrel reads it as {type(model).__name__}, which esrgan loads but does not build "
            "(not in esrgan.archs.SPANDREL_GENERATORS)",
            sd,
        )
    return found[0], found[1], model.state_dict()


def load_model(path_or_zoo_name: str | os.PathLike[str], device: str | torch.device = "cpu") -> nn.Module:
    """Build the detected architecture, load the weights strictly, return it in eval mode on ``device``."""
    from esrgan.archs.detect import UnknownArchitectureError
    from esrgan.spandrel_loader import load_with_spandrel

    try:
        arch, kwargs, sd = _detect(*_read_generator(path_or_zoo_name))
    except UnknownArchitectureError as exc:  # not ours: spandrel's detector (optional dependency) may know it
        model, _scale = load_with_spandrel(exc.state_dict or {}, str(path_or_zoo_name), str(exc))
        logger.info("loaded %s (through spandrel) from %s", type(model).__name__, path_or_zoo_name)
        return model.to(device)
    model = build_generator(arch, kwargs, sd, path_or_zoo_name)
    logger.info("loaded %s %s from %s", arch, kwargs, path_or_zoo_name)
    return model.to(device)


def _fits(net: nn.Module, sd: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, shape-mismatched) keys of ``sd`` against ``net``."""
    own = net.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape
    ]
    return missing, unexpected, shapes


def _first(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def load_weights_into(
    net: nn.Module,
    path_or_zoo_name: str | os.PathLike[str],
    *,
    param_key: str | None = None,
    strict: bool = True,
    what: str = "network_g",
) -> None:
    """Load a checkpoint into ``net`` (built from options); ``what`` names the option section in errors.

    A generator checkpoint in a foreign key layout (official ESRGAN, old BasicSR) is mapped onto ours.
    Shapes are compared before anything is loaded: a checkpoint of another width or depth is one
    :class:`CheckpointError` naming the file and the first keys that differ. ``strict=False`` (BasicSR's
    ``strict_load_g: false``) loads the keys that fit, skips the rest (other shapes too) and logs them.
    """
    path = resolve_path(path_or_zoo_name)
    sd = select_state_dict(load_checkpoint_file(path), str(path), param_key)
    missing, unexpected, shapes = _fits(net, sd)
    if (missing or unexpected) and what == "network_g":
        from esrgan.archs.detect import detect_generator

        try:
            _, _, mapped = detect_generator(sd)
        except CheckpointError:
            pass  # not a layout we know: report the keys as they are
        else:
            sd = mapped
            missing, unexpected, shapes = _fits(net, sd)
    name = type(net).__name__
    if shapes and not strict:
        # BasicSR's strict_load false also skips tensors of another shape, e.g. the first convolution when
        # an x2 network (pixel-unshuffled input) starts from x4 weights.
        reshaped = [k for k in net.state_dict() if k in sd and sd[k].shape != net.state_dict()[k].shape]
        logger.warning("%s: %s not loaded from %s (other shape)", what, ", ".join(reshaped), path)
        sd = {k: v for k, v in sd.items() if k not in reshaped}
        missing = [*missing, *reshaped]
        shapes = []
    if shapes:
        raise CheckpointError(
            f"{path} does not fit {what} ({name}): shapes differ (checkpoint vs network) for {_first(shapes)}; "
            f"are {what}'s arguments (num_feat, num_block, ...) the ones it was trained with?"
        )
    if strict and (missing or unexpected):
        parts = [f"missing keys {_first(missing)}" if missing else "", f"unexpected keys {_first(unexpected)}"
                 if unexpected else ""]
        raise CheckpointError(
            f"{path} does not fit {what} ({name}): {'; '.join(p for p in parts if p)} "
            f"(strict_load false loads the keys that fit)"
        )
    net.load_state_dict({k: v for k, v in sd.items() if k not in unexpected}, strict=False)
    if missing or unexpected:
        logger.warning("%s: loaded %s non-strictly (%d missing, %d unexpected keys)", what, path, len(missing),
                       len(unexpected))
    logger.info("%s: loaded weights from %s [%s]", what, path, param_key or "auto")

