"""``load_options``: read, override, upgrade, resolve, convert and check a training option file; and
``save_options``, the one writer of a resolved file."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from esrgan.options.basicsr import refuse_runtime_keys, resolve_training, upgrade_basicsr
from esrgan.options.convert import deep_copy, from_mapping
from esrgan.options.errors import OptionsError, _show
from esrgan.options.realesrgan import REAL_KEYS
from esrgan.options.sections import Options
from esrgan.options.yaml_io import apply_override, parse_override, read_option_file

logger = logging.getLogger("esrgan.options")


def load_options(path: str | os.PathLike[str], overrides: Sequence[str] = (), *, debug: bool = False) -> Options:
    """Read, override, validate and resolve a training option file.

    ``overrides``: ``"a.b.c=value"`` strings (``--set``), value parsed as YAML, applied in order.
    ``debug``: BasicSR's ``--debug``: prefix the name with ``debug_`` and validate / log / save every
    few iterations (which any name starting with ``debug`` also does).
    """
    raw = read_option_file(path)
    return options_from_dict(raw, overrides, debug=debug, source=path)


def options_from_dict(
    raw: Any,
    overrides: Sequence[str] = (),
    *,
    debug: bool = False,
    source: str | os.PathLike[str] = "<dict>",
) -> Options:
    """:func:`load_options` for an already parsed mapping (``source`` names it in errors)."""
    if not isinstance(raw, Mapping):
        raise OptionsError(f"expected a mapping of option sections at the top level, got {_show(raw)}", file=source)
    raw = deep_copy(raw)
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
        refuse_runtime_keys(raw)
        resolve_training(raw, debug=debug)
        opt = from_mapping(Options, raw, "")
        _check(opt, given_real_keys=sorted(REAL_KEYS & set(raw)))
    except OptionsError as err:
        for key, text in override_keys:
            if err.key and (err.key == key or err.key.startswith(key + ".") or key.startswith(err.key + ".")):
                raise OptionsError(f"{err.reason} (from --set {text})", key=err.key, file=source) from None
        raise err.with_file(source) from None
    return opt


def _check(opt: Options, *, given_real_keys: list[str]) -> None:
    """Checks across sections, once, after each section checked itself."""
    if opt.scale < 1:
        raise OptionsError(f"must be >= 1, got {opt.scale}", key="scale")
    for ds in opt.datasets.values():
        ds.expand_user_paths()
    from esrgan.archs import scale_argument

    arg = scale_argument(opt.network_g.type)
    if arg is not None and opt.network_g.kwargs.get(arg, opt.scale) != opt.scale:
        raise OptionsError(
            f"{opt.network_g.kwargs[arg]} differs from the top-level scale {opt.scale}", key=f"network_g.{arg}"
        )
    if not any(d.phase == "train" for d in opt.datasets.values()):
        raise OptionsError("a training dataset is required (datasets.train)", key="datasets")
    _check_losses(opt)
    if opt.val is not None and opt.val.select is not None and not (opt.datasets_of("val") and opt.val.metrics):
        raise OptionsError("chooses among validations: add a validation set (datasets.val) and val.metrics",
                           key="val.select")
    _check_realesrgan(opt, given_real_keys)
    _check_accumulation(opt)
    from esrgan.options.network_check import check_generator

    check_generator(opt)


def _check_losses(opt: Options) -> None:
    t = opt.train
    if opt.is_gan:
        for key, value in (("network_d", opt.network_d), ("train.optim_d", t.optim_d), ("train.gan_opt", t.gan_opt)):
            if value is None:
                raise OptionsError(f"required for model_type {opt.model_type}", key=key)
    else:
        unused = [k for k, v in (("network_d", opt.network_d), ("train.optim_d", t.optim_d),
                                 ("train.gan_opt", t.gan_opt)) if v is not None]
        if unused:
            logger.warning("options: model_type %s trains no discriminator: %s ignored (use ESRGANModel for a GAN)",
                           opt.model_type, ", ".join(unused))
    if t.artifacts_opt is not None:
        if not opt.is_gan:
            raise OptionsError(f"LDL's artifact loss belongs to the GAN stage; model_type {opt.model_type} has no "
                               "adversarial loss (use ESRGANModel or RealESRGANModel, or remove it)",
                               key="train.artifacts_opt")
        if t.ema_decay <= 0:
            raise OptionsError("LDL's artifact map compares the output with the EMA generator's; set "
                               "train.ema_decay (e.g. 0.999)", key="train.artifacts_opt")
    # The generator's losses (BasicSR's SRModel also takes a perceptual loss).
    losses = {"pixel_opt": t.pixel_opt, "perceptual_opt": t.perceptual_opt,
              **{f"losses[{i}]": loss for i, loss in enumerate(t.losses)}}
    if opt.is_gan:
        losses["gan_opt"] = t.gan_opt
        losses["artifacts_opt"] = t.artifacts_opt
    given = {k: v for k, v in losses.items() if v is not None}
    if not given:
        raise OptionsError("no loss given: set pixel_opt, perceptual_opt or losses"
                           + (" and/or gan_opt" if opt.is_gan else ""), key="train")
    if not any(loss.active for loss in given.values()):
        zeros = ", ".join(f"{k}.{w} {v:g}" for k, loss in given.items() for w, v in loss.weights().items())
        raise OptionsError(f"no loss has a positive weight ({zeros}): the generator would learn nothing; "
                           "give one of them a weight > 0", key="train")
    pixel = [loss for loss in (t.pixel_opt, *t.losses) if loss is not None]
    if opt.is_gan and t.g_warmup_iter > 0 and not any(loss.active for loss in pixel):
        raise OptionsError(f"{t.g_warmup_iter}: the warm-up trains the generator with the pixel loss only, and "
                           "there is none (set train.pixel_opt with a weight > 0, or g_warmup_iter: 0)",
                           key="train.g_warmup_iter")


def _check_accumulation(opt: Options) -> None:
    if opt.train.accumulate_grad_batches > 1 and opt.model_type == "RealESRGANModel":
        raise OptionsError(
            "RealESRGANModel trains on one batch per step (its sharpened targets belong to the last batch "
            "drawn); use 1, or a larger batch_size_per_gpu",
            key="train.accumulate_grad_batches",
        )


def _check_realesrgan(opt: Options, given_real_keys: list[str]) -> None:
    """Real-ESRGAN's degradation keys against the model type and the training set, before anything starts."""
    for phase, ds in opt.datasets_of("train").items():
        if ds.type == "RealESRGANDataset" and not opt.is_real:
            raise OptionsError(
                f"type RealESRGANDataset gives HR crops and blur kernels, which model_type {opt.model_type} cannot "
                "train on; use model_type RealESRNetModel or RealESRGANModel (or a paired dataset type)",
                key=f"datasets.{phase}.type",
            )
        if opt.is_real and opt.real_esrgan.high_order_degradation and ds.type != "RealESRGANDataset":
            raise OptionsError(
                f"model_type {opt.model_type} degrades HR crops of type RealESRGANDataset, got {ds.type}; set "
                "high_order_degradation: false to train on the dataset's LR/HR pairs instead",
                key=f"datasets.{phase}.type",
            )
    if not opt.is_real:
        if given_real_keys:
            logger.warning("options: model_type %s makes no degraded LR: %s ignored (RealESRNetModel and "
                           "RealESRGANModel use them)", opt.model_type, ", ".join(given_real_keys))
        return
    opt.real_esrgan.check_fit(scale=opt.scale, train=opt.datasets.get("train"))


def save_options(opt: Options, path: str | os.PathLike[str]) -> Path:
    """Write the resolved options as YAML, atomically (the experiment's record of what ran)."""
    import yaml

    from esrgan.utils.atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(opt.to_dict(), sort_keys=False, allow_unicode=True))
    return Path(path)
