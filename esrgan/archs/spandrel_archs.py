"""spandrel's super-resolution networks, trained here as they are (spandrel is an optional extra).

``network_g: {type: SPAN, feature_channels: 48}`` builds ``spandrel.architectures.SPAN.SPAN`` with
those constructor arguments: the class is looked up by name in spandrel's architectures package
(:data:`SPANDREL_GENERATORS` says where) and never copied, so its state-dict keys are exactly the
ones spandrel detects. A checkpoint trained here therefore loads in spandrel (chaiNNer, ComfyUI) and
in every command of this project, which read such checkpoints through spandrel's detector.

Some constructor arguments cannot be read back from the weights (spandrel assumes the published
value: SPAN's ``img_range``, GRL's ``window_size``, SeemoRe's ``recursive``...). A network whose
checkpoint spandrel would rebuild differently is refused when a training option file loads
(:func:`check_round_trip`), naming the argument and the value spandrel assumes, so that nothing
trains for days into weights nobody can load.

Our RRDBNet and SRVGGNetCompact are spandrel's ``ESRGAN`` and ``Compact``: they stay ours
(``esrgan.archs.GENERATORS``) and are not listed here.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from esrgan.archs.sizes import SizeRequirements, pad_to_fit

INSTALL_HINT = "pip install 'esrgan[spandrel]'"


@dataclass(frozen=True)
class SpandrelArch:
    """Where a network lives in spandrel and how the top-level ``scale`` reaches it."""

    package: str  # spandrel.architectures.<package>
    cls: str  # the class in that package
    scale_arg: str  # the constructor argument the top-level scale fills in
    # forward writes into its input (RCAN: ``x *= rgb_range``): the network gets a copy
    clone_input: bool = False
    # a smallest input its forward needs beyond what spandrel's descriptor states, from its hyper-parameters
    minimum: Callable[[Mapping[str, Any]], int] | None = None


def _grl_minimum(hp: Mapping[str, Any]) -> int:
    # GRL's stripe attention partitions the input into stripe_size windows without padding up to them.
    return max(int(hp["window_size"]), *(int(s) for s in hp["stripe_size"]))


SPANDREL_GENERATORS: dict[str, SpandrelArch] = {
    "ATD": SpandrelArch("ATD", "ATD", "upscale"),
    "CRAFT": SpandrelArch("CRAFT", "CRAFT", "upscale"),
    "DAT": SpandrelArch("DAT", "DAT", "upscale"),
    "DCTLSA": SpandrelArch("DCTLSA", "DCTLSA", "upscale"),
    "DITN": SpandrelArch("DITN", "DITN", "upscale"),
    "DRCT": SpandrelArch("DRCT", "DRCT", "upscale"),
    "FDAT": SpandrelArch("FDAT", "FDAT", "scale"),
    "GRL": SpandrelArch("GRL", "GRL", "upscale", minimum=_grl_minimum),
    "HAT": SpandrelArch("HAT", "HAT", "upscale"),
    "MoESR": SpandrelArch("MoESR", "MoESR", "scale"),
    "MoSR": SpandrelArch("MoSR", "MoSR", "upscale"),
    "OmniSR": SpandrelArch("OmniSR", "OmniSR", "up_scale"),
    "PLKSR": SpandrelArch("PLKSR", "PLKSR", "upscaling_factor"),
    "RealPLKSR": SpandrelArch("PLKSR", "RealPLKSR", "upscaling_factor"),
    "RCAN": SpandrelArch("RCAN", "RCAN", "scale", clone_input=True),
    "RGT": SpandrelArch("RGT", "RGT", "upscale"),
    "SAFMN": SpandrelArch("SAFMN", "SAFMN", "upscaling_factor"),
    "SPAN": SpandrelArch("SPAN", "SPAN", "upscale"),
    "SeemoRe": SpandrelArch("SeemoRe", "SeemoRe", "scale"),
    "SwiftSRGAN": SpandrelArch("SwiftSRGAN", "SwiftSRGAN", "upscale_factor"),
    "Swin2SR": SpandrelArch("Swin2SR", "Swin2SR", "upscale"),
    "SwinIR": SpandrelArch("SwinIR", "SwinIR", "upscale"),
}


class SpandrelMissingError(ImportError):
    """A spandrel network was asked for and spandrel is not installed (the message names the pip command)."""


class RoundTripError(ValueError):
    """spandrel would read a checkpoint of this network back as another network; ``key`` names the argument."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def import_spandrel() -> Any:
    """The spandrel module, or :class:`SpandrelMissingError` with the install command."""
    try:
        import spandrel
    except ImportError:
        raise SpandrelMissingError(f"spandrel is not installed: {INSTALL_HINT}") from None
    return spandrel


def spandrel_class(name: str) -> type[nn.Module]:
    """The class of ``SPANDREL_GENERATORS[name]`` in the installed spandrel."""
    entry = SPANDREL_GENERATORS[name]
    try:
        spandrel = import_spandrel()
    except SpandrelMissingError as exc:
        raise SpandrelMissingError(f"{name} is one of spandrel's networks, and {exc}") from None
    try:
        module = importlib.import_module(f"spandrel.architectures.{entry.package}")
        return getattr(module, entry.cls)
    except (ImportError, AttributeError):
        raise SpandrelMissingError(
            f"{name}: spandrel {spandrel.__version__} has no spandrel.architectures.{entry.package}.{entry.cls} "
            f"(this project is tested with spandrel 0.4.2): {INSTALL_HINT}"
        ) from None


def is_spandrel_network(net: nn.Module) -> bool:
    return type(net).__module__.startswith("spandrel.")


def _clone_input(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (args[0].clone(), *args[1:])


def prepare(name: str, net: nn.Module) -> nn.Module:
    """What every ``name`` network gets however it was made (built from options, or read by spandrel)."""
    if SPANDREL_GENERATORS[name].clone_input:
        net.register_forward_pre_hook(_clone_input)
    return net


def build(name: str, kwargs: Mapping[str, Any]) -> nn.Module:
    """``name``'s class built with ``kwargs`` (its own constructor arguments)."""
    return prepare(name, spandrel_class(name)(**kwargs))


def _is_plain(value: Any) -> bool:
    """A value an option file can hold (no classes or functions, as some constructors' defaults are)."""
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(_is_plain(v) for v in value.values())
    return value is None or isinstance(value, bool | int | float | str)


def code_arguments(cls: type) -> dict[str, Any]:
    """Constructor arguments whose default is Python code (``norm_layer=nn.LayerNorm``): not for option files."""
    params = inspect.signature(cls.__init__).parameters
    return {
        n: p.default
        for n, p in params.items()
        if n != "self" and p.default is not inspect.Parameter.empty and not _is_plain(p.default)
    }


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def hyperparameters(net: nn.Module) -> dict[str, Any]:
    """The constructor arguments spandrel recorded on ``net`` that an option file can hold (tuples as lists)."""
    hp = getattr(net, "hyperparameters", {})
    return {k: _plain(v) for k, v in hp.items() if _is_plain(v)}


def identify(model: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """``(type name, constructor kwargs)`` of a network spandrel built, if it is one of ours to train."""
    if not is_spandrel_network(model):
        return None
    for name in SPANDREL_GENERATORS:
        try:
            if type(model) is spandrel_class(name):
                return name, hyperparameters(model)
        except SpandrelMissingError:
            return None
    return None


def describe(net: nn.Module) -> Any:
    """spandrel's descriptor for ``net``'s weights (what spandrel, chaiNNer and ComfyUI would load)."""
    spandrel = import_spandrel()
    return spandrel.ModelLoader().load_from_state_dict(dict(net.state_dict()))


_KNOWN_SIZES: dict[tuple[type, str], SizeRequirements] = {}


def _size_key(net: nn.Module) -> tuple[type, str]:
    return type(net), repr(sorted(getattr(net, "hyperparameters", {}).items()))


def remember_sizes(net: nn.Module, descriptor: Any) -> SizeRequirements:
    """Record the size requirements spandrel's descriptor states for ``net`` (they follow from its
    hyper-parameters, so every network of this configuration has them)."""
    req = descriptor.size_requirements
    out = SizeRequirements(minimum=req.minimum, multiple_of=req.multiple_of, square=req.square)
    found = identify(net)
    extra = SPANDREL_GENERATORS[found[0]].minimum if found else None
    if extra is not None:
        out = out.merge(SizeRequirements(minimum=extra(getattr(net, "hyperparameters", {}))))
    _KNOWN_SIZES[_size_key(net)] = out
    return out


def size_requirements(net: nn.Module) -> SizeRequirements | None:
    """``net``'s input size requirements if it is a spandrel network (else None).

    Known once spandrel has read a checkpoint of this configuration; otherwise (one of
    :data:`SPANDREL_GENERATORS` built from options) spandrel's descriptor is made once from its weights.
    """
    if not is_spandrel_network(net):
        return None
    key = _size_key(net)
    if key not in _KNOWN_SIZES:
        if identify(net) is None:
            return None
        remember_sizes(net, describe(net))
    return _KNOWN_SIZES[key]


def _probe_size(req: SizeRequirements) -> int:
    return 24 + sum(req.padding(24, 24))  # small, and a size no window divides exactly unless it must


@torch.no_grad()
def _same_function(ours: nn.Module, theirs: nn.Module, req: SizeRequirements) -> tuple[bool, str]:
    """Whether two networks compute the same on random weights (so zero-initialised paths show too)."""
    gen = torch.Generator().manual_seed(0)
    for p in ours.parameters():
        if p.is_floating_point():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.02)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    ours.eval()
    theirs.eval()
    x = pad_to_fit(torch.rand(1, 3, _probe_size(req), _probe_size(req), generator=gen), req)
    try:
        a, b = ours(x.clone()), theirs(x.clone())
    except Exception as exc:  # shape errors of a configuration spandrel rebuilt differently
        return False, f"{type(exc).__name__}: {exc}"
    if a.shape != b.shape:
        return False, f"outputs of shape {tuple(a.shape)} vs {tuple(b.shape)}"
    diff = float((a - b).abs().max())
    return diff <= 1e-5 * max(1.0, float(a.abs().max())), f"outputs differ by up to {diff:.3g}"


_CHECKED: dict[tuple[str, str, int], SizeRequirements] = {}


def check_round_trip(name: str, kwargs: Mapping[str, Any], scale: int) -> SizeRequirements:
    """Refuse a configuration whose checkpoint spandrel would read back as another network.

    Builds the network, hands its weights to spandrel's detector and compares: the class, the scale,
    and the hyper-parameters; where these differ (an argument spandrel cannot read from the weights
    and assumes), both networks are run on random weights and must agree (some differences are
    harmless, e.g. HAT's ``img_size``, which only sizes a cache). Returns the size requirements
    spandrel states, with the argument in error in :attr:`RoundTripError.key` otherwise.
    """
    key = (name, repr(sorted(kwargs.items())), scale)
    if key not in _CHECKED:  # once per configuration and process (options are loaded again on resume)
        _CHECKED[key] = _check_round_trip(name, kwargs, scale)
    return _CHECKED[key]


def _check_round_trip(name: str, kwargs: Mapping[str, Any], scale: int) -> SizeRequirements:
    spandrel = import_spandrel()
    version = f"spandrel {spandrel.__version__}"
    net = build(name, kwargs)
    try:
        descriptor = describe(net)
    except Exception as exc:  # UnsupportedModelError, or its loader failing on an unusual configuration
        raise RoundTripError(
            f"{version} cannot read a checkpoint of this {name} back ({type(exc).__name__}: {exc}); "
            "use the published settings of its paper for the arguments spandrel cannot read from the weights"
        ) from exc
    entry = SPANDREL_GENERATORS[name]
    if type(descriptor.model) is not type(net):
        raise RoundTripError(
            f"{version} reads a checkpoint of this {name} as {descriptor.architecture.name} "
            f"({type(descriptor.model).__name__}), not {name}"
        )
    if int(descriptor.scale) != scale:
        raise RoundTripError(
            f"{version} reads a checkpoint of this {name} as x{descriptor.scale}, not x{scale}", key=entry.scale_arg
        )
    req = remember_sizes(net, descriptor)
    ours, theirs = hyperparameters(net), hyperparameters(descriptor.model)
    differ = [k for k in ours if ours[k] != theirs.get(k)]
    if differ:
        same, detail = _same_function(copy.deepcopy(net), descriptor.model, req)
        if not same:
            assumed = ", ".join(f"{k}={theirs.get(k)!r} (given {ours[k]!r})" for k in differ)
            raise RoundTripError(
                f"{version} cannot read this from the weights and would rebuild a checkpoint of this {name} with "
                f"{assumed} ({detail}): use its value, or the checkpoint will load as another network in spandrel, "
                "chaiNNer, ComfyUI and esrgan upscale",
                key=differ[0],
            )
    return req
