"""Data loaders (the trainer's and validation's) and prefetchers that overlap host-to-device copies.

Reproducibility: the training order depends only on (seed, epoch) and every sample's augmentation on
its own seed (``esrgan.data.sampling``), so two runs produce the same batches whatever the number of
workers. Call ``loader.sampler.set_epoch(epoch)`` at the start of every epoch (as with
``DistributedSampler``), so that each epoch sees a new order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from esrgan.data.sampling import EpochSampler, SeededDataset
from esrgan.options.datasets import DatasetOptions

logger = logging.getLogger("esrgan.data.loader")


def build_dataloader(
    dataset: Dataset,
    opt: DatasetOptions,
    *,
    seed: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool | None = None,
) -> DataLoader:
    """The loader of one dataset: the trainer's for ``opt.phase == "train"``, in-order batches of 1 otherwise.

    Training: ``batch_size_per_gpu`` samples per batch, drawn by an :class:`EpochSampler` whose order is
    a pure function of (``seed``, epoch, position) and split between ``world_size`` ranks, each sample
    loaded with its own seed (:class:`SeededDataset`): the batches and their augmentations do not depend
    on ``num_worker_per_gpu``, and resuming mid-epoch (``loader.sampler.set_epoch(epoch, start)``) gives
    the remaining batches exactly. ``drop_last``; persistent workers. Call ``set_epoch`` every epoch.
    Validation/test: batch 1 (images differ in size), in order, no workers.
    ``pin_memory``: default ``opt.pin_memory`` when CUDA is available.
    """
    pin = opt.pin_memory and torch.cuda.is_available() if pin_memory is None else pin_memory
    if not opt.is_train:
        return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0, pin_memory=pin, drop_last=False)
    seed = 0 if seed is None else seed
    sampler = EpochSampler(
        len(dataset),  # type: ignore[arg-type]
        seed=seed,
        shuffle=opt.use_shuffle,
        enlarge_ratio=opt.dataset_enlarge_ratio,
        rank=rank,
        world_size=world_size,
    )
    batch_size = opt.batch_size_per_gpu
    if sampler.num_samples < batch_size:
        raise ValueError(
            f"datasets.{opt.phase}: {sampler.num_samples} samples per process (dataset {len(dataset)} "  # type: ignore[arg-type]
            f"x dataset_enlarge_ratio {opt.dataset_enlarge_ratio}) is less than one batch of {batch_size}; "
            f"lower batch_size_per_gpu or raise dataset_enlarge_ratio"
        )
    workers = opt.num_worker_per_gpu
    return DataLoader(
        SeededDataset(dataset),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=pin,
        persistent_workers=workers > 0 and opt.persistent_workers,
        # A private generator: creating the epoch's iterator must not draw from the global RNG.
        generator=torch.Generator().manual_seed(seed),
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
