"""``val.select``: the checkpoint a declared criterion chooses among a run's validations.

The criterion (``esrgan.metrics.selection``) reads the first validation set's scores, by the metric names of
``val.metrics``. "The PSNR model" is the generator before the first iteration (for a GAN stage, the PSNR model it
starts from), scored once at the start. Each validation is a candidate; when one becomes the choice its generator
is saved as ``models/net_g_selected.pth`` and ``selection.json`` (criterion, bounds, reference, choice and every
candidate) is rewritten; the state is part of the training state, so a resumed run keeps choosing the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from esrgan.metrics.selection import Criterion

logger = logging.getLogger("esrgan.training")

SELECTION_FILE = "selection.json"


class Selection:
    """The criterion's choice so far over one run's validations."""

    def __init__(self, criterion: Criterion, dataset: str) -> None:
        self.criterion = criterion
        self.dataset = dataset
        self.reference: dict[str, float] | None = None
        self.chosen: dict[str, Any] | None = None  # {"iter": ..., "values": {...}}
        self.candidates: list[dict[str, Any]] = []

    @property
    def needs_reference(self) -> bool:
        return self.criterion.needs_reference and self.reference is None

    def set_reference(self, values: Mapping[str, float]) -> None:
        self.reference = {k: float(values[k]) for k in self.criterion.metrics}
        logger.info("selection: the PSNR model scores %s on %s; criterion: %s", _show(self.reference), self.dataset,
                    self.criterion.describe(self.reference))

    def update(self, iteration: int, values: Mapping[str, float]) -> bool:
        """Add one validation; True when it is the new choice."""
        scores = {k: float(values[k]) for k in self.criterion.metrics}
        meets = self.criterion.admissible(scores, self.reference)
        self.candidates.append({"iter": int(iteration), "values": scores, "meets": meets})
        chosen = meets and (self.chosen is None or self.criterion.better(
            scores[self.criterion.objective], self.chosen["values"][self.criterion.objective]))
        if chosen:
            self.chosen = {"iter": int(iteration), "values": scores}
        logger.info("selection @ iter %d: %s%s", iteration, _show(scores),
                    " - chosen" if chosen else ("" if meets else " - outside the conditions"))
        return chosen

    def to_dict(self) -> dict[str, Any]:
        """What ``selection.json`` holds."""
        return {
            "criterion": self.criterion.text,
            "bounds": self.criterion.describe(self.reference),
            "dataset": self.dataset,
            "reference": None if self.reference is None else {"iter": 0, "values": self.reference},
            "chosen": self.chosen,
            "file": "models/net_g_selected.pth" if self.chosen else None,
            "candidates": self.candidates,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "chosen": self.chosen, "candidates": self.candidates}

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        state = state or {}
        self.reference = state.get("reference")
        self.chosen = state.get("chosen")
        self.candidates = list(state.get("candidates") or [])
        if self.criterion.needs_reference and self.reference is None:
            raise ValueError(
                "val.select compares with the PSNR model, scored before the first iteration, and this training state "
                "has no such scores (it was saved without val.select): start the stage afresh, or declare a "
                "criterion without 'the PSNR model'"
            )


def write_selection(path: Any, selection: Selection) -> None:
    """``selection.json``, atomically; a score that is not a finite number is written as null."""
    import json
    import math

    from esrgan.utils.atomic import atomic_write_text

    def finite(obj: Any) -> Any:
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        if isinstance(obj, dict):
            return {k: finite(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [finite(v) for v in obj]
        return obj

    atomic_write_text(path, json.dumps(finite(selection.to_dict()), indent=2) + "\n")


def _show(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in values.items())
