"""Networks as plain nn.Modules, and one ``build_network(spec)`` over name -> class tables.

``spec`` is ``{"type": "RRDBNet", **kwargs}`` (BasicSR's ``network_g`` / ``network_d`` sections).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from esrgan.archs.discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator
from esrgan.archs.rrdbnet import RRDB, ResidualDenseBlock, RRDBNet
from esrgan.archs.srresnet import MSRResNet
from esrgan.archs.srvgg import SRVGGNetCompact
from esrgan.archs.vgg import VGGFeatureExtractor
from esrgan.utils.factory import accepted_args, build_from_table

GENERATORS: dict[str, type[nn.Module]] = {
    "RRDBNet": RRDBNet,
    "MSRResNet": MSRResNet,
    "SRVGGNetCompact": SRVGGNetCompact,
}

DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "VGGStyleDiscriminator": VGGStyleDiscriminator,
    "UNetDiscriminatorSN": UNetDiscriminatorSN,
}

FEATURE_EXTRACTORS: dict[str, type[nn.Module]] = {
    "VGGFeatureExtractor": VGGFeatureExtractor,
}

ARCHS: dict[str, type[nn.Module]] = {**GENERATORS, **DISCRIMINATORS, **FEATURE_EXTRACTORS}


def build_network(spec: Mapping[str, Any]) -> nn.Module:
    """Build ``ARCHS[spec["type"]](**rest)``; errors name the known types or the accepted arguments."""
    return build_from_table(ARCHS, spec, "network")


__all__ = [
    "ARCHS",
    "DISCRIMINATORS",
    "FEATURE_EXTRACTORS",
    "GENERATORS",
    "RRDB",
    "MSRResNet",
    "RRDBNet",
    "ResidualDenseBlock",
    "SRVGGNetCompact",
    "UNetDiscriminatorSN",
    "VGGFeatureExtractor",
    "VGGStyleDiscriminator",
    "accepted_args",
    "build_network",
]
