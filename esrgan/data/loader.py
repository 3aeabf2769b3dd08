"""Data loaders: samplers, worker seeding, and prefetchers that overlap host-to-device copies.

Reproducibility: with a ``seed``, the sampler order depends only on (seed, epoch) and every
worker's ``random``/``numpy``/``torch`` state on (seed, rank, worker id, the loader's
per-epoch base seed), so two runs produce the same batches. With ``num_workers=0`` the
augmentations draw from the main process's ``random`` module, which the trainer seeds.
Call ``loader.sampler.set_epoch(epoch)`` at the start of every epoch (as with
``DistributedSampler``), so that each epoch sees a new order.
"""

from __future__ import annotations

import functools
import logging
import math
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from esrgan.options.datasets import DatasetOptions

logger = logging.getLogger("esrgan.data.loader")


class EnlargedSampler(DistributedSampler):
    """A ``DistributedSampler`` over the dataset repeated ``ratio`` times (BasicSR's ``dataset_enlarge_ratio``).

    Training on a few thousand sub-images, an "epoch" would otherwise last only a few
    iterations; repeating the index list makes epochs (and worker restarts) rarer. With
    ``num_replicas=1`` it is a plain seeded shuffler, used when not distributed too.
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int = 1,
        rank: int = 0,
        ratio: int = 1,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.ratio = ratio
        self.num_samples = math.ceil(len(dataset) * ratio / num_replicas)  # type: ignore[arg-type]
        self.total_size = self.num_samples * num_replicas

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(self.total_size, generator=g)
        else:
            indices = torch.arange(self.total_size)
        # Positions beyond len*ratio wrap around, padding the last rank's share like DistributedSampler.
        indices = (indices % n).tolist()
        return iter(indices[self.rank : self.total_size : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


def seed_worker(worker_id: int, *, base_seed: int | None, rank: int) -> None:
    """``worker_init_fn``: seed ``random``, ``numpy`` and ``torch`` from (seed, rank, worker, epoch).

    ``torch.initial_seed()`` inside a worker is the loader's base seed (new every epoch,
    drawn from the loader's generator) plus the worker id, so augmentations differ
    between epochs but repeat between runs with the same seed.
    """
    entropy = [torch.initial_seed() % 2**32, worker_id, rank]
    if base_seed is not None:
        entropy.append(base_seed)
    ss = np.random.SeedSequence(entropy)
    seed32, seed64 = ss.generate_state(1, np.uint32)[0], ss.generate_state(1, np.uint64)[0]
    random.seed(int(seed64))
    np.random.seed(int(seed32))
    torch.manual_seed(int(seed64) & ((1 << 63) - 1))


def build_dataloader(
    dataset: Dataset,
    opt: DatasetOptions,
    *,
    num_gpu: int = 1,
    dist: bool = False,
    rank: int = 0,
    world_size: int = 1,
    seed: int | None = None,
) -> DataLoader:
    """A DataLoader for ``opt.phase``.

    Training: shuffled by an :class:`EnlargedSampler` (distributed over ``world_size`` ranks
    when ``dist``), ``drop_last``, seeded persistent workers. Per process the batch is
    ``batch_size_per_gpu`` (times ``num_gpu`` without ``dist``, as in BasicSR's DataParallel mode).
    Validation/test: batch 1 (images differ in size), in order, no workers.
    """
    if opt.is_train:
        multiplier = 1 if dist else max(num_gpu, 1)
        batch_size = opt.batch_size_per_gpu * multiplier
        num_workers = opt.num_worker_per_gpu * multiplier
        sampler = EnlargedSampler(
            dataset,
            num_replicas=world_size if dist else 1,
            rank=rank if dist else 0,
            ratio=opt.dataset_enlarge_ratio,
            shuffle=opt.use_shuffle,
            seed=seed if seed is not None else 0,
        )
        if len(sampler) < batch_size:
            raise ValueError(
                f"datasets.{opt.phase}: {len(sampler)} samples per process (dataset {len(dataset)} "  # type: ignore[arg-type]
                f"x dataset_enlarge_ratio {opt.dataset_enlarge_ratio}) is less than one batch of {batch_size}; "
                f"lower batch_size_per_gpu or raise dataset_enlarge_ratio"
            )
        drop_last = True
    else:
        batch_size, num_workers, sampler, drop_last = 1, 0, None, False

    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(seed)
    cuda = torch.cuda.is_available()
    if opt.pin_memory and not cuda:
        logger.debug("pin_memory ignored: no CUDA device")
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs["persistent_workers"] = opt.persistent_workers
        kwargs["worker_init_fn"] = functools.partial(seed_worker, base_seed=seed, rank=rank)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=opt.pin_memory and cuda,
        drop_last=drop_last,
        generator=generator,
        **kwargs,
    )


Batch = dict[str, Any]


def _to_device(batch: Batch, device: torch.device, non_blocking: bool) -> Batch:
    return {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v for k, v in batch.items()}


class CPUPrefetcher:
    """Iterate a loader with ``next()`` (``None`` at the end) and ``reset()``; optional blocking copy to ``device``."""

    def __init__(self, loader: DataLoader, device: str | torch.device | None = None) -> None:
        self.loader = loader
        self.device = torch.device(device) if device is not None else None
        self._iter = iter(loader)

    def next(self) -> Batch | None:
        try:
            batch = next(self._iter)
        except StopIteration:
            return None
        return _to_device(batch, self.device, False) if self.device is not None else batch

    def reset(self) -> None:
        self._iter = iter(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        while (batch := self.next()) is not None:
            yield batch


class CUDAPrefetcher:
    """Copy the next batch to the GPU on a side stream while the current one is used.

    Needs pinned host memory (``pin_memory: true``) for the copies to be asynchronous.
    ``next()`` returns a batch already on ``device`` (``None`` at the end); ``reset()`` restarts.
    """

    def __init__(self, loader: DataLoader, device: str | torch.device = "cuda") -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("CUDAPrefetcher needs a CUDA device; use CPUPrefetcher (prefetch_mode: ~ or cpu)")
        self.loader = loader
        self.device = torch.device(device)
        self.stream = torch.cuda.Stream(device=self.device)
        self._batch: Batch | None = None
        self.reset()

    def _preload(self) -> None:
        try:
            batch = next(self._iter)
        except StopIteration:
            self._batch = None
            return
        with torch.cuda.stream(self.stream):
            self._batch = _to_device(batch, self.device, True)

    def next(self) -> Batch | None:
        current = torch.cuda.current_stream(self.device)
        current.wait_stream(self.stream)
        batch = self._batch
        if batch is not None:
            for value in batch.values():
                if torch.is_tensor(value):
                    # Tell the caching allocator these tensors are used on the compute stream too.
                    value.record_stream(current)
        self._preload()
        return batch

    def reset(self) -> None:
        self._iter = iter(self.loader)
        self._preload()

    def __iter__(self) -> Iterator[Batch]:
        while (batch := self.next()) is not None:
            yield batch


def build_prefetcher(
    loader: DataLoader, opt: DatasetOptions, device: str | torch.device = "cpu"
) -> CPUPrefetcher | CUDAPrefetcher:
    """``prefetch_mode: cuda`` on a CUDA device: CUDAPrefetcher; otherwise CPUPrefetcher (with a warning)."""
    device = torch.device(device)
    if opt.prefetch_mode == "cuda":
        if device.type == "cuda" and torch.cuda.is_available():
            return CUDAPrefetcher(loader, device)
        logger.warning("prefetch_mode cuda but device is %s: using the CPU prefetcher", device)
    return CPUPrefetcher(loader, device if device.type != "cpu" else None)
