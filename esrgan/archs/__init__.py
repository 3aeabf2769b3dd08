"""Networks as plain nn.Modules, and one ``build_network(spec)`` over name -> class tables.

``spec`` is ``{"type": "RRDBNet", **kwargs}`` (BasicSR's ``network_g`` / ``network_d`` sections).
Generators are ours (:data:`GENERATORS`) or spandrel's (:data:`SPANDREL_GENERATORS`, built from
the installed spandrel's classes, see :mod:`esrgan.archs.spandrel_archs`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import nn

from esrgan.archs.discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator
from esrgan.archs.rrdbnet import RRDB, ResidualDenseBlock, RRDBNet
from esrgan.archs.sizes import SizeRequirements, pad_to_fit
from esrgan.archs.spandrel_archs import SPANDREL_GENERATORS, SpandrelMissingError
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

# The constructor argument of each of our generators that the top-level ``scale`` fills in
# (spandrel's: SPANDREL_GENERATORS[name].scale_arg).
SCALE_ARGS: dict[str, str] = {"RRDBNet": "scale", "MSRResNet": "upscale", "SRVGGNetCompact": "upscale"}


class _WithSpandrel(Mapping[str, type[nn.Module]]):
    """``table`` plus spandrel's generators by name; a spandrel class is imported when it is looked up
    (:class:`SpandrelMissingError`, naming the pip command, when spandrel is not installed)."""

    def __init__(self, table: Mapping[str, type[nn.Module]]) -> None:
        self._table = table

    def __getitem__(self, name: str) -> type[nn.Module]:
        if name in self._table:
            return self._table[name]
        if name in SPANDREL_GENERATORS:
            from esrgan.archs.spandrel_archs import spandrel_class

            return spandrel_class(name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:  # without importing spandrel
        return name in self._table or name in SPANDREL_GENERATORS

    def __iter__(self) -> Iterator[str]:
        yield from self._table
        yield from (n for n in SPANDREL_GENERATORS if n not in self._table)

    def __len__(self) -> int:
        return len(set(self._table) | set(SPANDREL_GENERATORS))


def generator_classes() -> Mapping[str, type[nn.Module]]:
    """Every generator type ``network_g`` takes: ours, then spandrel's (imported on look-up)."""
    return _WithSpandrel(GENERATORS)


def scale_argument(name: str) -> str | None:
    """The constructor argument of generator ``name`` that the top-level ``scale`` fills in (None: unknown)."""
    if name in SPANDREL_GENERATORS:
        return SPANDREL_GENERATORS[name].scale_arg
    return SCALE_ARGS.get(name)


def build_network(spec: Mapping[str, Any]) -> nn.Module:
    """Build ``ARCHS[spec["type"]](**rest)`` or a spandrel generator; errors name the known types or the
    accepted arguments."""
    name = spec.get("type") if isinstance(spec, Mapping) else None
    net = build_from_table(_WithSpandrel(ARCHS), spec, "network")
    if name in SPANDREL_GENERATORS and name not in ARCHS:
        from esrgan.archs.spandrel_archs import prepare

        net = prepare(name, net)
    return net


def size_requirements(net: nn.Module) -> SizeRequirements:
    """The input sizes ``net`` takes (ours state them; spandrel's descriptor does for its networks)."""
    own = getattr(net, "size_requirements", None)
    if callable(own):
        return own()
    from esrgan.archs.spandrel_archs import size_requirements as spandrel_sizes

    return spandrel_sizes(net) or SizeRequirements()


__all__ = [
    "ARCHS",
    "DISCRIMINATORS",
    "FEATURE_EXTRACTORS",
    "GENERATORS",
    "RRDB",
    "SCALE_ARGS",
    "SPANDREL_GENERATORS",
    "MSRResNet",
    "RRDBNet",
    "ResidualDenseBlock",
    "SRVGGNetCompact",
    "SizeRequirements",
    "SpandrelMissingError",
    "UNetDiscriminatorSN",
    "VGGFeatureExtractor",
    "VGGStyleDiscriminator",
    "accepted_args",
    "build_network",
    "generator_classes",
    "pad_to_fit",
    "scale_argument",
    "size_requirements",
]
