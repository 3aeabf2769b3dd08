"""The things a test compares: the ``bicubic`` baseline and networks (checkpoints, zoo names, modules).

Every model maps an LR image as stored (HW grey or HWC RGB, uint8/uint16) to an SR image
of the same layout and dtype, ``scale`` times larger; rounding to the integer type
happens here, once, so all scores are on quantised images like the published tables.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch import nn

from esrgan.evaluation.layout import RESERVED_LABELS
from esrgan.evaluation.testsets import matlab_resize
from esrgan.options.testing import SCORING_PRECISION
from esrgan.utils.folders import check_folder_name

logger = logging.getLogger("esrgan.evaluation.tested_models")

BICUBIC = "bicubic"


class TestedModel(Protocol):
    name: str

    def upscale(self, lr: np.ndarray) -> np.ndarray: ...


def _zoo_names() -> list[str]:
    try:
        from esrgan.zoo import ZOO
    except ImportError:
        return []
    return sorted(ZOO)


def check_model_source(spec: str, what: str = "model") -> None:
    """Fail early, naming ``spec``, when it is neither ``bicubic``, an existing file nor a zoo name."""
    if spec == BICUBIC:
        return
    path = Path(spec)
    if path.is_file():
        return
    if path.is_dir():
        raise IsADirectoryError(f"{what} {spec}: is a folder; expected a checkpoint file (.pth or .safetensors)")
    zoo = _zoo_names()
    if spec in zoo:
        return
    known = f"; zoo names: {', '.join(zoo)}" if zoo else ""
    raise FileNotFoundError(f"{what} {spec}: checkpoint file not found, and not 'bicubic' or a model-zoo name{known}")


def default_label(spec: str) -> str:
    """Short column name: 'bicubic', the zoo name, or the checkpoint's file stem."""
    if spec == BICUBIC or not (Path(spec).suffix or "/" in spec):
        return spec
    return Path(spec).stem


class BicubicModel:
    """MATLAB ``imresize(lr, scale, 'bicubic')``: the literature's baseline."""

    def __init__(self, scale: int, name: str = BICUBIC) -> None:
        self.name = name
        self.scale = scale

    def upscale(self, lr: np.ndarray) -> np.ndarray:
        return matlab_resize(lr, float(self.scale))


class NetworkModel:
    """A generator run through ``Upscaler``: whole image when it fits in memory, else tiles.

    ``tile``: as ``Upscaler``'s: 0 automatic (the whole image when it fits in half the free memory,
    else the largest tiles that do), N always N-pixel tiles.
    Grey inputs are given to the network as RGB replicas; the output is folded back to grey
    as BT.601 luma (``Upscaler``'s convention), so a grey image is scored on grey values.
    """

    def __init__(
        self,
        net: nn.Module,
        name: str,
        scale: int,
        *,
        device: str | None = None,
        tile: int = 0,
        tile_pad: int | None = None,
        precision: str = SCORING_PRECISION,
    ) -> None:
        from esrgan.inference.upscaler import Upscaler

        self.name = name
        self.scale = scale
        self.upscaler = Upscaler(net, device=device, tile=tile, tile_pad=tile_pad, precision=precision)
        self.upscaler.name = name  # its messages (NaN/Inf output) name the model by its label
        if self.upscaler.scale != scale:
            raise ValueError(f"model {name} upscales x{self.upscaler.scale}, but the test scale is x{scale}")
        self.tile = tile
        self.device = self.upscaler.device

    def upscale(self, lr: np.ndarray) -> np.ndarray:
        # The Upscaler owns the grey/colour conventions, so test scores match what users get.
        return self.upscaler.upscale(lr)


def load_network(
    spec: str, network_g: dict[str, Any] | None = None, strict: bool = True, param_key: str | None = None
) -> tuple[nn.Module, int]:
    """A generator from a checkpoint path or zoo name, and its scale.

    The architecture is detected from the weights, or built from ``network_g``
    (``{"type": ..., **kwargs}``, as in BasicSR option files) when given. ``param_key``: which
    weights of the checkpoint (BasicSR's ``param_key_g``; None: ``params_ema`` first).
    """
    from esrgan.archs import build_network, scale_argument
    from esrgan.archs.detect import UnknownArchitectureError
    from esrgan.checkpoint import CheckpointError
    from esrgan.loading import build_generator, check_finite_weights, load_generator, load_weights_into
    from esrgan.spandrel_loader import load_with_spandrel

    check_model_source(spec)
    try:
        if network_g:
            net = build_network(network_g)
            arch, kwargs = network_g["type"], {k: v for k, v in network_g.items() if k != "type"}
            load_weights_into(net, spec, param_key=param_key, strict=strict)
            check_finite_weights(net.state_dict(), spec)
        else:
            arch, kwargs, sd = load_generator(spec, param_key)
            check_finite_weights(sd, spec)
            net = build_generator(arch, kwargs, sd, spec)
    except UnknownArchitectureError as exc:
        if network_g:
            raise ValueError(str(exc)) from exc
        return load_with_spandrel(exc.state_dict or {}, spec, str(exc))  # not ours: spandrel may know it
    except CheckpointError as exc:
        if spec in str(exc):
            raise  # names the file already (spandrel missing, or declining it too)
        raise CheckpointError(f"model {spec}: {exc}") from exc
    except (ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise ValueError(str(exc) if spec in str(exc) else f"model {spec}: {exc}") from exc
    scale = int(kwargs.get(scale_argument(arch) or "scale", 0) or 0)
    return net.eval(), scale


def build_models(
    specs: list[str | tuple[str, str]],
    scale: int,
    *,
    device: str | None = None,
    tile: int = 0,
    precision: str = SCORING_PRECISION,
    network_g: dict[str, Any] | None = None,
    strict: bool = True,
    param_key: str | None = None,
) -> list[TestedModel]:
    """Models from specs: ``bicubic``, a checkpoint path, a zoo name, or ``(label, spec)``.

    Every source is checked before any is loaded, so a typo in the last one fails at once.
    """
    pairs = [(s, default_label(s)) if isinstance(s, str) else (s[1], s[0]) for s in specs]
    if not pairs:
        raise ValueError("no models to test: give at least one (a checkpoint, a zoo name or 'bicubic')")
    for spec, label in pairs:
        check_model_label(label)
        check_model_source(spec)
    labels: list[str] = []
    for _, label in pairs:
        # Two checkpoints may share a stem (net_g_5000 of two runs): keep the columns apart.
        unique, k = label, 2
        while unique in labels:
            unique, k = f"{label}_{k}", k + 1
        labels.append(unique)
    models: list[TestedModel] = []
    for (spec, _), label in zip(pairs, labels):
        if spec == BICUBIC:
            models.append(BicubicModel(scale, label))
            continue
        net, _ = load_network(spec, network_g, strict=strict, param_key=param_key)
        models.append(NetworkModel(net, label, scale, device=device, tile=tile, precision=precision))
        logger.info("model %s: %s on %s", label, spec, models[-1].device)
    return models


def module_model(net: nn.Module, name: str, scale: int, **kwargs: Any) -> NetworkModel:
    """Wrap an in-memory generator (e.g. one interpolation step) for the tester."""
    return NetworkModel(net, check_model_label(name), scale, **kwargs)


def check_model_label(label: str) -> str:
    """A model label becomes the folder ``<run>/<set>/<label>/``: one safe folder name, not a reserved one."""
    check_folder_name(label, "model name")
    if label.lower() in RESERVED_LABELS:
        reserved = ", ".join(RESERVED_LABELS)
        raise ValueError(f"model name {label!r} is reserved for the tester's own folders ({reserved})")
    return label

