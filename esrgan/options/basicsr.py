"""BasicSR compatibility and resolution: old key names upgraded, and what BasicSR fills in at load time.

Everything here works on the parsed mapping, before the typed sections are built, so that those
hold resolved values: each dataset's phase and scale, the generator's scale, each metric's
``crop_border``, ``gan_opt.relativistic``, the experiment's folders and ``--debug``'s frequencies.
"""

from __future__ import annotations

import difflib
import logging
import os
from typing import Any

from esrgan.options.errors import OptionsError, _join
from esrgan.utils.folders import EXPERIMENTS_ROOT, check_experiment_name

logger = logging.getLogger("esrgan.options")

# Keys BasicSR's parser adds at run time; in a file they would say nothing true about this run.
RUNTIME_KEYS = {
    "dist": "whether the run is distributed follows from --launcher",
    "rank": "each process's rank comes from its launcher (torchrun, srun)",
    "world_size": "the number of processes comes from the launcher (torchrun, srun)",
    "is_train": "esrgan train trains and esrgan test tests",
}
EXPERIMENT_FOLDERS = ("models", "training_states", "log", "visualization")


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
    train = raw.get("train")
    if isinstance(train, dict):
        _rename(train, "ldl_opt", "artifacts_opt", "train")  # BasicSR's name of LDL's loss
    net_d = raw.get("network_d")
    if isinstance(net_d, dict) and net_d.get("type") == "VGGStyleDiscriminator128":
        # BasicSR < 1.3 had a separate class for the 128-pixel VGG discriminator.
        net_d["type"] = "VGGStyleDiscriminator"
        net_d.setdefault("input_size", 128)
        logger.info("options: network_d: VGGStyleDiscriminator128 read as VGGStyleDiscriminator(input_size=128)")


def refuse_runtime_keys(raw: dict[str, Any]) -> None:
    for key, why in RUNTIME_KEYS.items():
        if key in raw:
            raise OptionsError(f"not an option ({why}); remove it", key=key)


def resolve_training(raw: dict[str, Any], *, debug: bool) -> None:
    """Fill in, in place, what a training file leaves to the loader (BasicSR's resolution and ours)."""
    name = raw.get("name")
    if isinstance(name, str):
        try:  # it becomes experiments/<name>: one folder name, never '' (= experiments/ itself) or '../x'
            check_experiment_name(name)
        except ValueError as exc:
            raise OptionsError(str(exc), key="name") from None
        if debug and not name.startswith("debug"):
            name = raw["name"] = "debug_" + name
        _resolve_paths(raw, name)
        if name.startswith("debug"):  # BasicSR's debug mode: log every iteration, validate and save every 8
            if isinstance(raw.get("val"), dict):
                raw["val"]["val_freq"] = 8
            if raw.get("logger") is None:
                raw["logger"] = {}
            if isinstance(raw["logger"], dict):
                raw["logger"].update(print_freq=1, save_checkpoint_freq=8)
    resolve_common(raw, training=True)
    train = raw.get("train")
    if isinstance(train, dict):
        from esrgan.options.loss_list import resolve_loss_list

        resolve_loss_list(train)  # before gan_opt's resolution: a ganloss entry becomes gan_opt
    gan = train.get("gan_opt") if isinstance(train, dict) else None
    if isinstance(gan, dict) and gan.get("relativistic") is None:
        # BasicSR's ESRGANModel always trains the relativistic average GAN, whatever gan_type says;
        # its RealESRGANModel follows gan_type.
        gan["relativistic"] = gan.get("gan_type") == "ragan" or raw.get("model_type") == "ESRGANModel"


def resolve_common(raw: dict[str, Any], *, training: bool) -> None:
    """What training, test and sweep files share: dataset phase/scale, the generator's scale, crop borders.

    A training file's dataset keys are BasicSR's (``train``, ``val_1``...); a test file may name its sets
    freely (a key that is not ``test_*`` or ``val_*`` is a test set).
    """
    _prefill_datasets(raw, strict_keys=training)
    _prefill_network_scale(raw)
    scale = raw.get("scale", 4)
    val = raw.get("val")
    metrics = val.get("metrics") if isinstance(val, dict) else None
    if isinstance(metrics, dict) and isinstance(scale, int):
        for metric in metrics.values():
            if isinstance(metric, dict) and metric.get("crop_border") is None:
                metric["crop_border"] = scale  # the SR literature crops `scale` pixels at each border


def _resolve_paths(raw: dict[str, Any], name: str) -> None:
    """``path.experiments_root`` (default ``experiments/<name>``) and the folders that follow from it."""
    p = raw.get("path")
    if p is None:
        p = raw["path"] = {}
    if not isinstance(p, dict):
        return  # reported by the converter
    for key in ("pretrain_network_g", "pretrain_network_d", "resume_state", "experiments_root"):
        if isinstance(p.get(key), str):
            p[key] = os.path.expanduser(p[key])
    root = p.get("experiments_root") or os.path.join(EXPERIMENTS_ROOT, name)
    if not isinstance(root, str):
        return
    p["experiments_root"] = root
    # The experiment's folders follow from its root (the trainer archives and locks the root as a whole);
    # a resolved file states them, and only those values load back.
    for key in EXPERIMENT_FOLDERS:
        derived = root if key == "log" else os.path.join(root, key)
        given = p.get(key)
        if given is not None and (not isinstance(given, str) or os.path.normpath(given) != os.path.normpath(derived)):
            raise OptionsError(
                f"{given!r}: the experiment keeps this in {derived!r} (under path.experiments_root); "
                "set path.experiments_root to put the whole experiment elsewhere, or remove path." + key,
                key=f"path.{key}",
            )
        p[key] = derived


def _prefill_datasets(raw: dict[str, Any], *, strict_keys: bool) -> None:
    """Each dataset's phase (from its key: ``val_1`` -> ``val``) and scale (the top-level one), as BasicSR.

    Done before the datasets are built because their checks depend on both.
    """
    datasets = raw.get("datasets")
    if not isinstance(datasets, dict):
        return
    scale = raw.get("scale", 4)
    for key, ds in datasets.items():
        phase = str(key).split("_")[0]
        if not strict_keys and phase not in ("val", "test"):
            phase = "test"
        if phase not in ("train", "val", "test"):
            close = difflib.get_close_matches(phase, ["train", "val", "test"], n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise OptionsError(
                f"unknown dataset phase; {hint}dataset keys are train, val, val_<N>, test or test_<N> "
                "(the part before '_' is the phase)",
                key=f"datasets.{key}",
            )
        if phase == "train" and key != "train":
            raise OptionsError(
                "one training dataset, under the key 'train' (as in BasicSR); to train on several folders, "
                "put their images in one folder or LMDB",
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
    A contradicting explicit value is refused once the options are built.
    """

    net_g = raw.get("network_g")
    if not isinstance(net_g, dict):
        return
    from esrgan.archs import scale_argument

    arg = scale_argument(str(net_g.get("type")))  # None for an unknown type, reported by the section parser
    if arg is not None and arg not in net_g:
        net_g[arg] = raw.get("scale", 4)

