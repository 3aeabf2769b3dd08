"""A declared selection criterion: which checkpoint, or which interpolation alpha, to keep, stated in words.

    lowest lpips with psnr_y no more than 0.5 dB below the PSNR model
    highest ssim_y
    lowest dists with psnr_y at least 27 and color_drift at most 1.5

Grammar (case-insensitive; words separated by spaces; ``dB`` after a number is optional)::

    criterion := (lowest | highest) METRIC [with condition (and condition)*]
    condition := METRIC no more than NUMBER (below | above) the psnr model
               | METRIC (at least | at most) NUMBER

``METRIC`` is a column of the scores being compared: a result column of ``esrgan test`` / sweeps (``psnr_y``,
``ssim_rgb``, ``lpips``, ``color_drift``...) or a metric name of ``val.metrics`` in training. "The PSNR model"
is the starting point: alpha 0 of a sweep, the generator before the first iteration in training (the PSNR model a
GAN stage starts from). Among the candidates that meet every condition, the one with the lowest (highest)
objective is chosen; the earliest wins a tie. A score that is not a finite number meets no condition.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

REFERENCE = "the psnr model"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?"
_METRIC = r"[a-z][a-z0-9_]*"
_RELATIVE = re.compile(rf"^({_METRIC}) no more than ({_NUMBER})(?: db)? (below|above) {REFERENCE}$")
_ABSOLUTE = re.compile(rf"^({_METRIC}) at (least|most) ({_NUMBER})(?: db)?$")
_OBJECTIVE = re.compile(rf"^(lowest|highest) ({_METRIC})$")
EXAMPLE = "lowest lpips with psnr_y no more than 0.5 dB below the PSNR model"

Kind = Literal["below", "above", "at least", "at most"]


@dataclass(frozen=True)
class Condition:
    """``metric`` within ``value`` of the reference (``below``: >= ref - value; ``above``: <= ref + value), or
    ``at least`` / ``at most`` ``value``."""

    metric: str
    kind: Kind
    value: float

    @property
    def relative(self) -> bool:
        return self.kind in ("below", "above")

    def bound(self, reference: Mapping[str, float] | None) -> float:
        if not self.relative:
            return self.value
        if reference is None or self.metric not in reference:
            raise ValueError(f"selection: {self.metric} is compared with the PSNR model, whose scores are missing")
        ref = reference[self.metric]
        return ref - self.value if self.kind == "below" else ref + self.value

    def holds(self, values: Mapping[str, float], reference: Mapping[str, float] | None) -> bool:
        v = values.get(self.metric)
        if v is None or not math.isfinite(v):
            return False
        bound = self.bound(reference)
        return v >= bound if self.kind in ("below", "at least") else v <= bound


@dataclass(frozen=True)
class Criterion:
    """A parsed criterion (:func:`parse_criterion`); ``text`` is what was declared."""

    text: str
    objective: str
    lowest: bool
    conditions: tuple[Condition, ...] = ()

    @property
    def metrics(self) -> list[str]:
        """Every metric it reads, the objective first."""
        return list(dict.fromkeys([self.objective, *(c.metric for c in self.conditions)]))

    @property
    def needs_reference(self) -> bool:
        return any(c.relative for c in self.conditions)

    def check_metrics(self, available: Sequence[str], aliases: Mapping[str, str] | None = None) -> Criterion:
        """The criterion with every metric a name of ``available`` (``aliases`` maps other spellings to them);
        an unknown name is a ValueError listing the available ones."""
        aliases = aliases or {}

        def known(name: str) -> str:
            name = aliases.get(name, name)
            if name not in available:
                raise ValueError(f"selection criterion {_quoted(self.text)}: {name!r} is not scored here; "
                                 f"scored: {', '.join(available) or 'nothing'}")
            return name

        return replace(self, objective=known(self.objective),
                       conditions=tuple(replace(c, metric=known(c.metric)) for c in self.conditions))

    def admissible(self, values: Mapping[str, float], reference: Mapping[str, float] | None = None) -> bool:
        v = values.get(self.objective)
        return v is not None and math.isfinite(v) and all(c.holds(values, reference) for c in self.conditions)

    def better(self, a: float, b: float) -> bool:
        """``a`` is strictly better than ``b`` for the objective."""
        return a < b if self.lowest else a > b

    def choose(self, candidates: Sequence[tuple[Any, Mapping[str, float]]],
               reference: Mapping[str, float] | None = None) -> tuple[Any, Mapping[str, float]] | None:
        """The chosen ``(label, values)`` of ``candidates`` (in order; the first of equals), or None if none
        meets the conditions."""
        best = None
        for label, values in candidates:
            if self.admissible(values, reference) and (
                    best is None or self.better(values[self.objective], best[1][self.objective])):
                best = (label, values)
        return best

    def describe(self, reference: Mapping[str, float] | None = None) -> str:
        """The criterion with its bounds as numbers (``psnr_y >= 26.91``) when the reference is known."""
        parts = []
        for c in self.conditions:
            op = ">=" if c.kind in ("below", "at least") else "<="
            try:
                parts.append(f"{c.metric} {op} {c.bound(reference):.4g}")
            except ValueError:
                parts.append(f"{c.metric} {op} PSNR model {'-' if c.kind == 'below' else '+'} {c.value:g}")
        head = f"{'lowest' if self.lowest else 'highest'} {self.objective}"
        return head + (f" with {' and '.join(parts)}" if parts else "")


def _quoted(text: str, limit: int = 100) -> str:
    """The criterion as an error shows it: quoted, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_criterion(text: str) -> Criterion:
    """Read a criterion (see the module docstring); a ValueError names the part that does not read and the
    grammar."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a selection criterion is a sentence such as {EXAMPLE!r}, got "
                         f"{_quoted(text) if isinstance(text, str) else type(text).__name__}")
    words = " ".join(text.lower().split())
    head, sep, rest = words.partition(" with ")
    m = _OBJECTIVE.match(head)
    if m is None:
        raise ValueError(f"selection criterion {_quoted(text)}: expected 'lowest METRIC' or 'highest METRIC' first, "
                         f"got {_quoted(head, 40)} (e.g. {EXAMPLE!r})")
    conditions = []
    if sep:
        for part in rest.split(" and "):
            rel, ab = _RELATIVE.match(part), _ABSOLUTE.match(part)
            if rel:
                metric, number, side = rel.groups()
                value = float(number)
                if value < 0:
                    raise ValueError(f"selection criterion {_quoted(text)}: {number} in {_quoted(part, 60)} "
                                     "must be >= 0")
                conditions.append(Condition(metric, side, value))  # type: ignore[arg-type]
            elif ab:
                metric, which, number = ab.groups()
                conditions.append(Condition(metric, f"at {which}", float(number)))  # type: ignore[arg-type]
            else:
                raise ValueError(
                    f"selection criterion {_quoted(text)}: cannot read the condition {_quoted(part, 60)}; expected "
                    "'METRIC no more than N [dB] below|above the PSNR model' or 'METRIC at least|at most N'"
                )
    if any(not math.isfinite(c.value) for c in conditions):
        raise ValueError(f"selection criterion {_quoted(text)}: bounds must be finite numbers")
    return Criterion(text=text.strip(), objective=m.group(2), lowest=m.group(1) == "lowest",
                     conditions=tuple(conditions))


__all__ = ["EXAMPLE", "Condition", "Criterion", "parse_criterion"]
