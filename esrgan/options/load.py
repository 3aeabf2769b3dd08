"""``load_options``: read, override, upgrade, convert, resolve and check a training option file."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from esrgan.options.basicsr import _prefill_datasets, _prefill_network_scale, upgrade_basicsr
from esrgan.options.convert import from_mapping
from esrgan.options.errors import OptionsError, _show
from esrgan.options.sections import Options
from esrgan.options.yaml_io import apply_override, parse_override, read_option_file

logger = logging.getLogger("esrgan.options")

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
        ds.expand_user_paths()

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
    from esrgan.archs import scale_argument

    arg = scale_argument(opt.network_g.type)
    if arg is not None and opt.network_g.kwargs.get(arg, opt.scale) != opt.scale:
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
        # The experiment's folders follow from its root (the trainer archives and locks the root as a
        # whole); a resolved file states them, and only those values load back.
        for key, derived in (
            ("models", os.path.join(root, "models")),
            ("training_states", os.path.join(root, "training_states")),
            ("log", root),
            ("visualization", os.path.join(root, "visualization")),
        ):
            given = getattr(p, key)
            if given is not None and os.path.normpath(given) != os.path.normpath(derived):
                raise OptionsError(
                    f"{given!r}: the experiment keeps this in {derived!r} (under path.experiments_root); "
                    "set path.experiments_root to put the whole experiment elsewhere, or remove path." + key,
                    key=f"path.{key}",
                )
            setattr(p, key, derived)
        if opt.name.startswith("debug"):
            if opt.val is not None:
                opt.val.val_freq = 8
            opt.logger.print_freq = 1
            opt.logger.save_checkpoint_freq = 8
        _check_training(opt)
        _check_realesrgan(opt)
        _check_accumulation(opt)
        from esrgan.options.network_check import check_generator

        check_generator(opt)
    else:
        root = p.results_root or os.path.join("results", opt.name)
        p.results_root = root
        p.log = p.log or root
        p.visualization = p.visualization or os.path.join(root, "visualization")




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


def _check_accumulation(opt: Options) -> None:
    if opt.train is not None and opt.train.accumulate_grad_batches > 1 and opt.model_type == "RealESRGANModel":
        raise OptionsError(
            "RealESRGANModel trains on one batch per step (its sharpened targets belong to the last batch "
            "drawn); use 1, or a larger batch_size_per_gpu",
            key="train.accumulate_grad_batches",
        )


def _check_realesrgan(opt: Options) -> None:
    """Real-ESRGAN's degradation keys against each other and the training set, before anything starts."""
    from esrgan.options.realesrgan import RealESRGANOptions

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
        given = sorted(opt.real_esrgan_keys())
        if given:
            logger.warning("options: model_type %s makes no degraded LR: %s ignored (RealESRNetModel and "
                           "RealESRGANModel use them)", opt.model_type, ", ".join(given))
        return
    ds = opt.datasets.get("train")
    RealESRGANOptions.from_options(opt).check(
        scale=opt.scale,
        batch_size=None if ds is None else ds.batch_size_per_gpu,
        crop_pad_size=getattr(ds, "crop_pad_size", None),  # RealESRGANDatasetOptions' own keys
        blur_kernel_size2=getattr(ds, "blur_kernel_size2", None),
    )


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
    raw = read_option_file(path)
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

