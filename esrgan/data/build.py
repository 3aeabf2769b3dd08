"""The dataset table, ``type`` name -> class, above the dataset modules it names.

A new dataset type is a class in its own module plus an entry here (and its name in
``esrgan.options.datasets.DATASET_TYPES``, which the option loader checks at load time).
"""

from __future__ import annotations

import logging

from torch.utils.data import Dataset

from esrgan.data.paired_dataset import PairedImageDataset, SingleHRDataset
from esrgan.data.realesrgan_dataset import RealESRGANDataset, RealESRGANPairedDataset
from esrgan.options.datasets import DatasetOptions

logger = logging.getLogger("esrgan.data.dataset")

DATASETS: dict[str, type[Dataset]] = {
    "PairedImageDataset": PairedImageDataset,
    "SingleHRDataset": SingleHRDataset,
    "RealESRGANDataset": RealESRGANDataset,
    "RealESRGANPairedDataset": RealESRGANPairedDataset,
}


def build_dataset(opt: DatasetOptions) -> Dataset:
    """The dataset named by ``opt.type`` (validated at load), built from its options."""
    dataset = DATASETS[opt.type](opt)
    logger.info("dataset %s (%s, %s): %d images", opt.name, opt.type, opt.io_backend.type, len(dataset))
    return dataset


__all__ = ["DATASETS", "build_dataset"]
