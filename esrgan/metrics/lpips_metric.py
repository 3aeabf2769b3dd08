"""LPIPS v0.1 (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric").

Distance between two images = sum over 5 backbone layers of the spatial mean of a learned
per-channel weighting of squared differences of unit-normalised features. Lower is better
(0 for identical images). Same computation as the ``lpips`` package 0.1.4 (``LPIPS(net=...,
version="0.1")``), with

- backbones: torchvision's ImageNet AlexNet (``alex``, features after ReLU 1-5) or VGG16
  (``vgg``, relu1_2, relu2_2, relu3_3, relu4_3, relu5_3), read from torchvision's cache
  ``$TORCH_HOME/hub/checkpoints/`` (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``),
  downloaded there when missing and online; with ``ESRGAN_OFFLINE=1`` or no network a
  missing file is one error saying which file to place where;
- linear layers: the LPIPS v0.1 release weights, shipped in ``data/lpips_v0.1_{alex,vgg}.pth``
  (see ``data/README.md``).

State dict of :class:`LPIPS`: ``features.<i>.{weight,bias}`` (torchvision's ``features``
indices) and ``lins.<k>.weight`` (1 x C x 1 x 1, no bias).
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from esrgan.archs.vgg import VGGWeightsNotFoundError, _build_features, _features_state_dict, resolve_vgg_weights

__all__ = ["LPIPS", "LPIPS_NETS", "lpips", "lpips_torch"]

# net -> (torchvision name, channels of the tapped layers, features indices after which to tap)
LPIPS_NETS: dict[str, tuple[str, tuple[int, ...], tuple[int, ...]]] = {
    "alex": ("alexnet", (64, 192, 384, 256, 256), (1, 4, 7, 9, 11)),
    "vgg": ("vgg16", (64, 128, 256, 512, 512), (3, 8, 15, 22, 29)),
}
# LPIPS's ScalingLayer: input in [-1, 1] shifted and scaled to ImageNet statistics.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _alexnet_features(num_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
    ]  # fmt: skip
    return nn.Sequential(*layers[:num_layers])


def load_backbone(
    features: nn.Sequential, tv_name: str, backbone: bool | str | os.PathLike[str], owner: str
) -> None:
    """torchvision's ImageNet ``tv_name`` weights into ``features`` (``features.<i>`` keys; see LPIPS)."""
    from esrgan.checkpoint import CheckpointError, load_checkpoint_file

    try:
        path = resolve_vgg_weights(tv_name, backbone)
    except VGGWeightsNotFoundError as exc:
        raise VGGWeightsNotFoundError(f"{owner}: {exc}") from None
    if path is not None:
        sd = _features_state_dict(load_checkpoint_file(path), path)
        wanted = features.state_dict().keys()
        missing = [k for k in wanted if k not in sd]
        if missing:
            raise CheckpointError(f"{path}: not torchvision {tv_name} weights, missing keys {missing[:4]}")
        features.load_state_dict({k: sd[k] for k in wanted})


def backbone_weights_path(net: str) -> Path:
    """The backbone file LPIPS(net) reads: torchvision's ImageNet weights in its cache (TORCH_HOME)."""
    from esrgan.archs.vgg import torchvision_cache_path

    return torchvision_cache_path(_check_net(net))


def _check_net(net: str) -> str:
    if net not in LPIPS_NETS:
        raise ValueError(f"lpips: net must be one of {', '.join(LPIPS_NETS)}, got {net!r}")
    return LPIPS_NETS[net][0]


class LPIPS(nn.Module):
    """``forward(x, y) -> (N,)`` LPIPS v0.1 distances of NCHW RGB batches in [0, 1].

    ``backbone``: ``True`` (torchvision's ImageNet file from its cache, downloaded when online),
    a file path (torchvision layout, whole model or ``features`` only) or ``False`` (random).
    """

    def __init__(self, net: str = "alex", backbone: bool | str | os.PathLike[str] = True) -> None:
        super().__init__()
        tv_name = _check_net(net)
        _, channels, taps = LPIPS_NETS[net]
        self.net = net
        self.taps = taps
        n = taps[-1] + 1
        self.features = _alexnet_features(n) if net == "alex" else _build_features("vgg16", n)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

        load_backbone(self.features, tv_name, backbone, f"LPIPS(net={net!r})")
        with resources.files("esrgan.metrics").joinpath(f"data/lpips_v0.1_{net}.pth").open("rb") as f:
            lin = torch.load(f, map_location="cpu", weights_only=True)
        for k, conv in enumerate(self.lins):
            conv.weight.data.copy_(lin[f"lin{k}.model.1.weight"])
        for layer in self.features:
            if isinstance(layer, nn.ReLU):
                layer.inplace = True  # never differentiated: no activation needs keeping
        self.to(memory_format=torch.channels_last)  # NHWC convolutions are faster on CPUs (benchmarks/)
        self.eval()
        for p in self.parameters():
            p.requires_grad = False

    def train(self, mode: bool = True) -> LPIPS:
        return super().train(False)  # a metric: no dropout, ever

    def _feats(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                # unit-normalise along channels (the lpips package's eps 1e-10)
                out.append(x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"LPIPS: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
        n = x.shape[0]
        both = torch.cat([x, y]).to(self.shift.dtype)
        both = (((both * 2 - 1) - self.shift) / self.scale).contiguous(memory_format=torch.channels_last)
        total = torch.zeros(n, dtype=both.dtype, device=both.device)
        for lin, f in zip(self.lins, self._feats(both)):
            total = total + lin((f[:n] - f[n:]).square()).mean(dim=(1, 2, 3))
        return total


@functools.lru_cache(maxsize=4)
def _model(net: str, device: str, weights: str) -> LPIPS:
    return LPIPS(net, backbone=weights if weights else True).to(device)


def get_lpips_model(net: str = "alex", device: str | torch.device = "cpu") -> LPIPS:
    """A shared LPIPS model for ``net`` on ``device`` (built once per backbone file and device)."""
    path = backbone_weights_path(net)
    # Keyed by the cache file, so a TORCH_HOME change loads the file found there.
    return _model(net, str(torch.device(device)), str(path) if path.is_file() else "")


def _crop(x: torch.Tensor, crop_border: int, what: str = "lpips") -> torch.Tensor:
    if int(crop_border) != crop_border or crop_border < 0:
        raise ValueError(f"{what}: crop_border must be a non-negative integer, got {crop_border!r}")
    c = int(crop_border)
    if c and 2 * c >= min(x.shape[-2:]):
        raise ValueError(f"{what}: crop_border={c} leaves nothing of an image of {x.shape[-2]}x{x.shape[-1]}")
    return x[..., c : x.shape[-2] - c, c : x.shape[-1] - c] if c else x


def _rgb_pair(img: torch.Tensor, ref: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked NCHW batches of one shape, grey (N1HW) replicated to RGB as the deep metrics see it."""
    if img.shape != ref.shape:
        raise ValueError(f"{what}: image shape {tuple(img.shape)} does not match reference shape {tuple(ref.shape)}")
    if img.ndim != 4 or img.shape[1] not in (1, 3):
        raise ValueError(f"{what}: expected N3HW or N1HW tensors, got shape {tuple(img.shape)}")
    if img.shape[1] == 1:
        img, ref = img.expand(-1, 3, -1, -1), ref.expand(-1, 3, -1, -1)
    return img, ref


@torch.no_grad()
def lpips_torch(
    img: torch.Tensor, ref: torch.Tensor, crop_border: int = 0, y_channel: bool = False, net: str = "alex"
) -> torch.Tensor:
    """LPIPS per image of NCHW RGB (or N1HW grey, replicated) batches in [0, 1], on their device.

    ``y_channel`` is accepted for the validation call convention and ignored: LPIPS sees RGB.
    """
    img, ref = _rgb_pair(img, ref, "lpips")
    model = get_lpips_model(net, img.device)
    return model(_crop(img.float(), crop_border), _crop(ref.float(), crop_border))


def _to_tensor(img: np.ndarray, what: str, metric: str = "lpips") -> torch.Tensor:
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{metric}: {what} must be a numpy array, got {type(img).__name__}")
    x = img.astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if x.ndim == 2:
        x = np.repeat(x[:, :, None], 3, axis=2)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"{metric}: {what} must be HW or HWC RGB, got shape {img.shape}")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def lpips(
    img: np.ndarray, ref: np.ndarray, net: str = "alex", crop_border: int = 0, device: str | torch.device = "cpu"
) -> float:
    """LPIPS v0.1 distance of ``img`` to ``ref``: HWC RGB or HW grey numpy arrays in [0, 255]
    (uint8 or float; uint16 in [0, 65535]), ``crop_border`` pixels removed on each side, computed on
    ``device``. Lower is better."""
    _check_net(net)
    if getattr(img, "shape", None) != getattr(ref, "shape", None):
        raise ValueError(f"lpips: image shape {getattr(img, 'shape', None)} does not match reference shape "
                         f"{getattr(ref, 'shape', None)}")
    x, y = _to_tensor(img, "image").to(device), _to_tensor(ref, "reference").to(device)
    return float(lpips_torch(x, y, crop_border, net=net)[0])
