"""A fixed-seed real-world LR set: HR images through Real-ESRGAN's degradation (``esrgan prepare degrade``).

Each HR image is mod-cropped to the scale and degraded whole, on its own (batch of one): its
kernels and every draw of the two rounds come from generators seeded by ``(seed, image name)``,
so an image's LR depends only on the seed, its name and the settings, not on the other images
or their order. Settings: the typed Real-ESRGAN options (top level: resize/noise/JPEG;
``datasets.train``: blur kernels), read from an option file by ``esrgan prepare degrade`` through the
option loader, or their defaults (the published x4plus recipe).
"""

from __future__ import annotations

import logging
import os
import zlib

import numpy as np
import torch

from esrgan.data.degradations import (
    DegradationRNG,
    DiffJPEG,
    blur_rounds,
    degradation_settings,
    degrade,
    draw_sample_kernels,
)
from esrgan.data.image import img2tensor, imread, imwrite, mod_crop, tensor2img, to_rgb
from esrgan.options.datasets import RealESRGANDatasetOptions
from esrgan.options.realesrgan import RealESRGANOptions

logger = logging.getLogger("esrgan.data.degrade_set")


def image_seed(seed: int, name: str) -> int:
    """The generators' seed of one image: the set's seed and the image's file name."""
    return (int(seed) % 2**31) * 2**32 + zlib.crc32(name.encode())


@torch.no_grad()
def degrade_image(hr: np.ndarray, name: str, seed: int, scale: int, real: RealESRGANOptions,
                  ds: RealESRGANDatasetOptions, device: torch.device | str = "cpu") -> np.ndarray:
    """The LR (uint8 RGB, ``shape // scale``) of one HR image (uint8/uint16 RGB), reproducibly from ``seed``."""
    rng = DegradationRNG(image_seed(seed, name), device)
    first, second = blur_rounds(ds)
    kernels = [torch.from_numpy(k).float()[None].to(device)
               for k in draw_sample_kernels(first, second, ds.final_sinc_prob, rng.py, rng.np)]
    x = img2tensor(mod_crop(to_rgb(hr), scale))[None].to(device)
    lq = degrade(x, *kernels, degradation_settings(real, scale), rng, DiffJPEG().to(device))
    return tensor2img(lq[0])


def preview_row(hr: np.ndarray, lr: np.ndarray, scale: int, size: int = 160) -> np.ndarray:
    """A centre ``size`` HR crop (8-bit RGB) beside the same region of the LR, enlarged by pixel repetition."""
    if hr.dtype != np.uint8:
        hr = (hr.astype(np.float64) / 257).round().astype(np.uint8)
    size = min(size, min(lr.shape[:2]) * scale) // scale * scale
    top = (lr.shape[0] - size // scale) // 2
    left = (lr.shape[1] - size // scale) // 2
    lr_crop = lr[top : top + size // scale, left : left + size // scale]
    hr_crop = hr[top * scale : top * scale + size, left * scale : left * scale + size]
    up = np.repeat(np.repeat(lr_crop, scale, axis=0), scale, axis=1)
    gap = np.full((size, 4, 3), 255, dtype=np.uint8)
    return np.concatenate([hr_crop, gap, up], axis=1)


def _stack_rows(rows: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Rows of different sizes one under the other on white, ``gap`` pixels apart."""
    width = max(r.shape[1] for r in rows)
    padded = []
    for r in rows:
        padded.append(np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(padded, axis=0)[:-gap]


def degrade_folder(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    seed: int,
    scale: int,
    real: RealESRGANOptions,
    blur: RealESRGANDatasetOptions,
    hr_output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    preview: str | os.PathLike[str] | None = None,
) -> int:
    """Degrade every image of ``input_dir`` into ``output_dir/<stem>.png`` with ``real`` (resize, noise, JPEG) and
    ``blur`` (the kernels of a ``RealESRGANDataset`` section); returns how many.

    ``hr_output`` also writes the mod-cropped HR images, so ``PairedImageDataset`` pairs them exactly.
    ``preview``: a PNG with, per image (up to 8), a centre HR crop beside the same region of its LR.
    """
    from tqdm import tqdm

    from esrgan.data.prepare import _input_images, _low_and_high_outputs

    if scale < 1:
        raise ValueError(f"--scale {scale}: expected an integer >= 1")
    images = _input_images(input_dir)
    out, hr_out = _low_and_high_outputs(output_dir, hr_output, overwrite)
    rows = []
    for path in tqdm(images, desc=f"degrade x{scale} (seed {seed})", unit="img"):
        hr = imread(path)
        lr = degrade_image(hr, path.name, seed, scale, real, blur)
        imwrite(out / f"{path.stem}.png", lr)
        if hr_out is not None:
            imwrite(hr_out / f"{path.stem}.png", mod_crop(hr, scale))
        if preview is not None and len(rows) < 8:
            rows.append(preview_row(to_rgb(hr), lr, scale))
    if preview is not None:
        imwrite(preview, _stack_rows(rows))
        logger.info("preview written to %s", preview)
    logger.info("%d degraded LR x%d images (seed %d) written to %s", len(images), scale, seed, out)
    return len(images)


__all__ = ["degrade_folder", "degrade_image", "image_seed"]
