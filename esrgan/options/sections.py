"""The sections of a training option file as typed dataclasses (BasicSR's key names).

Adding a section: a dataclass here and a field of :class:`Options`; the converter does the rest
(types from the annotations, ``check(path)`` for ranges). Network and loss sections are checked
against the name -> class tables of ``esrgan.archs`` and ``esrgan.losses``.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints

import yaml

from esrgan.options.convert import check_kwargs, convert, from_mapping, to_plain
from esrgan.options.datasets import DatasetOptions, dataset_options_class
from esrgan.options.errors import OptionsError, _join, _show
from esrgan.options.realesrgan import REAL_KEYS

MODEL_TYPES = ("SRModel", "ESRGANModel", "RealESRNetModel", "RealESRGANModel")
GAN_MODEL_TYPES = ("ESRGANModel", "RealESRGANModel")
SCHEDULER_TYPES = ("MultiStepLR", "CosineAnnealingRestartLR")
OPTIMIZER_TYPES = ("Adam", "AdamW", "Adamax", "SGD", "ASGD", "RMSprop", "Rprop")


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
        super().check(path)
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
        try:
            chosen = table[name]
        except ImportError as exc:  # a spandrel network without spandrel: the message names the pip command
            raise OptionsError(str(exc), key=_join(path, "type")) from None
        obj = cls(type=name, kwargs=check_kwargs(chosen, rest, path), **values)
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
    # Batches whose gradients are summed into one optimizer step: the step sees batch_size_per_gpu x
    # accumulate_grad_batches images per process with the memory of one batch. Iterations (total_iter,
    # schedules, val_freq, checkpoints) count optimizer steps.
    accumulate_grad_batches: int = 1

    def check(self, path: str) -> None:
        if not 0 <= self.ema_decay < 1:
            raise OptionsError(f"must be in [0, 1) (0 = off), got {self.ema_decay}", key=_join(path, "ema_decay"))
        _at_least(self, path, ("net_d_iters", 1), ("net_d_init_iters", 0), ("g_warmup_iter", 0), ("grad_clip", 0),
                  ("accumulate_grad_batches", 1))


@dataclass
class MetricOptions:
    """One metric of ``val.metrics`` (training and test files): a name of ``esrgan.metrics.METRIC_TABLE``.

    BasicSR's ``calculate_*`` names are read as ours (``calculate_psnr`` -> ``psnr``). A new metric is
    added to that table only; the options accept every name in it.
    """

    type: str
    crop_border: int | None = None  # None: the top-level scale (the SR literature's convention)
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
        if self.crop_border is not None and self.crop_border < 0:
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

    def check(self, path: str) -> None:
        _at_least(self, path, ("val_freq", 0))
        if self.suffix is not None:
            raise OptionsError(
                "not supported: validation images are saved as <image>_<iteration>.png (esrgan test option "
                "files do not take it either); remove val.suffix",
                key=_join(path, "suffix"),
            )


@dataclass
class WandbOptions:
    """``logger.wandb``: Weights & Biases logging when ``project`` is set (needs the wandb package)."""

    project: str | None = None
    resume_id: str | None = None  # continue this W&B run
    entity: str | None = None  # ours: the W&B team or user (default: wandb's)


@dataclass
class LoggerOptions:
    """``logger``: console/file log, checkpoints, TensorBoard and Weights & Biases."""

    print_freq: int = 100
    save_checkpoint_freq: int = 5000  # 0: checkpoints only at the end (and on interruption)
    use_tb_logger: bool = True
    keep_last: int = 0  # keep only the last K periodic checkpoints (0 = keep all); ours
    wandb: WandbOptions | None = None

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

    def real_esrgan_keys(self) -> dict[str, Any]:
        """The Real-ESRGAN top-level keys that are set (by name), for ``RealESRGANOptions``."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in REAL_KEYS}
        return {k: v for k, v in values.items() if v is not None}

    def datasets_of(self, phase: str) -> dict[str, DatasetOptions]:
        """The datasets of one phase (``"val"`` -> ``val``, ``val_1``, ...), by their key."""
        return {k: d for k, d in self.datasets.items() if d.phase == phase}

