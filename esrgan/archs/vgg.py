"""VGG feature extractor for perceptual losses: features at named layers, taken before the ReLU.

ESRGAN's perceptual loss compares pre-activation features (``conv5_4`` rather than ``relu5_4``):
asking for a ``convX_Y`` name returns the conv output itself, which has negative values.

Weights (``pretrained``):
- ``True``: torchvision's ImageNet weights from its cache, ``$TORCH_HOME/hub/checkpoints/<file>``
  (``vgg19-dcbb9e9d.pth``), downloaded there (``esrgan.utils.fetch``) when missing and online;
- a path: a state dict in torchvision's layout (``features.<idx>.weight``) or of ``features`` alone;
- ``False``: random weights (tests, or when the features are trained).
The classifier part of VGG is never built (it would be 120M parameters for nothing).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger("esrgan.archs.vgg")

# torchvision's feature configurations (numbers: conv out channels, "M": 2x2 max-pool).
_CFGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}

# torchvision's ImageNet weight files (the 8 hex digits are the SHA-256 prefix torch.hub checks).
TORCHVISION_WEIGHTS: dict[str, str] = {
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "alexnet": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",  # LPIPS(net="alex")
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGWeightsNotFoundError(FileNotFoundError):
    """The VGG weights are not on disk and could not be downloaded."""


def vgg_layer_names(vgg_type: str = "vgg19") -> list[str]:
    """Names of the layers of ``features`` in order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, ..."""
    if vgg_type not in _CFGS:
        raise ValueError(f"vgg_type must be one of {sorted(_CFGS)}, got {vgg_type!r}")
    names: list[str] = []
    block, idx = 1, 1
    for v in _CFGS[vgg_type]:
        if v == "M":
            names.append(f"pool{block}")
            block, idx = block + 1, 1
        else:
            names += [f"conv{block}_{idx}", f"relu{block}_{idx}"]
            idx += 1
    return names


def _build_features(vgg_type: str, num_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for v in _CFGS[vgg_type]:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(v)
    return nn.Sequential(*layers[:num_layers])


def torchvision_cache_path(vgg_type: str = "vgg19") -> Path:
    """Where torchvision keeps the ImageNet weights: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    url = TORCHVISION_WEIGHTS[vgg_type]
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]


def _download(url: str, dst: Path) -> None:
    """Through the one downloader (resumable, checked, renamed into place when whole); the file name carries the
    first hex digits of its SHA-256, as torch.hub's names do."""
    from esrgan.utils.fetch import DownloadError, fetch

    prefix = dst.stem.rsplit("-", 1)[-1]

    def check(digest: str, part: Path) -> None:
        if not digest.startswith(prefix):
            raise DownloadError(f"{url}: SHA-256 {digest[:16]}... does not start with {prefix} (the file name's)")

    fetch(url, dst, check=check)


def resolve_vgg_weights(vgg_type: str, pretrained: bool | str | os.PathLike[str]) -> Path | None:
    """The weight file to load for ``pretrained`` (None for random weights)."""
    if pretrained is False:
        return None
    if pretrained is not True:
        path = Path(pretrained)
        if not path.is_file():
            raise VGGWeightsNotFoundError(f"VGG weights file not found: {path}")
        return path
    path = torchvision_cache_path(vgg_type)
    if path.is_file():
        return path
    url = TORCHVISION_WEIGHTS[vgg_type]
    hint = (
        f"the ImageNet {vgg_type} weights are not in torchvision's cache: place {url.rsplit('/', 1)[1]} "
        f"(from {url}) at {path} (set TORCH_HOME to use another cache folder), pass a file path as "
        "'pretrained', or use pretrained: false for random weights"
    )
    from esrgan.utils.fetch import offline

    if offline():
        raise VGGWeightsNotFoundError(f"offline (ESRGAN_OFFLINE is set): {hint}")
    logger.info("downloading %s to %s", url, path)
    try:
        _download(url, path)
    except Exception as exc:  # URLError, socket errors, hash mismatch: all mean "not available"
        raise VGGWeightsNotFoundError(f"download failed ({exc}): {hint}") from exc
    return path


def _features_state_dict(raw: dict, path: Path) -> dict[str, torch.Tensor]:
    """The ``features`` weights of a torchvision VGG/AlexNet file (whole model or ``features`` alone)."""
    from esrgan.checkpoint import CheckpointError, select_state_dict

    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a VGG state dict, got {type(raw).__name__}")
    sd = select_state_dict(raw, str(path), what="VGG")
    if any(k.startswith("features.") for k in sd):
        return {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
    return sd


class VGGFeatureExtractor(nn.Module):
    """VGG features at ``layer_name_list`` (e.g. ``["conv5_4"]``), frozen unless ``requires_grad``.

    Input: NCHW RGB in [0, 1] (or [-1, 1] with ``range_norm=True``). Output: ``{name: tensor}``.
    """

    def __init__(
        self,
        layer_name_list: Sequence[str],
        vgg_type: str = "vgg19",
        use_input_norm: bool = True,
        range_norm: bool = False,
        requires_grad: bool = False,
        pretrained: bool | str = True,
    ) -> None:
        super().__init__()
        names = vgg_layer_names(vgg_type)
        unknown = [n for n in layer_name_list if n not in names]
        if unknown or not layer_name_list:
            raise ValueError(
                f"VGGFeatureExtractor: unknown layer name(s) {unknown} for {vgg_type}; known: {', '.join(names)}"
            )
        self.layer_name_list = list(layer_name_list)
        self.vgg_type = vgg_type
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        self._names = names
        num_layers = max(names.index(n) for n in self.layer_name_list) + 1
        self.vgg_net = _build_features(vgg_type, num_layers)

        weights = resolve_vgg_weights(vgg_type, pretrained)
        if weights is not None:
            from esrgan.checkpoint import CheckpointError, load_checkpoint_file

            sd = _features_state_dict(load_checkpoint_file(weights), weights)
            wanted = self.vgg_net.state_dict().keys()
            missing = [k for k in wanted if k not in sd]
            if missing:
                raise CheckpointError(f"{weights}: not {vgg_type} weights, missing keys {missing[:4]}")
            self.vgg_net.load_state_dict({k: sd[k] for k in wanted}, strict=True)

        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad = requires_grad
        if not requires_grad:
            self.vgg_net.eval()
            for p in self.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> VGGFeatureExtractor:
        # A frozen extractor stays in eval mode when the surrounding model is put in training mode.
        super().train(mode and self.requires_grad)
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        wanted = set(self.layer_name_list)
        for name, layer in zip(self._names, self.vgg_net):
            x = layer(x)
            if name in wanted:
                out[name] = x  # ReLUs are not in-place, so this tensor stays the pre-activation
        return out
