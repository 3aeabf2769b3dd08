"""Schedule-free optimizers (Defazio et al., "The Road Less Scheduled", 2024; the ``schedulefree`` package).

They train at one point (y) and average another (x): the parameters hold y in train mode and x in eval mode,
and ``optimizer.train()`` / ``optimizer.eval()`` move them between the two. The trainer steps in train mode;
validation and the published weights (``models/net_g_*.pth``) use x; the training state keeps y and the
optimizer in train mode, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    """The optimizer keeps a train/eval mode (``train_mode`` in its groups, ``train()`` and ``eval()``)."""
    return (callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))
            and "train_mode" in optimizer.param_groups[0])


def start_training(optimizers: Iterable[torch.optim.Optimizer]) -> None:
    """Put schedule-free optimizers in train mode (they start in eval mode; ``step`` refuses to run there)."""
    for opt in optimizers:
        if is_schedule_free(opt):
            opt.train()


@contextlib.contextmanager
def evaluation_point(optimizers: Iterable[torch.optim.Optimizer]) -> Iterator[bool]:
    """Inside: the parameters of schedule-free optimizers in train mode hold their evaluation point x.

    On leaving, the training point y is put back bit for bit from a copy (moving x back to y by ``train()``
    would round differently, and a run that validated would drift from one that did not, or from its resume).
    Re-entrant: optimizers already at x are left alone. Yields whether any parameters were moved.
    """
    switched = [opt for opt in optimizers if is_schedule_free(opt) and opt.param_groups[0]["train_mode"]]
    saved = [[p.detach().clone() for g in opt.param_groups for p in g["params"]] for opt in switched]
    for opt in switched:
        opt.eval()
    try:
        yield bool(switched)
    finally:
        with torch.no_grad():
            for opt, copies in zip(switched, saved, strict=True):
                opt.train()
                for p, y in zip((p for g in opt.param_groups for p in g["params"]), copies, strict=True):
                    p.copy_(y)
