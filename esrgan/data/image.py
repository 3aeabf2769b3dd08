"""Image files <-> numpy arrays <-> tensors.

Conventions (the only place channel order is converted):
- numpy images are HWC (or HW for grey), **RGB** (RGBA with alpha), uint8 or uint16,
  exactly as stored in the file;
- tensors are float32 CHW / NCHW in [0, 1], RGB.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from esrgan.utils.atomic import atomic_path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")


class ImageReadError(ValueError):
    """An image file is missing, unreadable or truncated."""


def is_image_file(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Sorted image files in ``folder`` (by extension)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and is_image_file(p))


def _to_rgb_order(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def _to_bgr_order(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    return img


def imdecode(buffer: bytes | np.ndarray, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, ...) to an RGB(A)/grey array as stored.

    ``name`` is used in the error message (a file path or an LMDB key).
    """
    arr = np.frombuffer(buffer, dtype=np.uint8) if isinstance(buffer, bytes | bytearray) else buffer
    img = cv2.imdecode(arr, cv2.IMREAD_UNCHANGED) if arr.size else None
    if img is None:
        raise ImageReadError(f"{name}: cannot decode image data ({arr.size} bytes); truncated or not an image")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return _to_rgb_order(img)


def imread(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as stored: HW grey, HWC RGB or HWC RGBA; uint8 or uint16."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"{path}: image file not found") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read image file ({exc})") from exc
    return imdecode(data, name=str(path))


def imencode(img: np.ndarray, ext: str = ".png", params: list[int] | None = None) -> bytes:
    """Encode an RGB(A)/grey array to bytes in the format of ``ext``."""
    try:
        ok, buf = cv2.imencode(ext, _to_bgr_order(np.ascontiguousarray(img)), params or [])
    except cv2.error:  # e.g. a float64 array: OpenCV raises instead of returning False
        ok = False
    if not ok:
        raise ValueError(f"cannot encode image of shape {img.shape} and dtype {img.dtype} as {ext}")
    return buf.tobytes()


def imwrite(path: str | os.PathLike[str], img: np.ndarray, params: list[int] | None = None) -> None:
    """Write an RGB(A)/grey array atomically; the format follows the file extension."""
    path = Path(path)
    data = imencode(img, path.suffix.lower() or ".png", params)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def to_rgb(img: np.ndarray) -> np.ndarray:
    """Grey -> RGB by replication, RGBA -> RGB by dropping alpha, RGB unchanged."""
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[2] == 4:
        return img[:, :, :3]
    return img


def max_value(dtype: np.dtype) -> float:
    """Full-scale value of an integer image dtype (255 for uint8, 65535 for uint16)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    raise TypeError(f"expected a uint8 or uint16 image, got dtype {dtype}")


def img2tensor(img: np.ndarray) -> torch.Tensor:
    """uint8/uint16 HWC (or HW) -> float32 CHW tensor in [0, 1], channels as in the array."""
    scale = max_value(img.dtype)
    if img.ndim == 2:
        img = img[:, :, None]
    tensor = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()
    return tensor.div_(scale)


def tensor2img(tensor: torch.Tensor, dtype: type | np.dtype = np.uint8) -> np.ndarray:
    """Float CHW (or 1CHW) tensor in [0, 1] -> HWC (HW if one channel) array, clipped and rounded."""
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"tensor2img takes one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    if tensor.ndim != 3:
        raise ValueError(f"expected a CHW tensor, got shape {tuple(tensor.shape)}")
    scale = max_value(np.dtype(dtype))
    # clamp out of place: detach() and float() share the caller's storage, which must not change.
    arr = tensor.detach().float().clamp(0, 1).mul_(scale).round_().cpu().numpy().astype(dtype)
    arr = arr.transpose(1, 2, 0)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so height and width are multiples of ``scale`` (MATLAB ``modcrop``)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale, ...]
