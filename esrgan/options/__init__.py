"""YAML option files -> typed, validated options (BasicSR's vocabulary).

``load_options(path, overrides, is_train=...)`` reads a file, applies dotted ``a.b.c=value``
overrides (values parsed as YAML), upgrades a few legacy BasicSR key names, converts everything
into the dataclasses below and resolves what BasicSR resolves at load time (dataset phases and
scale, experiment paths, ``num_gpu: auto``, a missing ``manual_seed``). Every problem is one
:class:`OptionsError` naming the file, the key path and what was expected.

The conversion is generic: a dataclass field's annotation says what a value may be (``int``,
``float``, ``bool``, ``str``, ``Literal[...]``, unions, lists, tuples, dicts, nested dataclasses),
unknown keys are refused with the allowed ones and a did-you-mean. Network and loss sections are
checked against the constructors in ``esrgan.archs`` and ``esrgan.losses`` (type names, argument
names and the arguments' annotations), so a typo fails at load, not hours into a run.

Differences from BasicSR's option handling (its files still load unchanged):
- unknown keys, wrong types and unknown network/loss/optimizer/scheduler names are errors
  (BasicSR ignores unknown keys or fails late); duplicate YAML keys are errors; ``1e-4`` is a float
  without ``!!float``;
- old key names are read as the new ones: ``use_flip`` -> ``use_hflip``, ``pretrain_model_g/d`` ->
  ``pretrain_network_g/d``, ``strict_load`` -> ``strict_load_g``, ``VGGStyleDiscriminator128`` ->
  ``VGGStyleDiscriminator`` with ``input_size: 128``;
- ``train.gan_opt.relativistic`` makes the relativistic average GAN explicit: true for
  ``gan_type: ragan`` and (as BasicSR's ESRGANModel) for ESRGANModel unless set to false;
  ``gan_opt.gp_weight`` adds the WGAN-GP penalty;
- overrides are ``--set a.b.c=value`` (YAML value) instead of ``--force_yml a:b:c=value``; they may
  create keys that are valid but absent from the file;
- ``network_g.scale`` / ``upscale`` default to the top-level ``scale`` (BasicSR builds an x4
  RRDBNet unless told); a contradicting value is an error;
- metric types ``calculate_psnr`` / ``_ssim`` / ``_niqe`` / ``_lpips`` are read as ``psnr`` ... ``lpips``; a metric
  without ``crop_border`` crops ``scale`` pixels and one without ``test_y_channel`` scores Y;
- ``path.experiments_root`` (when given) is the experiment folder itself, not its parent; paths
  are relative to the working directory, not to the repository;
- ``logger.wandb`` is accepted and ignored (with a warning when a project is set);
  ``datasets.*.use_shuffle`` (which BasicSR >= 1.3 ignores) is honoured;
- ours: ``train.{g_warmup_iter, use_amp, amp_dtype, channels_last, grad_clip, compile_g}``,
  ``logger.keep_last``, ``val.metrics.*.better``; ``val_freq: 0`` / ``save_checkpoint_freq: 0`` = off;
- the resolved options fill in every default (network and loss arguments included) and load back
  to equal options (``Options.to_dict()``, :func:`save_options`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import logging
import os
import random
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from esrgan.options.datasets import DatasetOptions, dataset_options_class
from esrgan.options.realesrgan import REAL_KEYS, RealESRGANOptions

logger = logging.getLogger("esrgan.options")

MODEL_TYPES = ("SRModel", "ESRGANModel", "RealESRNetModel", "RealESRGANModel")
GAN_MODEL_TYPES = ("ESRGANModel", "RealESRGANModel")
SCHEDULER_TYPES = ("MultiStepLR", "CosineAnnealingRestartLR")
OPTIMIZER_TYPES = ("Adam", "AdamW", "Adamax", "SGD", "ASGD", "RMSprop", "Rprop")
METRIC_TYPES = ("psnr", "ssim")
# BasicSR's metric function names -> ours.
_METRIC_ALIASES = {"calculate_psnr": "psnr", "calculate_ssim": "ssim", "calculate_niqe": "niqe",
                   "calculate_lpips": "lpips"}


class OptionsError(ValueError):
    """A bad option file or override: names the file, the key path and what was expected."""

    def __init__(self, reason: str, *, key: str | None = None, file: str | os.PathLike[str] | None = None) -> None:
        self.reason = reason
        self.key = key
        self.file = None if file is None else str(file)
        super().__init__(": ".join(p for p in (self.file, self.key, reason) if p))

    def with_file(self, file: str | os.PathLike[str]) -> OptionsError:
        return OptionsError(self.reason, key=self.key, file=file)


# ----------------------------------------------------------------------------------------------
# Generic mapping -> dataclass conversion
# ----------------------------------------------------------------------------------------------

_FLOAT_RE = re.compile(r"^[-+]?(?:\d[\d_]*\.?[\d_]*(?:[eE][-+]?\d+)?|\.\d[\d_]*(?:[eE][-+]?\d+)?|\.inf|\.nan)$", re.I)


def _describe(tp: Any) -> str:
    """A reader's name for a type annotation: 'int', 'list of float', 'one of a, b', ..."""
    origin = get_origin(tp)
    if tp is Any:
        return "any value"
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join("null" if a is None else str(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin in (list, Sequence, tuple):
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
        return f"a list of {_describe(args[0]) if args else 'values'}"
    if origin in (dict, Mapping):
        args = get_args(tp)
        return f"a mapping to {_describe(args[1])}" if args else "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    return getattr(tp, "__name__", str(tp))


def _show(value: Any) -> str:
    return "null" if value is None else repr(value)


def _unknown_key(key: str, allowed: Sequence[str], path: str) -> OptionsError:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return OptionsError(f"unknown key; {hint}allowed keys: {', '.join(allowed)}", key=_join(path, key))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def convert(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against annotation ``tp`` and convert it (``path`` names it in errors)."""
    origin = get_origin(tp)
    if tp is Any or tp is object:
        return value
    if tp is type(None):
        if value is not None:
            raise OptionsError(f"expected null, got {_show(value)}", key=path)
        return None
    if origin is Literal:
        allowed = get_args(tp)
        if not any(value == a and type(value) is type(a) for a in allowed):
            names = [str(a) for a in allowed if a is not None]
            close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            allowed_text = ", ".join(map(str, allowed))
            raise OptionsError(f"{_show(value)} is not allowed{hint}; allowed values: {allowed_text}", key=path)
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return convert(value, options[0], path)
        for option in options:
            try:
                return convert(value, option, path)
            except OptionsError:
                continue
        raise OptionsError(f"expected {_describe(tp)}, got {_show(value)}", key=path)
    if tp is bool:
        if not isinstance(value, bool):
            raise OptionsError(f"expected true or false, got {_show(value)}", key=path)
        return value
    if tp is int:
        number = _number(value, path, "an integer")
        if isinstance(number, float):
            if not number.is_integer():
                raise OptionsError(f"expected an integer, got {_show(value)}", key=path)
            number = int(number)  # BasicSR writes iteration counts as !!float 5e3
        return number
    if tp is float:
        return float(_number(value, path, "a number"))
    if tp is str:
        if not isinstance(value, str):
            raise OptionsError(f"expected a string, got {_show(value)}", key=path)
        return value
    if origin in (list, Sequence) or tp in (list, Sequence):
        if not isinstance(value, list | tuple):
            raise OptionsError(f"expected {_describe(tp)}, got {_show(value)}", key=path)
        (item_tp,) = get_args(tp) or (Any,)
        return [convert(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list | tuple):
            raise OptionsError(f"expected {_describe(tp)}, got {_show(value)}", key=path)
        if args and args[-1] is Ellipsis:
            return tuple(convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise OptionsError(f"expected {_describe(tp)}, got {len(value)} values: {_show(value)}", key=path)
        return tuple(convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise OptionsError(f"expected {_describe(tp)}, got {_show(value)}", key=path)
        key_tp, val_tp = get_args(tp) or (Any, Any)
        return {convert(k, key_tp, path): convert(v, val_tp, _join(path, str(k))) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_mapping(tp, value, path)
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise OptionsError(f"expected {_describe(tp)}, got {_show(value)}", key=path)
        return value
    return value  # an annotation we cannot check (e.g. a protocol): the constructor will


def _number(value: Any, path: str, what: str) -> int | float:
    if isinstance(value, bool):
        raise OptionsError(f"expected {what}, got {_show(value)}", key=path)
    if isinstance(value, int | float):
        return value
    # PyYAML reads 1e-4 (no dot) as a string, and so would a --set value: accept the number it spells.
    if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
        text = value.strip().replace("_", "")
        try:
            return int(text)
        except ValueError:
            return float(text)
    raise OptionsError(f"expected {what}, got {_show(value)}", key=path)


def from_mapping(cls: type, value: Any, path: str) -> Any:
    """Build dataclass ``cls`` from a mapping: unknown keys and bad values are errors naming ``path.key``.

    A field may carry ``metadata={"parse": fn}`` with ``fn(value, key_path)`` doing its own conversion.
    """
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise OptionsError(f"expected a mapping (section of keys), got {_show(value)}", key=path or None)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in value:
        if key not in fields:
            raise _unknown_key(str(key), list(fields), path)
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise OptionsError(f"required key is missing ({_describe(hints[name])})", key=key)
            continue
        parse: Callable[[Any, str], Any] | None = f.metadata.get("parse")
        kwargs[name] = parse(value[name], key) if parse else convert(value[name], hints[name], key)
    try:
        obj = cls(**kwargs)
    except OptionsError:
        raise
    except (ValueError, TypeError) as exc:
        raise OptionsError(str(exc), key=path or None) from None
    check = getattr(obj, "check", None)
    if callable(check):
        check(path)
    return obj


def to_plain(obj: Any) -> Any:
    """Dataclasses / tuples / paths -> plain dicts, lists and scalars (YAML-safe)."""
    if hasattr(obj, "to_dict") and not isinstance(obj, type):
        return to_plain(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def check_kwargs(cls: type, kwargs: Mapping[str, Any], path: str, *, fill_defaults: bool = True) -> dict[str, Any]:
    """Validate constructor arguments of ``cls`` by name and annotation; optionally add the defaults.

    Filling in the defaults makes the saved, resolved options state every hyper-parameter in force.
    """
    params = {
        n: p
        for n, p in inspect.signature(cls.__init__).parameters.items()
        if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    for key in kwargs:
        if key not in params:
            close = difflib.get_close_matches(str(key), list(params), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise OptionsError(
                f"unknown argument of {cls.__name__}; {hint}accepted: {', '.join(params)}", key=_join(path, str(key))
            )
    try:
        hints = get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not evaluate here: check names only
        hints = {}
    out: dict[str, Any] = {}
    for name, p in params.items():
        if name in kwargs:
            out[name] = convert(kwargs[name], hints.get(name, Any), _join(path, name))
        elif p.default is inspect.Parameter.empty:
            raise OptionsError(f"required argument of {cls.__name__} is missing", key=_join(path, name))
        elif fill_defaults:
            out[name] = to_plain(p.default)
    return out


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


@dataclass
class ComponentOptions:
    """A component chosen by name plus its constructor arguments (``network_g``, ``pixel_opt``, ...)."""

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        """``{"type": ..., **kwargs}`` for ``esrgan.archs.build_network`` / ``esrgan.losses.build_loss``."""
        return {"type": self.type, **self.kwargs}

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self.spec())


class NetworkOptions(ComponentOptions):
    """``network_g`` / ``network_d``: an architecture name and its constructor arguments."""


class LossOptions(ComponentOptions):
    """``pixel_opt`` / ``perceptual_opt``: a loss name and its constructor arguments."""


@dataclass
class GANOptions(LossOptions):
    """``gan_opt``: the GANLoss arguments plus how the trainer applies it.

    ``relativistic``: relativistic average GAN (ESRGAN). Resolved at load: true for
    ``gan_type: ragan`` and, as in BasicSR, for ``model_type: ESRGANModel`` unless set to false.
    ``gp_weight``: weight of the WGAN-GP gradient penalty in the discriminator loss (0 = off).
    """

    relativistic: bool | None = None  # None until load_options resolves it
    gp_weight: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return to_plain({**self.spec(), "relativistic": self.relativistic, "gp_weight": self.gp_weight})

    def check(self, path: str) -> None:
        if self.gp_weight < 0:
            raise OptionsError(f"must be >= 0 (0 = off), got {self.gp_weight}", key=_join(path, "gp_weight"))


def _parse_section(
    table_name: str, tables: Callable[[], Mapping[str, type]], kind: str, cls: type = LossOptions
) -> Callable[[Any, str], Any]:
    """A ``parse`` hook for a ``{type: Name, **kwargs}`` section checked against a name -> class table.

    Keys that are fields of ``cls`` itself (e.g. ``relativistic`` of :class:`GANOptions`) are its
    own; all others are the constructor arguments of ``table[type]``.
    """

    def parse(value: Any, path: str) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise OptionsError(f"expected a mapping with 'type' and the {kind} arguments, got {_show(value)}", key=path)
        table = tables()
        if "type" not in value:
            raise OptionsError(f"required key is missing (one of {', '.join(table)})", key=_join(path, "type"))
        name = value["type"]
        if name not in table:
            close = difflib.get_close_matches(str(name), list(table), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise OptionsError(
                f"unknown {kind} type {_show(name)}{hint}; allowed {table_name}: {', '.join(table)}",
                key=_join(path, "type"),
            )
        hints = get_type_hints(cls)
        own = {f.name for f in dataclasses.fields(cls)} - {"type", "kwargs"}
        rest = {k: v for k, v in value.items() if k != "type" and k not in own}
        values = {k: convert(value[k], hints[k], _join(path, k)) for k in own if k in value}
        obj = cls(type=name, kwargs=check_kwargs(table[name], rest, path), **values)
        check = getattr(obj, "check", None)
        if callable(check):
            check(path)
        return obj

    return parse


def _generators() -> Mapping[str, type]:
    from esrgan.archs import GENERATORS

    return GENERATORS


def _discriminators() -> Mapping[str, type]:
    from esrgan.archs import DISCRIMINATORS

    return DISCRIMINATORS


def _pixel_losses() -> Mapping[str, type]:
    from esrgan.losses import PIXEL_LOSSES

    return PIXEL_LOSSES


def _perceptual_losses() -> Mapping[str, type]:
    from esrgan.losses import PERCEPTUAL_LOSSES

    return PERCEPTUAL_LOSSES


def _gan_losses() -> Mapping[str, type]:
    from esrgan.losses import GAN_LOSSES

    return GAN_LOSSES


def _parse_datasets(value: Any, path: str) -> dict[str, DatasetOptions]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        expected = "a mapping of phase -> dataset (train, val, val_1, test_1, ...)"
        raise OptionsError(f"expected {expected}, got {_show(value)}", key=path)
    out: dict[str, DatasetOptions] = {}
    for phase_key, ds in value.items():
        key = _join(path, str(phase_key))
        if not isinstance(ds, Mapping):
            raise OptionsError(f"expected a mapping of dataset options, got {_show(ds)}", key=key)
        cls = dataset_options_class(ds.get("type"))
        allowed = [f.name for f in dataclasses.fields(cls)]
        hints = get_type_hints(cls)
        for k in ds:
            if k not in allowed:
                raise _unknown_key(str(k), allowed, key)
        # Our conversion first (integral floats -> int, type errors in our words); io_backend is data's own.
        ds = {k: v if k == "io_backend" else convert(v, hints[k], _join(key, k)) for k, v in ds.items()}
        try:
            out[str(phase_key)] = cls.from_dict(ds, key)
        except ValueError as exc:
            raise _dataset_error(exc, key) from None
    return out


def _dataset_error(exc: ValueError, path: str) -> OptionsError:
    """esrgan.data's messages start with the key path; keep it as the error's key."""
    key, sep, reason = str(exc).partition(": ")
    if sep and key.startswith(path):
        return OptionsError(reason, key=key)
    return OptionsError(str(exc), key=path)


def _at_least(section: Any, path: str, *bounds: tuple[str, float]) -> None:
    for key, low in bounds:
        if getattr(section, key) < low:
            raise OptionsError(f"must be >= {low}, got {getattr(section, key)}", key=_join(path, key))


@dataclass
class PathOptions:
    """``path``: pretrained weights, resume state and the experiment folders (resolved from ``name``)."""

    pretrain_network_g: str | None = None
    param_key_g: str = "params"
    strict_load_g: bool = True
    pretrain_network_d: str | None = None
    param_key_d: str = "params"
    strict_load_d: bool = True
    resume_state: str | None = None
    # Training: experiments/<name> and its sub-folders; test: results/<name>. Given values are kept.
    experiments_root: str | None = None
    models: str | None = None
    training_states: str | None = None
    log: str | None = None
    visualization: str | None = None
    results_root: str | None = None


@dataclass
class OptimizerOptions:
    """``optim_g`` / ``optim_d``: a ``torch.optim`` class name and its arguments (unset ones use torch's)."""

    type: str = "Adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] | None = None
    eps: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    amsgrad: bool | None = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the ``torch.optim`` class (``lr``, ``weight_decay`` and the ones set)."""
        names = ("lr", "weight_decay", "betas", "eps", "momentum", "nesterov", "amsgrad")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def build(self, params: Any) -> Any:
        """``torch.optim.<type>(params, **kwargs())``."""
        import torch

        return getattr(torch.optim, self.type)(params, **self.kwargs())

    def check(self, path: str) -> None:
        if self.type not in OPTIMIZER_TYPES:
            raise OptionsError(
                f"unknown optimizer {_show(self.type)}; allowed values: {', '.join(OPTIMIZER_TYPES)}",
                key=_join(path, "type"),
            )
        import torch

        accepted = inspect.signature(getattr(torch.optim, self.type).__init__).parameters
        for name in self.kwargs():
            if name not in accepted:
                raise OptionsError(f"{self.type} takes no argument {name!r}", key=_join(path, name))
        if self.lr <= 0:
            raise OptionsError(f"must be > 0, got {self.lr}", key=_join(path, "lr"))
        if self.weight_decay < 0:
            raise OptionsError(f"must be >= 0, got {self.weight_decay}", key=_join(path, "weight_decay"))
        if self.betas is not None and not all(0 <= b < 1 for b in self.betas):
            raise OptionsError(f"each beta must be in [0, 1), got {list(self.betas)}", key=_join(path, "betas"))


@dataclass
class SchedulerOptions:
    """``scheduler``: ``MultiStepLR`` (``milestones``, ``gamma``) or ``CosineAnnealingRestartLR``
    (``periods``, ``restart_weights`` (default all 1), ``eta_min``), stepped once per iteration."""

    type: Literal["MultiStepLR", "CosineAnnealingRestartLR"]
    milestones: list[int] | None = None
    gamma: float = 0.5
    periods: list[int] | None = None
    restart_weights: list[float] | None = None
    eta_min: float = 0.0

    def check(self, path: str) -> None:
        if self.type == "MultiStepLR":
            if self.milestones is None:
                reason = "required for MultiStepLR (iterations where lr *= gamma)"
                raise OptionsError(reason, key=_join(path, "milestones"))
            if self.milestones != sorted(self.milestones):
                raise OptionsError(f"must be increasing, got {self.milestones}", key=_join(path, "milestones"))
            if self.gamma <= 0:
                raise OptionsError(f"must be > 0, got {self.gamma}", key=_join(path, "gamma"))
            for key in ("periods", "restart_weights"):
                if getattr(self, key) is not None:
                    raise OptionsError("only for CosineAnnealingRestartLR", key=_join(path, key))
        else:
            if not self.periods or any(p <= 0 for p in self.periods):
                raise OptionsError(
                    f"required for CosineAnnealingRestartLR: a list of positive period lengths, got {self.periods}",
                    key=_join(path, "periods"),
                )
            if self.restart_weights is None:
                self.restart_weights = [1.0] * len(self.periods)
            if len(self.restart_weights) != len(self.periods):
                raise OptionsError(
                    f"needs one weight per period ({len(self.periods)}), got {len(self.restart_weights)}",
                    key=_join(path, "restart_weights"),
                )
            if self.milestones is not None:
                raise OptionsError("only for MultiStepLR", key=_join(path, "milestones"))
            if self.eta_min < 0:
                raise OptionsError(f"must be >= 0, got {self.eta_min}", key=_join(path, "eta_min"))


@dataclass
class TrainOptions:
    """``train``: optimisation and losses. The last group of fields is ours (not in BasicSR)."""

    ema_decay: float = 0.0  # 0 = no EMA of the generator
    optim_g: OptimizerOptions | None = None
    optim_d: OptimizerOptions | None = None
    scheduler: SchedulerOptions | None = None
    total_iter: int = 0
    warmup_iter: int = -1  # linear learning-rate warm-up iterations (-1 = none), as BasicSR
    pixel_opt: LossOptions | None = field(
        default=None, metadata={"parse": _parse_section("pixel losses", _pixel_losses, "pixel loss")}
    )
    perceptual_opt: LossOptions | None = field(
        default=None, metadata={"parse": _parse_section("perceptual losses", _perceptual_losses, "perceptual loss")}
    )
    gan_opt: GANOptions | None = field(
        default=None, metadata={"parse": _parse_section("GAN losses", _gan_losses, "GAN loss", GANOptions)}
    )
    net_d_iters: int = 1  # G is updated every net_d_iters iterations (BasicSR)
    net_d_init_iters: int = 0  # first iterations update D only (BasicSR)
    # ours
    g_warmup_iter: int = 0  # first GAN-stage iterations train G without adversarial/perceptual loss, D idle
    use_amp: bool = False
    amp_dtype: Literal["bf16", "fp16"] = "bf16"
    channels_last: bool = False
    grad_clip: float = 0.0  # max gradient norm for G and D, 0 = off
    compile_g: bool = False

    def check(self, path: str) -> None:
        if not 0 <= self.ema_decay < 1:
            raise OptionsError(f"must be in [0, 1) (0 = off), got {self.ema_decay}", key=_join(path, "ema_decay"))
        _at_least(self, path, ("net_d_iters", 1), ("net_d_init_iters", 0), ("g_warmup_iter", 0), ("grad_clip", 0))


@dataclass
class MetricOptions:
    """One validation metric. ``type`` accepts BasicSR's ``calculate_*`` names too."""

    type: Literal["psnr", "ssim", "niqe", "lpips"]
    crop_border: int | None = None  # None: the top-level scale (the SR literature's convention)
    test_y_channel: bool = True  # the literature scores the Y channel; BasicSR's default is false
    better: Literal["higher", "lower"] | None = None  # None: the metric's own (psnr/ssim higher, niqe/lpips lower)
    net: Literal["alex", "vgg"] = "alex"  # LPIPS backbone


def _parse_metrics(value: Any, path: str) -> dict[str, MetricOptions]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise OptionsError(
            f"expected a mapping of metric name -> {{type, crop_border, test_y_channel}}, got {_show(value)}", key=path
        )
    out = {}
    for name, spec in value.items():
        key = _join(path, str(name))
        if isinstance(spec, Mapping) and spec.get("type") in _METRIC_ALIASES:
            spec = {**spec, "type": _METRIC_ALIASES[spec["type"]]}
        metric = from_mapping(MetricOptions, spec, key)
        if metric.crop_border is not None and metric.crop_border < 0:
            raise OptionsError(f"must be >= 0, got {metric.crop_border}", key=_join(key, "crop_border"))
        out[str(name)] = metric
    return out


@dataclass
class ValOptions:
    """``val``: validation every ``val_freq`` iterations with the given metrics."""

    val_freq: int = 5000  # 0: no periodic validation
    save_img: bool = False
    suffix: str | None = None  # appended to saved image names (test mode)
    pbar: bool = False
    metrics: dict[str, MetricOptions] = field(default_factory=dict, metadata={"parse": _parse_metrics})

    def check(self, path: str) -> None:
        _at_least(self, path, ("val_freq", 0))


@dataclass
class LoggerOptions:
    """``logger``. ``wandb`` is accepted for BasicSR files and ignored (warned about when a project is set)."""

    print_freq: int = 100
    save_checkpoint_freq: int = 5000  # 0: checkpoints only at the end (and on interruption)
    use_tb_logger: bool = True
    keep_last: int = 0  # keep only the last K periodic checkpoints (0 = keep all); ours
    wandb: dict[str, Any] | None = None

    def check(self, path: str) -> None:
        _at_least(self, path, ("print_freq", 1), ("save_checkpoint_freq", 0), ("keep_last", 0))


@dataclass
class DistParams:
    """``dist_params``: the process-group backend, and the master port for ``--launcher slurm``."""

    backend: str = "nccl"
    port: int = 29500


@dataclass
class Options:
    """A whole option file, validated and resolved. ``to_dict()`` is what the trainer saves."""

    name: str
    model_type: Literal["SRModel", "ESRGANModel", "RealESRNetModel", "RealESRGANModel"] = "SRModel"
    scale: int = 4
    num_gpu: int | Literal["auto"] = 1
    manual_seed: int | None = None
    is_train: bool = True
    dist: bool = False
    rank: int = 0
    world_size: int = 1
    datasets: dict[str, DatasetOptions] = field(default_factory=dict, metadata={"parse": _parse_datasets})
    network_g: NetworkOptions | None = field(
        default=None, metadata={"parse": _parse_section("generators", _generators, "network", NetworkOptions)}
    )
    network_d: NetworkOptions | None = field(
        default=None, metadata={"parse": _parse_section("discriminators", _discriminators, "network", NetworkOptions)}
    )
    path: PathOptions = field(default_factory=PathOptions)
    train: TrainOptions | None = None
    val: ValOptions | None = None
    logger: LoggerOptions = field(default_factory=LoggerOptions)
    dist_params: DistParams = field(default_factory=DistParams)
    # Real-ESRGAN's top-level keys (RealESRNetModel / RealESRGANModel; null = the published recipe's
    # value; see esrgan.options.realesrgan.RealESRGANOptions).
    high_order_degradation: bool | None = None
    gt_usm: bool | None = None
    l1_gt_usm: bool | None = None
    percep_gt_usm: bool | None = None
    gan_gt_usm: bool | None = None
    resize_prob: list[float] | None = None
    resize_range: list[float] | None = None
    gaussian_noise_prob: float | None = None
    noise_range: list[float] | None = None
    poisson_scale_range: list[float] | None = None
    gray_noise_prob: float | None = None
    jpeg_range: list[float] | None = None
    second_blur_prob: float | None = None
    resize_prob2: list[float] | None = None
    resize_range2: list[float] | None = None
    gaussian_noise_prob2: float | None = None
    noise_range2: list[float] | None = None
    poisson_scale_range2: list[float] | None = None
    gray_noise_prob2: float | None = None
    jpeg_range2: list[float] | None = None
    gt_size: int | None = None
    queue_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts/lists/scalars; dumped as YAML it loads back to equal options."""
        return {
            f.name: to_plain(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None or f.name not in REAL_KEYS
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=False)

    @property
    def is_gan(self) -> bool:
        return self.model_type in GAN_MODEL_TYPES

    @property
    def is_real(self) -> bool:
        """A Real-ESRGAN model: LR made by the degradation on the device, with the top-level keys."""
        return self.model_type in ("RealESRNetModel", "RealESRGANModel")

    def datasets_of(self, phase: str) -> dict[str, DatasetOptions]:
        """The datasets of one phase (``"val"`` -> ``val``, ``val_1``, ...), by their key."""
        return {k: d for k, d in self.datasets.items() if d.phase == phase}


# ----------------------------------------------------------------------------------------------
# YAML reading and overrides
# ----------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-4 as a float (YAML 1.2) and refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)(?:\.[\d_]*)?[eE][-+]?\d+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, name: str = "<string>") -> Any:
    """Parse YAML text with the option loader; syntax errors become an OptionsError naming ``name`` and the line."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = "; ".join(p for p in (exc.context, exc.problem) if p)
        raise OptionsError(f"invalid YAML{where}: {what}", file=name) from None
    except yaml.YAMLError as exc:
        raise OptionsError(f"invalid YAML: {exc}", file=name) from None
    finally:
        loader.dispose()


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.optim_g.lr=1e-4"`` -> (["train", "optim_g", "lr"], 1e-4); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise OptionsError(f"override {text!r}: expected KEY.PATH=VALUE, e.g. train.optim_g.lr=1e-4", file="--set")
    try:
        value = parse_yaml(raw.strip()) if raw.strip() else None
    except OptionsError as exc:
        raise OptionsError(f"override {text!r}: value is not valid YAML ({exc.reason})", file="--set") from None
    return [p.strip() for p in parts], value


def apply_override(raw: dict[str, Any], text: str) -> None:
    """Set one ``a.b.c=value`` in the raw option dict, creating missing sections (validated later)."""
    parts, value = parse_override(text)
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise OptionsError(f"override {text!r}: {where} is {_show(child)}, not a section", file="--set")
        node = child
    node[parts[-1]] = value


# ----------------------------------------------------------------------------------------------
# BasicSR compatibility and resolution
# ----------------------------------------------------------------------------------------------


def _rename(section: dict[str, Any], old: str, new: str, where: str) -> None:
    if old not in section:
        return
    if new in section:
        raise OptionsError(
            f"both {old!r} (BasicSR's old name) and {new!r} are given; keep {new!r}", key=_join(where, old)
        )
    logger.info("options: %s: BasicSR's old key %r read as %r", where, old, new)
    section[new] = section.pop(old)


def upgrade_basicsr(raw: dict[str, Any]) -> None:
    """Rename the legacy keys older BasicSR versions used, in place (logged)."""
    datasets = raw.get("datasets")
    if isinstance(datasets, dict):
        for phase, ds in datasets.items():
            if isinstance(ds, dict):
                _rename(ds, "use_flip", "use_hflip", f"datasets.{phase}")
    path = raw.get("path")
    if isinstance(path, dict):
        _rename(path, "pretrain_model_g", "pretrain_network_g", "path")
        _rename(path, "pretrain_model_d", "pretrain_network_d", "path")
        _rename(path, "strict_load", "strict_load_g", "path")
    net_d = raw.get("network_d")
    if isinstance(net_d, dict) and net_d.get("type") == "VGGStyleDiscriminator128":
        # BasicSR < 1.3 had a separate class for the 128-pixel VGG discriminator.
        net_d["type"] = "VGGStyleDiscriminator"
        net_d.setdefault("input_size", 128)
        logger.info("options: network_d: VGGStyleDiscriminator128 read as VGGStyleDiscriminator(input_size=128)")


def _resolve(opt: Options, *, is_train: bool, debug: bool) -> None:
    opt.is_train = is_train
    from esrgan.utils.folders import check_experiment_name

    try:  # it becomes experiments/<name>: one folder name, never '' (= experiments/ itself) or '../x'
        check_experiment_name(opt.name)
    except ValueError as exc:
        raise OptionsError(str(exc), key="name") from None
    if debug and not opt.name.startswith("debug"):
        opt.name = "debug_" + opt.name
    if opt.num_gpu == "auto":
        import torch

        opt.num_gpu = torch.cuda.device_count()
    if opt.num_gpu < 0:
        raise OptionsError(f"must be >= 0 (0 = CPU) or auto, got {opt.num_gpu}", key="num_gpu")
    if opt.manual_seed is None:
        opt.manual_seed = random.randint(1, 10000)
        logger.info("options: no manual_seed given; using %d", opt.manual_seed)
    if opt.scale < 1:
        raise OptionsError(f"must be >= 1, got {opt.scale}", key="scale")

    for ds in opt.datasets.values():
        for root in ("dataroot_gt", "dataroot_lq", "meta_info_file", "meta_info"):
            if getattr(ds, root, None) is not None:
                setattr(ds, root, os.path.expanduser(getattr(ds, root)))

    gan = opt.train.gan_opt if opt.train is not None else None
    if gan is not None:
        gan_type = gan.kwargs.get("gan_type")
        if gan.relativistic is None:
            # BasicSR's ESRGANModel always trains the relativistic average GAN, whatever gan_type says;
            # its RealESRGANModel follows gan_type.
            gan.relativistic = gan_type == "ragan" or opt.model_type == "ESRGANModel"
        elif gan_type == "ragan" and not gan.relativistic:
            raise OptionsError(
                "gan_type ragan is the relativistic GAN; relativistic: false contradicts it",
                key="train.gan_opt.relativistic",
            )

    if opt.val is not None:
        for metric in opt.val.metrics.values():
            if metric.crop_border is None:
                metric.crop_border = opt.scale

    if opt.network_g is None:
        raise OptionsError("required section is missing (type and arguments of the generator)", key="network_g")
    for arg in ("scale", "upscale"):
        if opt.network_g.kwargs.get(arg, opt.scale) != opt.scale:
            raise OptionsError(
                f"{opt.network_g.kwargs[arg]} differs from the top-level scale {opt.scale}", key=f"network_g.{arg}"
            )

    p = opt.path
    for key in ("pretrain_network_g", "pretrain_network_d", "resume_state"):
        if getattr(p, key) is not None:
            setattr(p, key, os.path.expanduser(getattr(p, key)))
    if is_train:
        root = p.experiments_root or os.path.join("experiments", opt.name)
        p.experiments_root = root
        p.models = p.models or os.path.join(root, "models")
        p.training_states = p.training_states or os.path.join(root, "training_states")
        p.log = p.log or root
        p.visualization = p.visualization or os.path.join(root, "visualization")
        if opt.name.startswith("debug"):
            if opt.val is not None:
                opt.val.val_freq = 8
            opt.logger.print_freq = 1
            opt.logger.save_checkpoint_freq = 8
        _check_training(opt)
        _check_realesrgan(opt)
    else:
        root = p.results_root or os.path.join("results", opt.name)
        p.results_root = root
        p.log = p.log or root
        p.visualization = p.visualization or os.path.join(root, "visualization")

    if opt.logger.wandb and opt.logger.wandb.get("project"):
        logger.warning(
            "options: logger.wandb.project is set but Weights & Biases logging is not supported; ignored "
            "(TensorBoard logs are in %s)",
            os.path.join(p.experiments_root or p.log or ".", "tb_logger"),
        )


def _prefill_datasets(raw: dict[str, Any]) -> None:
    """Each dataset's phase (from its key: ``val_1`` -> ``val``) and scale (the top-level one), as BasicSR.

    Done before the datasets are built because their checks depend on both.
    """
    datasets = raw.get("datasets")
    if not isinstance(datasets, dict):
        return
    scale = raw.get("scale", 4)
    for key, ds in datasets.items():
        phase = str(key).split("_")[0]
        if phase not in ("train", "val", "test"):
            close = difflib.get_close_matches(phase, ["train", "val", "test"], n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise OptionsError(
                f"unknown dataset phase; {hint}dataset keys are train, val, val_<N>, test or test_<N> "
                "(the part before '_' is the phase)",
                key=f"datasets.{key}",
            )
        if not isinstance(ds, dict):
            continue  # reported by the dataset parser
        for name, value in (("phase", phase), ("scale", scale)):
            if name in ds and ds[name] != value:
                raise OptionsError(
                    f"{ds[name]!r} contradicts {value!r} (set from the dataset key / top-level scale)",
                    key=f"datasets.{key}.{name}",
                )
            if name == "phase" or (isinstance(value, int) and not isinstance(value, bool)):
                ds[name] = value


def _prefill_network_scale(raw: dict[str, Any]) -> None:
    """Give the generator the top-level scale when it takes one and the file does not say it.

    BasicSR builds an x4 RRDBNet for an x2 option file that forgets ``network_g.scale``; we do not.
    A contradicting explicit value is refused in :func:`_resolve`.
    """
    net_g = raw.get("network_g")
    if not isinstance(net_g, dict):
        return
    cls = _generators().get(net_g.get("type"))  # an unknown type is reported by the section parser
    if cls is None:
        return
    params = inspect.signature(cls.__init__).parameters
    for arg in ("scale", "upscale"):
        if arg in params and arg not in net_g:
            net_g[arg] = raw.get("scale", 4)


def _check_training(opt: Options) -> None:
    t = opt.train
    if t is None:
        raise OptionsError("required section is missing for training (optim_g, total_iter, losses...)", key="train")
    if not any(d.phase == "train" for d in opt.datasets.values()):
        raise OptionsError("a training dataset is required (datasets.train)", key="datasets")
    if t.optim_g is None:
        raise OptionsError("required for training (type, lr, ...)", key="train.optim_g")
    if t.total_iter < 1:
        raise OptionsError(
            f"required for training: the number of iterations (>= 1), got {t.total_iter}", key="train.total_iter"
        )
    if t.scheduler is not None and t.scheduler.periods is not None and sum(t.scheduler.periods) < t.total_iter:
        raise OptionsError(
            f"the periods cover {sum(t.scheduler.periods)} iterations, fewer than total_iter {t.total_iter}",
            key="train.scheduler.periods",
        )
    if t.pixel_opt is None and t.perceptual_opt is None and t.gan_opt is None:
        raise OptionsError("no loss given: set pixel_opt, perceptual_opt and/or gan_opt", key="train")
    if opt.is_gan:
        for key, value in (("network_d", opt.network_d), ("train.optim_d", t.optim_d), ("train.gan_opt", t.gan_opt)):
            if value is None:
                raise OptionsError(f"required for model_type {opt.model_type}", key=key)
    if not opt.is_gan:
        unused = [
            k
            for k, v in (("network_d", opt.network_d), ("train.optim_d", t.optim_d), ("train.gan_opt", t.gan_opt))
            if v is not None
        ]
        if unused:
            logger.warning(
                "options: model_type %s trains no discriminator: %s ignored (use ESRGANModel for a GAN)",
                opt.model_type,
                ", ".join(unused),
            )





def _check_realesrgan(opt: Options) -> None:
    """Real-ESRGAN's degradation keys against each other and the training set, before anything starts."""
    train = opt.datasets_of("train")
    for phase, ds in train.items():
        if ds.type == "RealESRGANDataset" and not opt.is_real:
            raise OptionsError(
                f"type RealESRGANDataset gives HR crops and blur kernels, which model_type {opt.model_type} cannot "
                "train on; use model_type RealESRNetModel or RealESRGANModel (or a paired dataset type)",
                key=f"datasets.{phase}.type",
            )
        real = RealESRGANOptions.from_options(opt)
        if opt.is_real and real.high_order_degradation and ds.type != "RealESRGANDataset":
            raise OptionsError(
                f"model_type {opt.model_type} degrades HR crops of type RealESRGANDataset, got {ds.type}; set "
                "high_order_degradation: false to train on the dataset's LR/HR pairs instead",
                key=f"datasets.{phase}.type",
            )
    if not opt.is_real:
        given = sorted(k for k in REAL_KEYS if getattr(opt, k) is not None)
        if given:
            logger.warning("options: model_type %s makes no degraded LR: %s ignored (RealESRNetModel and "
                           "RealESRGANModel use them)", opt.model_type, ", ".join(given))
        return
    ds = next(iter(train.values()), None)
    try:
        RealESRGANOptions.from_options(opt).check(
            scale=opt.scale,
            batch_size=getattr(ds, "batch_size_per_gpu", None),
            crop_pad_size=getattr(ds, "crop_pad_size", None),
            blur_kernel_size2=getattr(ds, "blur_kernel_size2", None),
        )
    except ValueError as exc:
        key, _, reason = str(exc).partition(": ")
        raise OptionsError(reason, key=key) from None


def load_options(
    path: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    is_train: bool = True,
    debug: bool = False,
) -> Options:
    """Read, override, validate and resolve an option file.

    ``overrides``: ``"a.b.c=value"`` strings (``--set``), value parsed as YAML, applied in order.
    ``debug``: BasicSR's ``--debug``: prefix the name with ``debug_`` and validate / log / save every
    few iterations (which any name starting with ``debug`` also does).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OptionsError("option file not found", file=path) from None
    except OSError as exc:
        raise OptionsError(f"cannot read option file ({exc})", file=path) from None
    raw = parse_yaml(text, str(path))
    return options_from_dict(raw, overrides, is_train=is_train, debug=debug, source=path)


def options_from_dict(
    raw: Any,
    overrides: Sequence[str] = (),
    *,
    is_train: bool = True,
    debug: bool = False,
    source: str | os.PathLike[str] = "<dict>",
) -> Options:
    """:func:`load_options` for an already parsed mapping (``source`` names it in errors)."""
    if not isinstance(raw, Mapping):
        raise OptionsError(f"expected a mapping of option sections at the top level, got {_show(raw)}", file=source)
    raw = _deep_copy(raw)
    try:
        # Old BasicSR names are upgraded before the overrides, so that --set can use the new names.
        upgrade_basicsr(raw)
    except OptionsError as err:
        raise err.with_file(source) from None
    override_keys: list[tuple[str, str]] = []
    for text in overrides:
        apply_override(raw, text)
        override_keys.append((".".join(parse_override(text)[0]), text))
    try:
        upgrade_basicsr(raw)
        _prefill_datasets(raw)
        _prefill_network_scale(raw)
        opt = from_mapping(Options, raw, "")
        _resolve(opt, is_train=is_train, debug=debug)
    except OptionsError as err:
        for key, text in override_keys:
            if err.key and (err.key == key or err.key.startswith(key + ".") or key.startswith(err.key + ".")):
                raise OptionsError(f"{err.reason} (from --set {text})", key=err.key, file=source) from None
        raise err.with_file(source) from None
    return opt


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def save_options(opt: Options, path: str | os.PathLike[str]) -> Path:
    """Write the resolved options as YAML, atomically (the experiment's record of what ran)."""
    from esrgan.utils.atomic import atomic_write_text

    atomic_write_text(path, opt.to_yaml())
    return Path(path)


__all__ = [
    "METRIC_TYPES",
    "MODEL_TYPES",
    "OPTIMIZER_TYPES",
    "SCHEDULER_TYPES",
    "DistParams",
    "GANOptions",
    "LoggerOptions",
    "LossOptions",
    "MetricOptions",
    "NetworkOptions",
    "OptimizerOptions",
    "Options",
    "OptionsError",
    "PathOptions",
    "SchedulerOptions",
    "TrainOptions",
    "ValOptions",
    "apply_override",
    "check_kwargs",
    "convert",
    "from_mapping",
    "load_options",
    "options_from_dict",
    "parse_override",
    "parse_yaml",
    "save_options",
    "to_plain",
]
