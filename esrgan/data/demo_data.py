"""A small paired x4 dataset built from images that ship inside scikit-image (no download).

Layout under ``root`` (default ``datasets/demo``)::

    train/HR/<image>_s<NNN>.png               192x192 HR sub-images (crop 192, step 128, thresh 24)
    train/LR_bicubic/X4/<image>_s<NNN>x4.png  48x48 LR sub-images, cut from the bicubic LR of the whole image
    val/HR/<image>.png                        256x256 centre crops of the held-out images
    val/LR_bicubic/X4/<image>x4.png           64x64, MATLAB-bicubic x4 of the HR

LR names carry the ``x4`` suffix of the DIV2K/EDSR-benchmark packages; with
``filename_tmpl: '{}'`` the datasets pair them either way.
Train sources: astronaut, chelsea, rocket, hubble_deep_field (centre 512x512), coins (grey -> RGB).
Validation (held out): coffee, camera (grey -> RGB), immunohistochemistry.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from esrgan.data.image import imwrite, mod_crop, to_rgb
from esrgan.data.subimages import iter_subimages, subimage_name
from esrgan.imageops.imresize import imresize
from esrgan.utils.atomic import atomic_dir

logger = logging.getLogger("esrgan.data.demo_data")

DEMO_VERSION = 1
SCALE = 4
TRAIN_IMAGES = ("astronaut", "chelsea", "rocket", "hubble_deep_field", "coins")
VAL_IMAGES = ("coffee", "camera", "immunohistochemistry")
TRAIN_CROP, TRAIN_STEP, TRAIN_THRESH = 192, 128, 24
VAL_SIZE = 256
_MARKER = ".demo-complete.json"


def _centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    size_h, size_w = min(size, h), min(size, w)
    top, left = (h - size_h) // 2, (w - size_w) // 2
    return img[top : top + size_h, left : left + size_w, ...]


def _load(name: str) -> np.ndarray:
    from skimage import data

    loader: Callable[[], np.ndarray] = getattr(data, name)
    img = to_rgb(np.asarray(loader()))
    if img.dtype != np.uint8:
        raise TypeError(f"skimage.data.{name} is {img.dtype}; the demo expects uint8 images")
    if name == "hubble_deep_field":
        img = _centre_crop(img, 512)  # 872x1000 is mostly black sky at the edges
    return np.ascontiguousarray(img)


def _is_complete(root: Path) -> bool:
    marker = root / _MARKER
    try:
        return json.loads(marker.read_text()).get("version") == DEMO_VERSION
    except (OSError, ValueError):
        return False


def make_demo_data(root: str | os.PathLike[str] = "datasets/demo", overwrite: bool = False) -> Path:
    """Build (once) the demo dataset under ``root`` and return ``root``.

    An existing complete dataset is reused unless ``overwrite``; the folder is built next
    to ``root`` under a temporary name and renamed at the end, so an interrupted build
    never leaves a partial dataset that looks complete.
    """
    root = Path(root)
    if _is_complete(root) and not overwrite:
        logger.info("demo data already present: %s", root)
        return root
    if root.exists() and not overwrite and any(root.iterdir()):
        raise FileExistsError(f"{root}: exists but is not a complete demo dataset; pass --overwrite to rebuild it")
    with atomic_dir(root) as tmp:
        counts = _build(tmp)
        (tmp / _MARKER).write_text(json.dumps({"version": DEMO_VERSION, **counts}))
    logger.info("demo data: %d train / %d val pairs in %s", counts["train"], counts["val"], root)
    return root


def _build(out: Path) -> dict[str, int]:
    lr_dir = f"LR_bicubic/X{SCALE}"
    n_train = 0
    for name in TRAIN_IMAGES:
        hr = mod_crop(_load(name), SCALE)
        lr = imresize(hr, 1 / SCALE)
        hr_subs = iter_subimages(hr, TRAIN_CROP, TRAIN_STEP, TRAIN_THRESH)
        lr_subs = iter_subimages(lr, TRAIN_CROP // SCALE, TRAIN_STEP // SCALE, TRAIN_THRESH // SCALE)
        for (index, hr_sub), (_, lr_sub) in zip(hr_subs, lr_subs, strict=True):
            stem = subimage_name(name, index, "")
            imwrite(out / "train" / "HR" / f"{stem}.png", hr_sub)
            imwrite(out / "train" / lr_dir / f"{stem}x{SCALE}.png", lr_sub)
            n_train += 1
    for name in VAL_IMAGES:
        hr = mod_crop(_centre_crop(_load(name), VAL_SIZE), SCALE)
        imwrite(out / "val" / "HR" / f"{name}.png", hr)
        imwrite(out / "val" / lr_dir / f"{name}x{SCALE}.png", imresize(hr, 1 / SCALE))
    return {"train": n_train, "val": len(VAL_IMAGES)}
