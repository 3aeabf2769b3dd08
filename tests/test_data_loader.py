"""Loaders: the trainer's loader (seeded samples, enlarged/distributed sampling, batch sizes), prefetchers."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from esrgan.data.image import imwrite
from esrgan.data.loader import (
    CPUPrefetcher,
    CUDAPrefetcher,
    build_dataloader,
    build_prefetcher,
)
from esrgan.data.paired_dataset import PairedImageDataset
from esrgan.data.sampling import EpochSampler, SeededDataset
from esrgan.imageops.imresize import imresize
from esrgan.options.datasets import DatasetOptions


@pytest.fixture(scope="module")
def pair_dirs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    for i in range(6):
        hr = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
        imwrite(root / "HR" / f"{i}.png", hr)
        imwrite(root / "LR" / f"{i}.png", imresize(hr, 1 / 4))
    return root / "HR", root / "LR"


def _opt(pair_dirs, **kw) -> DatasetOptions:
    hr, lr = pair_dirs
    base = dict(dataroot_gt=str(hr), dataroot_lq=str(lr), gt_size=16, batch_size_per_gpu=2, num_worker_per_gpu=2)
    base.update(kw)
    return DatasetOptions(**base)


def _epochs(loader, n_epochs: int = 2) -> list[list[dict]]:
    out = []
    for epoch in range(n_epochs):
        loader.sampler.set_epoch(epoch)
        out.append(list(loader))
    return out


def _same(a: list[list[dict]], b: list[list[dict]]) -> bool:
    return all(
        x["gt_path"] == y["gt_path"] and torch.equal(x["gt"], y["gt"]) and torch.equal(x["lq"], y["lq"])
        for ea, eb in zip(a, b, strict=True)
        for x, y in zip(ea, eb, strict=True)
    )


def test_seeded_workers_give_the_same_batches_twice(pair_dirs):
    opt = _opt(pair_dirs, dataset_enlarge_ratio=2)
    ds = PairedImageDataset(opt)
    run1 = _epochs(build_dataloader(ds, opt, seed=123))
    run2 = _epochs(build_dataloader(ds, opt, seed=123))
    other = _epochs(build_dataloader(ds, opt, seed=124))
    assert len(run1[0]) == 6  # 6 images x ratio 2 / batch 2
    assert _same(run1, run2)
    assert not _same(run1, other)
    # A new epoch gives a new order and new crops.
    assert [b["gt_path"] for b in run1[0]] != [b["gt_path"] for b in run1[1]]
    # Alignment of each pair is checked in test_data.py; here the collated shapes, dtype and range.
    batch = run1[0][0]
    assert batch["gt"].shape == (2, 3, 16, 16) and batch["lq"].shape == (2, 3, 4, 4)
    assert batch["gt"].dtype == torch.float32 and batch["gt"].min() >= 0 and batch["gt"].max() <= 1


def test_enlarged_sampler_counts_and_partition():
    single = EpochSampler(10, enlarge_ratio=3, seed=0)
    single.set_epoch(0)
    indices = [i for i, _ in single]
    assert len(single) == len(indices) == 30
    assert np.bincount(indices).tolist() == [3] * 10  # each image exactly ratio times per epoch
    ranks = [EpochSampler(10, world_size=4, rank=r, enlarge_ratio=3, seed=7) for r in range(4)]
    shares = [[i for i, _ in s] for s in ranks]
    assert [len(s) for s in shares] == [8, 8, 8, 8]  # ceil(30 / 4), padded like DistributedSampler
    everything = [i for share in shares for i in share]
    # 30 positions over the dataset 3 times, padded to 32 by wrapping around: two images come 4 times
    assert sorted(np.bincount(everything).tolist()) == [3] * 8 + [4, 4]
    assert len(set(map(tuple, shares))) == 4
    single.set_epoch(1)
    assert [i for i, _ in single] != indices
    assert [i for i, _ in EpochSampler(10, seed=0, shuffle=False)] == list(range(10))


def test_dist_loader_splits_the_data_between_ranks(pair_dirs):
    opt = _opt(pair_dirs, num_worker_per_gpu=0, batch_size_per_gpu=1)
    ds = PairedImageDataset(opt)
    loaders = [build_dataloader(ds, opt, rank=r, world_size=2, seed=1) for r in range(2)]
    assert all(isinstance(ld.sampler, EpochSampler) for ld in loaders)
    assert [ld.batch_size for ld in loaders] == [1, 1]  # per process, not times num_gpu
    paths = [[b["gt_path"][0] for b in ld] for ld in loaders]
    assert len(paths[0]) == len(paths[1]) == 3
    assert sorted(paths[0] + paths[1]) == sorted(str(p) for p in Path(pair_dirs[0]).iterdir())


def test_validation_loader_in_order_batch_one(pair_dirs):
    opt = _opt(pair_dirs, phase="val", gt_size=None)
    loader = build_dataloader(PairedImageDataset(opt), opt, seed=0)
    assert loader.batch_size == 1 and loader.num_workers == 0 and not loader.drop_last
    batches = list(loader)
    assert [Path(b["gt_path"][0]).name for b in batches] == [f"{i}.png" for i in range(6)]
    assert batches[0]["gt"].shape == (1, 3, 32, 40)


def test_too_few_samples_for_one_batch(pair_dirs):
    opt = _opt(pair_dirs, batch_size_per_gpu=7)
    with pytest.raises(ValueError, match=r"6 samples per process .* less than one batch of 7"):
        build_dataloader(PairedImageDataset(opt), opt)


def test_cpu_prefetcher_next_reset_and_end(pair_dirs):
    opt = _opt(pair_dirs, num_worker_per_gpu=0, use_shuffle=False)
    loader = build_dataloader(PairedImageDataset(opt), opt)
    prefetcher = CPUPrefetcher(loader)
    first = prefetcher.next()
    assert first is not None and first["gt"].shape == (2, 3, 16, 16)
    assert prefetcher.next() is not None and prefetcher.next() is not None
    assert prefetcher.next() is None  # 3 batches per epoch
    prefetcher.reset()
    assert prefetcher.next()["gt_path"] == first["gt_path"]
    assert len(list(CPUPrefetcher(loader, device="cpu"))) == 3


def test_prefetcher_choice_and_cuda_fallback(pair_dirs, caplog):
    opt = _opt(pair_dirs, num_worker_per_gpu=0, prefetch_mode="cuda")
    loader = build_dataloader(PairedImageDataset(opt), opt)
    with caplog.at_level(logging.WARNING, logger="esrgan.data.loader"):
        prefetcher = build_prefetcher(loader, opt, device="cpu")
    assert isinstance(prefetcher, CPUPrefetcher)
    assert "prefetch_mode cuda but device is cpu" in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_prefetcher_needs_cuda(pair_dirs):
    opt = _opt(pair_dirs, num_worker_per_gpu=0)
    with pytest.raises(RuntimeError, match="CUDAPrefetcher needs a CUDA device"):
        CUDAPrefetcher(build_dataloader(PairedImageDataset(opt), opt))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_prefetcher_delivers_the_same_batches_on_the_gpu(pair_dirs):
    opt = _opt(pair_dirs, num_worker_per_gpu=2, prefetch_mode="cuda", pin_memory=True)
    ds = PairedImageDataset(opt)
    reference = list(build_dataloader(ds, opt, seed=9))
    prefetcher = build_prefetcher(build_dataloader(ds, opt, seed=9), opt, device="cuda")
    assert isinstance(prefetcher, CUDAPrefetcher)
    got = list(prefetcher)
    assert len(got) == len(reference)
    for a, b in zip(got, reference, strict=True):
        assert a["gt"].is_cuda and a["lq"].is_cuda
        assert torch.equal(a["gt"].cpu(), b["gt"]) and a["gt_path"] == b["gt_path"]
    prefetcher.reset()
    assert torch.equal(prefetcher.next()["lq"].cpu(), reference[0]["lq"])


def test_worker_options_reach_the_dataloader(pair_dirs):
    opt = _opt(pair_dirs, num_worker_per_gpu=2, batch_size_per_gpu=2, pin_memory=True)
    loader = build_dataloader(PairedImageDataset(opt), opt, seed=0)
    assert loader.num_workers == 2 and loader.persistent_workers and loader.drop_last
    # every sample is loaded with its own seed, in a worker or not (same batches twice: test above)
    assert isinstance(loader.dataset, SeededDataset) and isinstance(loader.sampler, EpochSampler)
    assert loader.pin_memory == torch.cuda.is_available()  # pinned memory only where a CUDA copy can use it
    opt = _opt(pair_dirs, num_worker_per_gpu=2, persistent_workers=False, pin_memory=False)
    loader = build_dataloader(PairedImageDataset(opt), opt, seed=0)
    assert not loader.persistent_workers and not loader.pin_memory
