"""``train.losses``: traiNNer-redux's list of losses, read into this framework's sections.

traiNNer-redux writes every loss of a run as one list entry ``{type: <name>, loss_weight: w, ...}`` with lower-case
names (``l1loss``, ``mssimloss``, ``ffloss``, ``perceptualloss``, ``distsloss``, ``ganloss``, ``ldlloss``); a weight
of 0 turns an entry off. At load, before the sections are built:

- names are matched without regard to case (``l1loss`` -> ``L1Loss``), plus traiNNer-redux's short names;
- a perceptual loss entry becomes ``train.perceptual_opt``, a GAN loss ``train.gan_opt`` and ``ldlloss``
  ``train.artifacts_opt`` (LDL's L1 artifact loss), each refused when that section is also given;
- entries whose weights are all 0 are left out (logged);
- what stays are pixel losses, each added to the generator's losses beside ``pixel_opt`` and logged under its own
  name (``l_g_focalfrequency``).

BasicSR files (``pixel_opt`` and friends, no ``losses``) load unchanged; a resolved file states the list as it
was read (canonical names, pixel losses only) and loads back equal.
"""

from __future__ import annotations

import logging
from typing import Any

from esrgan.options.errors import OptionsError, _show

logger = logging.getLogger("esrgan.options")

# traiNNer-redux's names that are not ours in lower case -> (section, our loss type)
_SHORT_NAMES = {
    "ffloss": ("losses", "FocalFrequencyLoss"),
    "mssimloss": ("losses", "MSSSIMLoss"),
    "msssimloss": ("losses", "MSSSIMLoss"),
    "ldlloss": ("artifacts_opt", "L1Loss"),
}
_LDL_CRITERIA = {"l1": "L1Loss", "l2": "MSELoss", "charbonnier": "CharbonnierLoss"}


def _section_of(name: str) -> tuple[str, str] | None:
    """(section, canonical type) of a list entry's type name; None when unknown (the section parser names it)."""
    from esrgan.losses import GAN_LOSSES, PERCEPTUAL_LOSSES, PIXEL_LOSSES

    key = name.lower()
    if key in _SHORT_NAMES:
        return _SHORT_NAMES[key]
    for section, table in (("losses", PIXEL_LOSSES), ("perceptual_opt", PERCEPTUAL_LOSSES),
                           ("gan_opt", GAN_LOSSES)):
        for canonical in table:
            if canonical.lower() == key:
                return section, canonical
    return None


def _all_zero(entry: dict[str, Any]) -> bool:
    weights = [v for k, v in entry.items() if k.endswith("_weight") and isinstance(v, int | float)
               and not isinstance(v, bool)]
    return bool(weights) and all(w == 0 for w in weights)


def resolve_loss_list(train: dict[str, Any]) -> None:
    """Sort the entries of ``train["losses"]`` into their sections, in place (see the module docstring)."""
    entries = train.get("losses")
    if entries is None:
        return
    if not isinstance(entries, list):
        raise OptionsError(f"expected a list of losses ({{type: name, loss_weight: w, ...}}), got {_show(entries)}",
                           key="train.losses")
    kept: list[Any] = []
    for i, entry in enumerate(entries):
        key = f"train.losses[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            kept.append(entry)  # the section parser reports it
            continue
        found = _section_of(entry["type"])
        if found is None:
            kept.append(entry)
            continue
        section, canonical = found
        if _all_zero(entry):
            logger.info("options: %s (%s): all weights 0, left out", key, entry["type"])
            continue
        entry = {**entry, "type": canonical}
        if entry.get("criterion") is not None and section == "artifacts_opt":  # traiNNer-redux's LDLLoss criterion
            criterion = entry.pop("criterion")
            if criterion not in _LDL_CRITERIA:
                raise OptionsError(f"{_show(criterion)} is not allowed; allowed values: {', '.join(_LDL_CRITERIA)}",
                                   key=f"{key}.criterion")
            entry["type"] = _LDL_CRITERIA[criterion]
        if section == "losses":
            kept.append(entry)
            continue
        if train.get(section) is not None:
            raise OptionsError(f"{entry['type']} is also given as train.{section}; keep one of the two",
                               key=f"{key}.type")
        train[section] = entry
        logger.info("options: %s (%s) read as train.%s", key, canonical, section)
    train["losses"] = kept
