"""Data: image I/O, datasets, loaders, Real-ESRGAN degradations and preparation.

Image I/O is imported eagerly (cheap); datasets, loaders and LMDB are resolved on first use,
so inference code does not pay for them. Colour conversion and MATLAB resizing are in
:mod:`esrgan.imageops`, below the metrics that use them.
"""

from __future__ import annotations

from esrgan.data.image import (
    ImageReadError,
    img2tensor,
    imread,
    imwrite,
    list_images,
    mod_crop,
    tensor2img,
)
from esrgan.utils.lazy import lazy_getattr

# public name -> module that defines it (imported on first access)
_LAZY = {
    "PairedImageDataset": "esrgan.data.paired_dataset",
    "SingleHRDataset": "esrgan.data.paired_dataset",
    "build_dataloader": "esrgan.data.loader",
    "build_prefetcher": "esrgan.data.loader",
    "CPUPrefetcher": "esrgan.data.loader",
    "CUDAPrefetcher": "esrgan.data.loader",
    "build_dataset": "esrgan.data.build",
    "make_demo_data": "esrgan.data.demo_data",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "ImageReadError",
    "img2tensor",
    "imread",
    "imwrite",
    "list_images",
    "mod_crop",
    "tensor2img",
    *_LAZY,
]
