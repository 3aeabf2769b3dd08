"""BasicSR compatibility: old key names upgraded, and what BasicSR fills in at load time (dataset phase
and scale from the keys, the generator's scale from the top-level one)."""

from __future__ import annotations

import difflib
import logging
from typing import Any

from esrgan.options.errors import OptionsError, _join

logger = logging.getLogger("esrgan.options")

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
    A contradicting explicit value is refused in :func:`_resolve`.
    """
    net_g = raw.get("network_g")
    if not isinstance(net_g, dict):
        return
    from esrgan.archs import scale_argument

    arg = scale_argument(str(net_g.get("type")))  # None for an unknown type, reported by the section parser
    if arg is not None and arg not in net_g:
        net_g[arg] = raw.get("scale", 4)

