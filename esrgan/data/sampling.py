"""A training sampler whose batches are a pure function of (seed, epoch, position).

Why not ``RandomSampler`` / ``DistributedSampler`` alone: exact resume in the middle of an
epoch needs the *remaining* batches of that epoch, with the *same* augmentations. Data
augmentation draws from the Python/NumPy/torch generators of whichever process loads the
sample (a worker or the main process), so its randomness depends on the number of workers
and on everything loaded before. Here each position of an epoch carries its own seed,
and :class:`SeededDataset` reseeds the generators from it before loading that sample:

- resuming at batch k of epoch e skips k batches by index, without loading them;
- the samples and their augmentations do not depend on ``num_workers``;
- with ``world_size`` ranks, rank r takes positions r, r + W, ... of the same global order
  (as ``DistributedSampler`` does), so the union of the ranks' i-th batches is exactly the
  i-th batch of a single process with the global batch size.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info

_SEED_MAX = 2**62


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(dataset_index, sample_seed)`` for this rank, reshuffled every epoch from ``seed + epoch``.

    ``enlarge_ratio`` repeats the dataset (BasicSR's ``dataset_enlarge_ratio``) so that an
    epoch is not absurdly short for small datasets. The global order is padded to a
    multiple of ``world_size`` (as ``DistributedSampler`` does); the loader drops the last
    incomplete batch.
    """

    def __init__(
        self,
        dataset_len: int,
        *,
        seed: int,
        shuffle: bool = True,
        enlarge_ratio: int = 1,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if dataset_len <= 0:
            raise ValueError("the training dataset is empty")
        if enlarge_ratio < 1:
            raise ValueError(f"dataset_enlarge_ratio must be >= 1, got {enlarge_ratio}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.dataset_len = dataset_len
        self.seed = int(seed)
        self.shuffle = shuffle
        self.enlarge_ratio = int(enlarge_ratio)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0  # positions of this rank's share to skip (resume mid-epoch)
        total = dataset_len * self.enlarge_ratio
        self.num_samples = -(-total // world_size)  # ceil
        self.total_size = self.num_samples * world_size

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order and skip the first ``start`` samples of this rank's share."""
        self.epoch = int(epoch)
        self.start = int(start)

    def global_order(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, seeds) of the whole epoch, before splitting between ranks."""
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + epoch)
        total = self.dataset_len * self.enlarge_ratio
        order = torch.randperm(total, generator=g) if self.shuffle else torch.arange(total)
        seeds = torch.randint(0, _SEED_MAX, (total,), generator=g, dtype=torch.int64)
        if self.total_size > total:  # pad by wrapping around, as DistributedSampler does
            pad = self.total_size - total
            order = torch.cat([order, order[:pad]])
            seeds = torch.cat([seeds, seeds[:pad]])
        return order % self.dataset_len, seeds

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order, seeds = self.global_order(self.epoch)
        mine = slice(self.rank, self.total_size, self.world_size)
        order, seeds = order[mine][self.start :], seeds[mine][self.start :]
        return iter(zip(order.tolist(), seeds.tolist(), strict=True))

    def __len__(self) -> int:
        return self.num_samples - self.start


class SeededDataset(Dataset):
    """Wraps a dataset so that ``ds[(index, seed)]`` loads ``index`` with all generators seeded by ``seed``.

    In the main process (``num_workers == 0``) the generators' previous states are put back
    afterwards, so loading data does not change the training's random stream; the GPUs' generators are
    never touched (data is loaded on the host).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        in_main = get_worker_info() is None
        if in_main:
            saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        random.seed(seed)
        np.random.seed(seed % 2**32)
        # The CPU generator only: torch.manual_seed would also reseed every CUDA generator, which the
        # training draws from (the gradient penalty's mixing weights) and which is not put back here.
        torch.default_generator.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            if in_main:
                random.setstate(saved[0])
                np.random.set_state(saved[1])
                torch.set_rng_state(saved[2])
