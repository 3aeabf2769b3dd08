"""The sections of a training option file as typed dataclasses (BasicSR's key names).

What the loader resolves (dataset phases and scale, the generator's scale, a metric's ``crop_border``,
the experiment's folders, ``num_gpu: auto``, a missing ``manual_seed``, ``gan_opt.relativistic``) is
filled in before these classes are built (``esrgan.options.basicsr``), so their fields hold values,
not ``None`` for "the loader decides". Adding a section: a dataclass here and a field of
:class:`Options`; the converter does the rest (types from the annotations, ``check(path)`` for
ranges). Network, loss and optimizer sections are checked against their name -> class tables.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args, get_type_hints

from esrgan.options.convert import check_kwargs, convert, from_mapping, to_plain
from esrgan.options.datasets import DatasetOptions, dataset_options_class
from esrgan.options.errors import OptionsError, _join, _show
from esrgan.options.realesrgan import RealESRGANOptions

if TYPE_CHECKING:
    from esrgan.metrics.selection import Criterion

logger = logging.getLogger("esrgan.options")

# The model types (``esrgan.training.build.MODELS`` builds them) and the schedules (``esrgan.training.schedulers``).
ModelType = Literal["SRModel", "ESRGANModel", "RealESRNetModel", "RealESRGANModel"]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)
GAN_MODEL_TYPES = ("ESRGANModel", "RealESRGANModel")
REAL_MODEL_TYPES = ("RealESRNetModel", "RealESRGANModel")
SchedulerType = Literal["MultiStepLR", "CosineAnnealingRestartLR"]
SCHEDULER_TYPES: tuple[str, ...] = get_args(SchedulerType)

# Optimizers by name: "module.Class", imported when a file names it (an optimizer from another package is
# one entry here; its arguments are checked against the class's signature like a network's).
OPTIMIZERS: dict[str, str] = {
    "Adam": "torch.optim.Adam",
    "AdamW": "torch.optim.AdamW",
    "Adamax": "torch.optim.Adamax",
    "SGD": "torch.optim.SGD",
    "ASGD": "torch.optim.ASGD",
    "RMSprop": "torch.optim.RMSprop",
    "Rprop": "torch.optim.Rprop",
    "Adan": "esrgan.optim.Adan",
    # schedule-free AdamW: trains at one point, validates and publishes the average (esrgan.optim.schedule_free)
    "AdamWScheduleFree": "schedulefree.AdamWScheduleFree",
}
OPTIMIZER_TYPES = tuple(OPTIMIZERS)


SCHEDULE_FREE_OPTIMIZERS = ("AdamWScheduleFree",)


def optimizer_class(name: str) -> type:
    """The optimizer class of ``OPTIMIZERS[name]``; a missing package is one line with what to install."""
    module, _, attr = OPTIMIZERS[name].rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        package = module.split(".")[0]
        raise OptionsError(f"optimizer {name} needs the package {package!r}: pip install {package} "
                           f"(or pip install 'esrgan[optim]') ({exc})") from None


@dataclass
class ComponentOptions:
    """A component chosen by name plus its constructor arguments (``network_g``, ``pixel_opt``, ``optim_g``, ...).

    The arguments are checked against the class's signature at load, and the resolved options state
    every argument in force (the class's defaults filled in).
    """

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        """``{"type": ..., **kwargs}`` for ``esrgan.archs.build_network`` / ``esrgan.losses.build_loss``."""
        return {"type": self.type, **self.kwargs}

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self.spec())


class NetworkOptions(ComponentOptions):
    """``network_g`` / ``network_d``: an architecture name and its constructor arguments."""

    def check(self, path: str) -> None:
        from esrgan.archs import SPANDREL_GENERATORS

        if self.type in SPANDREL_GENERATORS:
            from esrgan.archs.spandrel_archs import code_arguments, spandrel_class

            # Arguments whose default is Python code (norm_layer=nn.LayerNorm) keep it: a YAML value cannot be one.
            for name, default in code_arguments(spandrel_class(self.type)).items():
                if name in self.kwargs and self.kwargs[name] is not default:
                    raise OptionsError(
                        f"{self.type} takes Python code here (default {getattr(default, '__name__', default)}), "
                        "which an option file cannot give; remove the key",
                        key=_join(path, name),
                    )
                self.kwargs.pop(name, None)


class LossOptions(ComponentOptions):
    """``pixel_opt`` / ``perceptual_opt``: a loss name and its constructor arguments.

    Weights (``loss_weight``, ``perceptual_weight``, ``style_weight``, ``layer_weights``) must be >= 0:
    a negative weight would maximise the loss.
    """

    def check(self, path: str) -> None:
        for name, value in self.kwargs.items():
            if name.endswith("weights") and isinstance(value, Mapping):
                items = [(_join(_join(path, name), str(k)), v) for k, v in value.items()]
            elif name.endswith("weight"):
                items = [(_join(path, name), value)]
            else:
                continue
            for key, v in items:
                if isinstance(v, int | float) and not isinstance(v, bool) and v < 0:
                    raise OptionsError(f"must be >= 0 (0 = off), got {v}", key=key)

    def weights(self) -> dict[str, float]:
        """The loss's weights by argument name (``loss_weight``, ``perceptual_weight``, ``style_weight``)."""
        return {k: float(v) for k, v in self.kwargs.items()
                if k.endswith("_weight") and isinstance(v, int | float) and not isinstance(v, bool)}

    @property
    def active(self) -> bool:
        """Some weight of it is > 0: the loss moves the generator."""
        return any(w > 0 for w in self.weights().values())


@dataclass
class GANOptions(LossOptions):
    """``gan_opt``: the GANLoss arguments plus how the trainer applies it.

    ``relativistic``: relativistic average GAN (ESRGAN). Resolved at load: true for
    ``gan_type: ragan`` and, as in BasicSR, for ``model_type: ESRGANModel`` unless set to false.
    ``gp_weight``: weight of the WGAN-GP gradient penalty in the discriminator loss (0 = off).
    """

    relativistic: bool = field(kw_only=True)
    gp_weight: float = field(default=0.0, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return to_plain({**self.spec(), "relativistic": self.relativistic, "gp_weight": self.gp_weight})

    def weights(self) -> dict[str, float]:
        return {k: v for k, v in super().weights().items() if k == "loss_weight"}  # gp_weight is D's

    def check(self, path: str) -> None:
        super().check(path)
        if self.gp_weight < 0:
            raise OptionsError(f"must be >= 0 (0 = off), got {self.gp_weight}", key=_join(path, "gp_weight"))
        if self.kwargs.get("gan_type") == "ragan" and not self.relativistic:
            raise OptionsError("gan_type ragan is the relativistic GAN; relativistic: false contradicts it",
                               key=_join(path, "relativistic"))


@dataclass
class ArtifactOptions(LossOptions):
    """``artifacts_opt``: LDL's artifact loss, a pixel loss (usually L1) between ``map * output`` and ``map * gt``
    (``esrgan.losses.ldl``), plus how the map is made.

    ``ksize``: the local-variance window (odd, >= 3; 7 as published). ``map_gradient``: false (default) uses the
    map as a weight, as the paper describes it; true lets the gradient flow through the map as well, as the
    LDL release's code does (that gradient flattens the residual rather than shrinking it, and reaches the
    pixels the map leaves out through its per-image term).
    """

    ksize: int = field(default=7, kw_only=True)
    map_gradient: bool = field(default=False, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        return to_plain({**self.spec(), "ksize": self.ksize, "map_gradient": self.map_gradient})

    def check(self, path: str) -> None:
        super().check(path)
        if self.ksize < 3 or self.ksize % 2 == 0:
            raise OptionsError(f"must be odd and >= 3, got {self.ksize}", key=_join(path, "ksize"))


class OptimizerOptions(ComponentOptions):
    """``optim_g`` / ``optim_d``: an optimizer of :data:`OPTIMIZERS` and its arguments (unset ones: the class's).

    ``esrgan.training.models.build_optimizer`` builds it.
    """

    def check(self, path: str) -> None:
        lr = self.kwargs.get("lr")
        if isinstance(lr, int | float) and lr <= 0:
            raise OptionsError(f"must be > 0, got {float(lr)}", key=_join(path, "lr"))
        if self.kwargs.get("weight_decay", 0) < 0:
            raise OptionsError(f"must be >= 0, got {self.kwargs['weight_decay']}", key=_join(path, "weight_decay"))
        betas = self.kwargs.get("betas")
        if betas is not None and not all(0 <= b < 1 for b in betas):
            raise OptionsError(f"each beta must be in [0, 1), got {list(betas)}", key=_join(path, "betas"))
        for key in ("eps", "warmup_steps", "momentum"):
            value = self.kwargs.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise OptionsError(f"must be >= 0, got {value}", key=_join(path, key))


def _parse_section(
    table_name: str, tables: Callable[[], Mapping[str, Any]], kind: str, cls: type = LossOptions
) -> Callable[[Any, str], Any]:
    """A ``parse`` hook for a ``{type: Name, **kwargs}`` section checked against a name -> class table.

    Keys that are fields of ``cls`` itself (e.g. ``relativistic`` of :class:`GANOptions`) are its
    own; all others are the constructor arguments of ``table[type]`` (a class, or a function of the
    name that returns it).
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
        if not isinstance(name, str) or name not in table:
            close = difflib.get_close_matches(str(name), list(table), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise OptionsError(
                f"unknown {kind} type {_show(name)}{hint}; allowed {table_name}: {', '.join(table)}",
                key=_join(path, "type"),
            )
        try:
            target = table[name]
        except ImportError as exc:  # a spandrel network without spandrel: the message names the pip command
            raise OptionsError(str(exc), key=_join(path, "type")) from None
        if not isinstance(target, type):
            try:
                target = target(name)
            except OptionsError as err:
                raise OptionsError(err.reason, key=_join(path, "type")) from None
        hints = get_type_hints(cls)
        own = {f.name for f in dataclasses.fields(cls)} - {"type", "kwargs"}
        rest = {k: v for k, v in value.items() if k != "type" and k not in own}
        values = {k: convert(value[k], hints[k], _join(path, k)) for k in own if k in value}
        obj = cls(type=name, kwargs=check_kwargs(target, rest, path, skip=("params",)), **values)
        check = getattr(obj, "check", None)
        if callable(check):
            check(path)
        return obj

    return parse


def _generators() -> Mapping[str, type]:
    from esrgan.archs import generator_classes

    return generator_classes()


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


def _optimizers() -> Mapping[str, Callable[[str], type]]:
    return dict.fromkeys(OPTIMIZERS, optimizer_class)


parse_generator = _parse_section("generators", _generators, "network", NetworkOptions)


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
        out[str(phase_key)] = dataset_options_class(ds.get("type")).from_dict(ds, key)
    return out


def _at_least(section: Any, path: str, *bounds: tuple[str, float]) -> None:
    for key, low in bounds:
        if getattr(section, key) < low:
            raise OptionsError(f"must be >= {low}, got {getattr(section, key)}", key=_join(path, key))


@dataclass(kw_only=True)
class PathOptions:
    """``path``: pretrained weights, resume state and the experiment's folders.

    The folders follow from ``name`` (``experiments/<name>``) or from a given ``experiments_root``;
    the loader fills them in, and the trainer uses them as they are.
    """

    pretrain_network_g: str | None = None
    param_key_g: str = "params"
    strict_load_g: bool = True
    pretrain_network_d: str | None = None
    param_key_d: str = "params"
    strict_load_d: bool = True
    resume_state: str | None = None
    experiments_root: str
    models: str
    training_states: str
    log: str
    visualization: str


@dataclass
class SchedulerOptions:
    """``scheduler``: ``MultiStepLR`` (``milestones``, ``gamma``) or ``CosineAnnealingRestartLR``
    (``periods``, ``restart_weights`` (default all 1), ``eta_min``), stepped once per iteration."""

    type: SchedulerType
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.5
    periods: list[int] = field(default_factory=list)
    restart_weights: list[float] = field(default_factory=list)
    eta_min: float = 0.0

    def check(self, path: str) -> None:
        if self.type == "MultiStepLR":
            if not self.milestones:
                reason = "required for MultiStepLR (iterations where lr *= gamma)"
                raise OptionsError(reason, key=_join(path, "milestones"))
            if self.milestones != sorted(self.milestones):
                raise OptionsError(f"must be increasing, got {self.milestones}", key=_join(path, "milestones"))
            if self.gamma <= 0:
                raise OptionsError(f"must be > 0, got {self.gamma}", key=_join(path, "gamma"))
            for key in ("periods", "restart_weights"):
                if getattr(self, key):
                    raise OptionsError("only for CosineAnnealingRestartLR", key=_join(path, key))
        else:
            if not self.periods or any(p <= 0 for p in self.periods):
                raise OptionsError(
                    f"required for CosineAnnealingRestartLR: a list of positive period lengths, got {self.periods}",
                    key=_join(path, "periods"),
                )
            if not self.restart_weights:
                self.restart_weights = [1.0] * len(self.periods)
            if len(self.restart_weights) != len(self.periods):
                raise OptionsError(
                    f"needs one weight per period ({len(self.periods)}), got {len(self.restart_weights)}",
                    key=_join(path, "restart_weights"),
                )
            if self.milestones:
                raise OptionsError("only for MultiStepLR", key=_join(path, "milestones"))
            if self.eta_min < 0:
                raise OptionsError(f"must be >= 0, got {self.eta_min}", key=_join(path, "eta_min"))


_parse_optimizer = _parse_section("optimizers", _optimizers, "optimizer", OptimizerOptions)
_parse_pixel_loss = _parse_section("pixel losses", _pixel_losses, "pixel loss")


def _parse_loss_list(value: Any, path: str) -> list[LossOptions]:
    """``train.losses``: pixel losses added beside ``pixel_opt`` (the other kinds were moved to their sections at
    load, ``esrgan.options.loss_list``)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise OptionsError(f"expected a list of losses ({{type: name, loss_weight: w, ...}}), got {_show(value)}",
                           key=path)
    return [_parse_pixel_loss(entry, f"{path}[{i}]") for i, entry in enumerate(value)]


@dataclass(kw_only=True)
class TrainOptions:
    """``train``: optimisation and losses. The last group of fields is ours (not in BasicSR)."""

    ema_decay: float = 0.0  # 0 = no EMA of the generator
    optim_g: OptimizerOptions = field(metadata={"parse": _parse_optimizer,
                                                "missing": "required for training (type, lr, ...)"})
    optim_d: OptimizerOptions | None = field(default=None, metadata={"parse": _parse_optimizer})
    scheduler: SchedulerOptions | None = None
    total_iter: int = field(metadata={"missing": "required for training: the number of iterations (>= 1)"})
    warmup_iter: int = -1  # linear learning-rate warm-up iterations (-1 = none), as BasicSR
    pixel_opt: LossOptions | None = field(default=None, metadata={"parse": _parse_pixel_loss})
    # traiNNer-redux's list: pixel losses added beside pixel_opt (esrgan.options.loss_list sorts the others out)
    losses: list[LossOptions] = field(default_factory=list, metadata={"parse": _parse_loss_list})
    # LDL's artifact loss (the LDL release's key; BasicSR's ldl_opt is read as it): a pixel loss between
    # map * output and map * gt, the map from the output's and the EMA generator's residuals (GAN stage, EMA on)
    artifacts_opt: ArtifactOptions | None = field(
        default=None, metadata={"parse": _parse_section("pixel losses", _pixel_losses, "pixel loss", ArtifactOptions)}
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
    # Precision (esrgan.training.precision): auto = autocast in the dtype the device computes fastest (bf16 on CPUs
    # with native bf16, fp16 + grad scaler on GPUs), fp32 where there is none; false = fp32; true = autocast in
    # amp_dtype (auto: the device's dtype, bf16 on a CPU without native bf16). channels_last auto: on with autocast.
    use_amp: bool | Literal["auto"] = "auto"
    amp_dtype: Literal["auto", "bf16", "fp16"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    grad_clip: float = 0.0  # max gradient norm for G and D, 0 = off
    compile_g: bool = False
    # Deterministic GPU kernels (torch.use_deterministic_algorithms, no cudnn.benchmark, a fixed cuBLAS
    # workspace): exact resume on a GPU, at some speed. Without it cuDNN picks its fastest kernels per shape.
    deterministic: bool = False
    # Batches whose gradients are summed into one optimizer step: the step sees batch_size_per_gpu x
    # accumulate_grad_batches images per process with the memory of one batch. Iterations (total_iter,
    # schedules, val_freq, checkpoints) count optimizer steps.
    accumulate_grad_batches: int = 1
    # Training stops after this many minutes of wall time (the loop's, validation and checkpoints included,
    # summed over resumes), validating and saving there; total_iter still caps it. 0 = no budget.
    time_budget_minutes: float = 0.0

    def check(self, path: str) -> None:
        if not 0 <= self.ema_decay < 1:
            raise OptionsError(f"must be in [0, 1) (0 = off), got {self.ema_decay}", key=_join(path, "ema_decay"))
        if self.total_iter < 1:
            raise OptionsError(f"required for training: the number of iterations (>= 1), got {self.total_iter}",
                               key=_join(path, "total_iter"))
        _at_least(self, path, ("net_d_iters", 1), ("net_d_init_iters", 0), ("g_warmup_iter", 0), ("grad_clip", 0),
                  ("accumulate_grad_batches", 1), ("time_budget_minutes", 0))
        s = self.scheduler
        for key, o in (("optim_g", self.optim_g), ("optim_d", self.optim_d)):
            if s is not None and o is not None and o.type in SCHEDULE_FREE_OPTIMIZERS:
                logger.info("options: %s.%s is %s, which needs no schedule; train.scheduler still scales its lr",
                            path, key, o.type)
        if s is not None and s.periods and sum(s.periods) < self.total_iter:
            raise OptionsError(
                f"the periods cover {sum(s.periods)} iterations, fewer than total_iter {self.total_iter}",
                key=_join(path, "scheduler.periods"),
            )


@dataclass(kw_only=True)
class MetricOptions:
    """One metric of ``val.metrics`` (training and test files): a name of ``esrgan.metrics.METRIC_TABLE``.

    BasicSR's ``calculate_*`` names are read as ours (``calculate_psnr`` -> ``psnr``). A new metric is
    added to that table only; the options accept every name in it. ``crop_border`` is filled in at
    load (the top-level scale, the SR literature's convention) when the file does not give it.
    """

    type: str
    crop_border: int
    test_y_channel: bool = True  # the literature scores the Y channel; BasicSR's default is false
    better: Literal["higher", "lower"] | None = None  # None: the metric's own (psnr/ssim higher, niqe/lpips lower)
    net: Literal["alex", "vgg"] = "alex"  # LPIPS backbone

    def check(self, path: str) -> None:
        from esrgan.metrics import METRIC_TABLE, metric_info

        try:
            self.type = metric_info(self.type).name
        except ValueError:
            known = sorted({m.name for m in METRIC_TABLE.values()})
            close = difflib.get_close_matches(str(self.type), known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise OptionsError(
                f"{_show(self.type)} is not allowed{hint}; allowed values: {', '.join(known)}", key=_join(path, "type")
            ) from None
        if self.crop_border < 0:
            raise OptionsError(f"must be >= 0, got {self.crop_border}", key=_join(path, "crop_border"))


def _parse_metrics(value: Any, path: str) -> dict[str, MetricOptions]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise OptionsError(
            f"expected a mapping of metric name -> {{type, crop_border, test_y_channel}}, got {_show(value)}", key=path
        )
    return {str(name): from_mapping(MetricOptions, spec, _join(path, str(name))) for name, spec in value.items()}


@dataclass
class ValOptions:
    """``val``: validation every ``val_freq`` iterations with the given metrics."""

    val_freq: int = 5000  # 0: no periodic validation
    save_img: bool = False
    suffix: str | None = None  # BasicSR's test-mode file-name suffix: refused when set (see check)
    pbar: bool = False  # a progress bar over the validation images (on a terminal)
    metrics: dict[str, MetricOptions] = field(default_factory=dict, metadata={"parse": _parse_metrics})
    # ours: validate large images in tiles of this many LR pixels through the Upscaler (0: whole images)
    tile: int = 0
    tile_pad: int | None = None  # context around each tile (None: the Upscaler's default for the precision)
    # ours: the checkpoint to keep, chosen on the first validation set by a declared criterion
    # (esrgan.metrics.selection), e.g. "lowest lpips with psnr_y no more than 0.5 dB below the PSNR model"
    select: str | None = None

    def check(self, path: str) -> None:
        _at_least(self, path, ("val_freq", 0), ("tile", 0))
        try:
            self.criterion()
        except ValueError as exc:
            raise OptionsError(str(exc), key=_join(path, "select")) from None
        if self.tile_pad is not None:
            _at_least(self, path, ("tile_pad", 0))
            if self.tile == 0:
                raise OptionsError("only for tiled validation: set val.tile (N-pixel tiles) too, or remove it",
                                   key=_join(path, "tile_pad"))
        if self.suffix is not None:
            raise OptionsError(
                "not supported: validation images are saved as <image>_<iteration>.png (esrgan test option "
                "files do not take it either); remove val.suffix",
                key=_join(path, "suffix"),
            )


    def criterion(self) -> Criterion | None:
        """``select`` read, its metric names those of ``metrics`` (or, where one metric has it, its result column
        ``psnr_y`` or its type ``lpips``); None without one. A ValueError says what does not read."""
        if self.select is None:
            return None
        from esrgan.metrics.selection import parse_criterion

        seen: dict[str, list[str]] = {}
        for name, m in self.metrics.items():
            for alias in (m.type, f"{m.type}_{'y' if m.test_y_channel else 'rgb'}"):
                seen.setdefault(alias, []).append(name)
        aliases = {a: names[0] for a, names in seen.items() if len(names) == 1 and a not in self.metrics}
        return parse_criterion(self.select).check_metrics(list(self.metrics), aliases)


@dataclass
class WandbOptions:
    """``logger.wandb``: Weights & Biases logging when ``project`` is set (needs the wandb package)."""

    project: str | None = None  # None: no W&B logging
    resume_id: str | None = None  # continue this W&B run
    entity: str | None = None  # ours: the W&B team or user (default: wandb's)


@dataclass
class LoggerOptions:
    """``logger``: console/file log, checkpoints, TensorBoard and Weights & Biases."""

    print_freq: int = 100
    save_checkpoint_freq: int = 5000  # 0: checkpoints only at the end (and on interruption)
    use_tb_logger: bool = True
    keep_last: int = 0  # keep only the last K periodic checkpoints (0 = keep all); ours
    wandb: WandbOptions = field(default_factory=WandbOptions)

    def check(self, path: str) -> None:
        _at_least(self, path, ("print_freq", 1), ("save_checkpoint_freq", 0), ("keep_last", 0))


@dataclass
class DistParams:
    """``dist_params``: the process-group backend, and the master port for ``--launcher slurm``."""

    backend: str = "nccl"
    port: int = 29500


def _parse_num_gpu(value: Any, path: str) -> int:
    """``num_gpu``: 0 = CPU; ``auto`` = the GPUs this process trains on (a launcher starts one process per GPU)."""
    if value == "auto":
        import torch

        return 1 if torch.cuda.is_available() else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OptionsError(f"expected an integer >= 0 (0 = CPU) or auto, got {_show(value)}", key=path)
    return convert(value, int, path)  # the integer range every option has


def _draw_seed() -> int:
    seed = random.randint(1, 10000)  # BasicSR's range
    logger.info("options: no manual_seed given; using %d", seed)
    return seed


def _parse_seed(value: Any, path: str) -> int:
    return _draw_seed() if value is None else convert(value, int, path)


@dataclass(kw_only=True)
class Options:
    """A whole training option file, validated and resolved. ``to_dict()`` is what the trainer saves."""

    name: str
    model_type: ModelType = "SRModel"
    scale: int = 4
    num_gpu: int = field(default=1, metadata={"parse": _parse_num_gpu})
    manual_seed: int = field(default_factory=_draw_seed, metadata={"parse": _parse_seed})
    datasets: dict[str, DatasetOptions] = field(default_factory=dict, metadata={"parse": _parse_datasets})
    network_g: NetworkOptions = field(
        metadata={"parse": parse_generator, "missing": "required section is missing (type and arguments of the "
                  "generator)"}
    )
    network_d: NetworkOptions | None = field(
        default=None, metadata={"parse": _parse_section("discriminators", _discriminators, "network", NetworkOptions)}
    )
    path: PathOptions
    train: TrainOptions = field(
        metadata={"missing": "required section is missing for training (optim_g, total_iter, losses...)"}
    )
    val: ValOptions | None = None
    logger: LoggerOptions = field(default_factory=LoggerOptions)
    dist_params: DistParams = field(default_factory=DistParams)
    # Real-ESRGAN's keys sit at the top level of the file (BasicSR's layout); RealESRNetModel and
    # RealESRGANModel use them, with the published recipe's values for those not given.
    real_esrgan: RealESRGANOptions = field(default_factory=RealESRGANOptions, metadata={"inline": True})

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts/lists/scalars in the file's layout; dumped as YAML it loads back to equal options."""
        out = {f.name: to_plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "real_esrgan"}
        if self.is_real:
            out.update(to_plain(self.real_esrgan))
        return out

    @property
    def is_gan(self) -> bool:
        return self.model_type in GAN_MODEL_TYPES

    @property
    def is_real(self) -> bool:
        """A Real-ESRGAN model: LR made by the degradation on the device, with the top-level keys."""
        return self.model_type in REAL_MODEL_TYPES

    def datasets_of(self, phase: str) -> dict[str, DatasetOptions]:
        """The datasets of one phase (``"val"`` -> ``val``, ``val_1``, ...), by their key."""
        return {k: d for k, d in self.datasets.items() if d.phase == phase}
