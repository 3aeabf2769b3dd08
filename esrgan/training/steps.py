"""The training data as optimizer steps: the loader's batches, ``accumulate_grad_batches`` at a time, epoch after
epoch, and where the stream stands (what a training state records, and resumes from).

A step's batches may span an epoch's end. Between the micro-batches of one step a stop request raises
:class:`StopMidStep` with the position of the step's first batch: the batches drawn so far have changed
nothing yet, so a state saved there resumes exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from esrgan.training.rng import get_rng_state

Batch = Mapping[str, Any]


@dataclass(frozen=True)
class Position:
    """Where the data stream stands: epoch, batches drawn in it, and this process's RNG states."""

    epoch: int
    batches_in_epoch: int
    rng: dict[str, Any]


class StopMidStep(Exception):
    """A stop signal arrived between the micro-batches of one step."""

    def __init__(self, position: Position) -> None:
        self.position = position


class StepStream:
    """Iterating gives the batches of each optimizer step; ``epoch`` / ``batches_in_epoch`` say where it stands."""

    def __init__(self, loader: DataLoader, dataset_opt: Any, device: torch.device, accumulate: int,
                 stop_requested: Callable[[], bool]) -> None:
        self.loader = loader
        self.sampler: Any = loader.sampler
        self.dataset_opt = dataset_opt
        self.device = device
        self.accumulate = accumulate
        self.stop_requested = stop_requested
        self.epoch = 0
        self.batches_in_epoch = 0

    def position(self) -> Position:
        return Position(self.epoch, self.batches_in_epoch, get_rng_state())

    def __iter__(self) -> Iterator[list[Batch]]:
        from esrgan.data.loader import build_prefetcher

        batch_size = self.dataset_opt.batch_size_per_gpu
        pending: list[Batch] = []
        start: Position | None = None
        while True:
            self.sampler.set_epoch(self.epoch, start=self.batches_in_epoch * batch_size)
            batches = iter(build_prefetcher(self.loader, self.dataset_opt, self.device))
            while True:
                if not pending and self.accumulate > 1:
                    start = self.position()
                batch = next(batches, None)
                if batch is None:
                    break
                self.batches_in_epoch += 1
                pending.append(batch)
                if len(pending) < self.accumulate:
                    if self.stop_requested():  # every rank asks here, in step: none is left waiting
                        assert start is not None
                        raise StopMidStep(start)
                    continue
                yield pending
                pending = []
            self.epoch += 1
            self.batches_in_epoch = 0
