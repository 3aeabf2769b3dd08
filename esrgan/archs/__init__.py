"""Networks as plain nn.Modules, and one ``build_network(spec)`` over name -> class tables.

``spec`` is ``{"type": "RRDBNet", **kwargs}`` (BasicSR's ``network_g`` / ``network_d`` sections).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from esrgan.archs.discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator
from esrgan.archs.rrdbnet import RRDB, ResidualDenseBlock, RRDBNet
from esrgan.archs.srresnet import MSRResNet
from esrgan.archs.vgg import VGGFeatureExtractor

GENERATORS: dict[str, type[nn.Module]] = {
    "RRDBNet": RRDBNet,
    "MSRResNet": MSRResNet,
}

DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "VGGStyleDiscriminator": VGGStyleDiscriminator,
    "UNetDiscriminatorSN": UNetDiscriminatorSN,
}

FEATURE_EXTRACTORS: dict[str, type[nn.Module]] = {
    "VGGFeatureExtractor": VGGFeatureExtractor,
}

ARCHS: dict[str, type[nn.Module]] = {**GENERATORS, **DISCRIMINATORS, **FEATURE_EXTRACTORS}


def accepted_args(cls: type[nn.Module]) -> list[str]:
    """Constructor argument names of an architecture, in order."""
    return [n for n in inspect.signature(cls.__init__).parameters if n != "self"]


def build_network(spec: Mapping[str, Any]) -> nn.Module:
    """Build ``ARCHS[spec["type"]](**rest)``; errors name the known types or the accepted arguments."""
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(f"network spec needs a 'type' key (one of {', '.join(ARCHS)}), got {spec!r}")
    kwargs = dict(spec)
    name = kwargs.pop("type")
    if name not in ARCHS:
        raise ValueError(f"unknown network type {name!r}; known types: {', '.join(ARCHS)}")
    cls = ARCHS[name]
    accepted = accepted_args(cls)
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        raise ValueError(f"{name}: unknown argument(s) {unknown}; accepted: {', '.join(accepted)}")
    return cls(**kwargs)


__all__ = [
    "ARCHS",
    "DISCRIMINATORS",
    "FEATURE_EXTRACTORS",
    "GENERATORS",
    "RRDB",
    "MSRResNet",
    "RRDBNet",
    "ResidualDenseBlock",
    "UNetDiscriminatorSN",
    "VGGFeatureExtractor",
    "VGGStyleDiscriminator",
    "accepted_args",
    "build_network",
]
