"""Data: image I/O, MATLAB-compatible resizing, paired datasets, loaders and preparation.

Image I/O and resizing are imported eagerly (cheap); datasets, loaders and LMDB
are resolved on first use, so inference code does not pay for them.
"""

from __future__ import annotations

from esrgan.data.color import rgb2ycbcr, rgb2ycbcr_torch
from esrgan.data.image import (
    ImageReadError,
    img2tensor,
    imread,
    imwrite,
    list_images,
    mod_crop,
    tensor2img,
)

# Eager on purpose: the submodule ``imresize`` shares the function's name, and importing the
# submodule (from anywhere) sets ``esrgan.data.imresize`` to the module, shadowing a lazy lookup.
from esrgan.data.imresize import imresize, imresize_torch
from esrgan.utils.lazy import lazy_getattr

# public name -> module that defines it (imported on first access)
_LAZY = {
    "PairedImageDataset": "esrgan.data.paired_dataset",
    "SingleHRDataset": "esrgan.data.paired_dataset",
    "build_dataloader": "esrgan.data.loader",
    "build_prefetcher": "esrgan.data.loader",
    "CPUPrefetcher": "esrgan.data.loader",
    "CUDAPrefetcher": "esrgan.data.loader",
    "build_dataset": "esrgan.data.paired_dataset",
    "DatasetOptions": "esrgan.options.datasets",
    "make_demo_data": "esrgan.data.demo_data",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "ImageReadError",
    "img2tensor",
    "imread",
    "imresize",
    "imresize_torch",
    "imwrite",
    "list_images",
    "mod_crop",
    "rgb2ycbcr",
    "rgb2ycbcr_torch",
    "tensor2img",
    *_LAZY,
]
