"""Image files <-> numpy arrays <-> tensors.

Conventions (the only place channel order is converted):
- numpy images are HWC (or HW for grey), **RGB** (RGBA with alpha), uint8 or uint16,
  exactly as stored in the file;
- tensors are float32 CHW / NCHW in [0, 1], RGB.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from esrgan.utils.atomic import atomic_path

logger = logging.getLogger("esrgan.data.image")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")


class ImageReadError(ValueError):
    """An image file is missing, unreadable or truncated."""


class ImageTooLargeError(ImageReadError):
    """An image's header declares more pixels than the limit; it was not decoded."""


# Default pixel limit, checked from the file's header before decoding: a 1 MB PNG can declare 20000 x 20000
# pixels (1.2 GB decoded). 179 megapixels is Pillow's decompression-bomb threshold; large panoramas and
# 100 MP camera photos pass. ESRGAN_MAX_IMAGE_PIXELS overrides it (0 = no limit).
DEFAULT_MAX_PIXELS = 178_956_970
MAX_PIXELS_ENV = "ESRGAN_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The pixel limit in force: ``$ESRGAN_MAX_IMAGE_PIXELS`` if set (0 = none), else the default."""
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(float(value))
    except ValueError:
        raise ValueError(f"{MAX_PIXELS_ENV}={value!r}: expected a number of pixels (0 = no limit)") from None
    if limit < 0:
        raise ValueError(f"{MAX_PIXELS_ENV}={value!r}: must be >= 0 (0 = no limit)")
    return limit


# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they hold the image size.
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _exif_orientation_from_tiff(tiff: bytes | memoryview) -> int:
    """The Orientation tag (0x0112) of IFD0 in an EXIF/TIFF block; 1 when absent or unreadable."""
    order = bytes(tiff[:2])
    if len(tiff) < 8 or order not in (b"II", b"MM"):
        return 1
    end = "<" if order == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(end + "H", tiff[ifd : ifd + 2])
    for i in range(count):
        entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        if len(entry) < 12:
            break
        tag, typ = struct.unpack(end + "HH", entry[:4])
        if tag == 0x0112 and typ == 3:  # SHORT
            (value,) = struct.unpack(end + "H", entry[8:10])
            return value if 1 <= value <= 8 else 1
    return 1


def _jpeg_segments(data: bytes | memoryview) -> Iterator[tuple[int, int, bytes | memoryview]]:
    """(marker, position, body) of each JPEG segment up to the first scan (SOS, whose position is last).

    Stray bytes between segments are skipped to the next 0xFF, as libjpeg does ("extraneous bytes").
    """
    pos, stray = 2, 0
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            stray += 1
            if stray > 4096:  # not stray bytes any more: not a JPEG we can read
                return
            pos += 1
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01, 0x00) or 0xD0 <= marker <= 0xD7:  # no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        yield marker, pos, data[pos + 4 : pos + 2 + length]
        if marker in (0xDA, 0xD9):
            return
        pos += 2 + length


def _probe_jpeg(data: bytes | memoryview) -> tuple[int, int, int] | None:
    """(width, height, EXIF orientation) from the JPEG markers before the image data."""
    orientation = 1
    for marker, _, body in _jpeg_segments(data):
        if marker == 0xE1 and bytes(body[:6]) == b"Exif\0\0":
            orientation = _exif_orientation_from_tiff(body[6:])
        elif marker in _SOF_MARKERS and len(body) >= 5:
            height, width = struct.unpack(">HH", body[1:5])
            return width, height, orientation
    return None


def _jpeg_complete(data: bytes) -> bool:
    """Whether the main image's scan data reach an EOI marker (data appended after it, as in phones'
    motion photos, is allowed; an EXIF thumbnail's own EOI, before the scan, does not count)."""
    sos = next((pos for marker, pos, _ in _jpeg_segments(data) if marker == 0xDA), None)
    return sos is not None and data.find(b"\xff\xd9", sos) != -1


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _probe_png(data: bytes | memoryview) -> tuple[tuple[int, int, int], bool]:
    """((width, height, orientation), whether the chunks were read up to the image data).

    The orientation is in an eXIf chunk (PNG 1.5), which comes before the image data (IDAT); browsers
    and Pillow's ``exif_transpose`` honour it like a JPEG's.
    """
    width, height = struct.unpack(">II", data[16:24])
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag = bytes(data[pos + 4 : pos + 8])
        if tag in (b"IDAT", b"IEND"):
            return (width, height, 1), True
        if tag == b"eXIf":
            body = data[pos + 8 : pos + 8 + length]
            if len(body) < length:
                break
            body = body[6:] if bytes(body[:6]) == b"Exif\0\0" else body  # some writers keep the JPEG prefix
            return (width, height, _exif_orientation_from_tiff(body)), True
        pos += 12 + length
    return (width, height, 1), False


# Formats whose size Pillow reads from the header, by the signature OpenCV also goes by (so both read the
# same image): the format name Pillow must report for it. PNG and JPEG are read above.
_PILLOW_PROBED = (
    (lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP", "WEBP"),
    (lambda h: h[:2] == b"BM", "BMP"),
    (lambda h: h[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), "TIFF"),
    (lambda h: h[:1] == b"P" and h[1:2] in b"123456" and len(h) > 2, "PPM"),
    (lambda h: h[:6] in (b"GIF87a", b"GIF89a"), "GIF"),
    (lambda h: h[:12] == b"\0\0\0\x0cjP  \r\n\x87\n" or h[:4] == b"\xff\x4f\xff\x51", "JPEG2000"),
    (lambda h: h[4:8] == b"ftyp" and h[8:12] in (b"avif", b"avis"), "AVIF"),
    (lambda h: h[:4] == b"\x59\xa6\x6a\x95", "SUN"),
)
# What OpenCV also decodes but this project does not read (floating point, or no size before decoding).
_REFUSED_FORMATS = (
    (lambda h: h[:10] == b"#?RADIANCE" or h[:6] == b"#?RGBE", "a Radiance HDR (floating-point) image"),
    (lambda h: h[:2] in (b"PF", b"Pf"), "a PFM (floating-point) image"),
    (lambda h: h[:4] == b"\x76\x2f\x31\x01", "an OpenEXR (floating-point) image"),
    (lambda h: h[:2] == b"P7", "a PAM image"),
)
SUPPORTED_FORMATS = "PNG, JPEG, WebP, BMP, TIFF, PNM, GIF, JPEG 2000, AVIF or Sun raster"


def _probe(data: bytes | memoryview) -> tuple[tuple[int, int, int] | None, bool]:
    """(probe_image's answer, whether more of the file could change it)."""
    head = bytes(data[:32])
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and len(head) >= 24:
        probe, read_to_data = _probe_png(data)
        return probe, not read_to_data
    if head[:2] == b"\xff\xd8":
        probe = _probe_jpeg(data)
        return probe, probe is None
    fmt = next((name for match, name in _PILLOW_PROBED if match(head)), None)
    if fmt is None:
        return None, len(head) < 32
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check would refuse or warn before we can give our message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:
                width, height = im.size
                orientation = int(im.getexif().get(0x0112, 1) or 1)
    except Image.DecompressionBombError:
        return (2**31, 1, 1), False  # Pillow already knows it is over twice its own (our default) limit
    except Exception:  # a damaged header, or cut before its end: let more of the file (or nothing) tell
        return None, True
    return (width, height, orientation if 1 <= orientation <= 8 else 1), False


def probe_image(data: bytes | memoryview) -> tuple[int, int, int] | None:
    """(width, height, EXIF orientation 1..8) read from an encoded image's header, without decoding it.

    PNG and JPEG are read here (IHDR and eXIf; SOF and the EXIF APP1 segment); WebP, BMP, TIFF, PNM, GIF,
    JPEG 2000, AVIF and Sun raster through Pillow's lazy open, which reads only the header, and only when
    the file starts with the signature OpenCV will decode it by. None for anything else (or a damaged
    header): :func:`imdecode` then refuses to decode it, so no format escapes the pixel limit.
    """
    return _probe(data)[0]


def _unprobed_reason(data: bytes | memoryview) -> str:
    head = bytes(data[:16])
    kind = next((what for match, what in _REFUSED_FORMATS if match(head)), None)
    if kind is not None:
        return f"{kind}, not supported; expected an 8- or 16-bit {SUPPORTED_FORMATS} image"
    return f"truncated or not an image (not a {SUPPORTED_FORMATS} image, or its header is damaged)"


def _ends_complete(head: bytes, tail: bytes, size: int) -> bool:
    """Whether a file's last bytes show its format's end (a cut file lacks them); True if not knowable."""
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return tail.endswith(b"IEND\xaeB`\x82")
    if head[:2] == b"\xff\xd8":
        return b"\xff\xd9" in tail  # EOI (a few writers pad after it)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return int.from_bytes(head[4:8], "little") + 8 <= size
    if head[:2] == b"BM":
        declared = int.from_bytes(head[2:6], "little")
        return declared == 0 or declared <= size
    return True


def _png_reaches_iend(f: io.BufferedReader, size: int) -> bool:
    """Whether a PNG's chunks, followed from the start by their lengths (8 bytes read per chunk), reach IEND
    within the file: a cut file does not, one with data appended after IEND (which libpng ignores) does."""
    pos = 8
    while pos + 12 <= size:
        f.seek(pos)
        length, tag = struct.unpack(">I4s", f.read(8))
        if tag == b"IEND":
            return True
        pos += 12 + length
    return False


def _unsupported_pixels(head: bytes) -> str | None:
    """For a TIFF: what its header says the pixels are when they are not 8/16-bit (32-bit float or integer)."""
    if head[:4] not in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(head), formats=["TIFF"]) as im:
            mode = im.mode
    except Exception:
        return None
    if mode.startswith("F"):
        return "32-bit floating-point"
    if mode == "I" or mode.startswith("I;32"):  # "I;16..." is 16-bit, read as uint16
        return "32-bit integer"
    return None


def inspect_image_file(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of an image file as :func:`imread` would return it, without decoding it.

    Reads the header and the last bytes only: a truncated PNG/JPEG/WebP/BMP, an unreadable header or an
    image over the pixel limit is an :class:`ImageReadError` naming the file. Cheap enough to run over a
    whole training set before the first step.
    """
    path = Path(path)
    try:
        size = _regular_file_size(path)
        with open(path, "rb") as f:
            head = f.read(4096)  # PNG's IHDR is in the first 24 bytes, most JPEG frame headers in 4 KB
            f.seek(max(size - 32, 0))
            tail = f.read()
            probe, more_needed = _probe(head)
            for more in (65536, -1):  # a frame header (or eXIf) after large metadata (EXIF thumbnail, ICC)
                if not more_needed or size <= len(head):
                    break
                f.seek(0)
                head = f.read(more)
                probe, more_needed = _probe(head)
    except OSError as exc:
        raise ImageReadError(_os_reason(path, exc)) from None
    if probe is None:
        raise ImageReadError(f"{path}: {_unprobed_reason(head)} ({size} bytes)")
    complete = _ends_complete(head, tail, size) and not (head[:8] == _PNG_SIGNATURE and more_needed)
    if not complete and head[:2] == b"\xff\xd8":  # data after the JPEG's end? then the whole file
        with open(path, "rb") as f:
            complete = _jpeg_complete(f.read())
    if not complete and head[:8] == _PNG_SIGNATURE and not more_needed:  # data after IEND? walk the chunks
        with open(path, "rb") as f:
            complete = _png_reaches_iend(f, size)
    if not complete:
        raise ImageReadError(f"{path}: truncated ({size} bytes; the file ends before its image data does)")
    pixels = _unsupported_pixels(head)
    if pixels is not None:
        raise ImageReadError(f"{path}: {pixels} pixels, not supported; expected an 8- or 16-bit image")
    w, h, orientation = probe
    check_pixels(str(path), w, h, max_pixels)
    return (h, w) if orientation >= 5 else (w, h)


def _regular_file_size(path: Path) -> int:
    """The size of ``path``, refusing what is not a regular file (a folder, or a FIFO that would block the read)."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, socket or device)"
        raise ImageReadError(f"{path}: {kind}, not an image file")
    return st.st_size


def _os_reason(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{path}: image file not found"
    return f"{path}: cannot read image file ({exc.strerror or exc})"


def check_pixels(name: str, w: int, h: int, max_pixels: int | None = None) -> None:
    """Refuse (:class:`ImageTooLargeError`) an image of ``w`` x ``h`` over the pixel limit (``max_pixels``, default
    :func:`max_image_pixels`; 0 = none), before it is decoded: every reader goes through here, video frames too."""
    limit = max_image_pixels() if max_pixels is None else max_pixels
    if limit and w * h > limit:
        raise ImageTooLargeError(
            f"{name}: {w}x{h} = {w * h / 1e6:.0f} megapixels is over the limit of {limit / 1e6:.0f} megapixels; "
            f"not decoded (set {MAX_PIXELS_ENV} to raise it, 0 for no limit)"
        )


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an image as stored into the upright view that EXIF ``orientation`` (1..8) describes."""
    if orientation == 2:
        img = img[:, ::-1]
    elif orientation == 3:
        img = img[::-1, ::-1]
    elif orientation == 4:
        img = img[::-1]
    elif orientation == 5:
        img = img.swapaxes(0, 1)
    elif orientation == 6:
        img = img.swapaxes(0, 1)[:, ::-1]  # 90 degrees clockwise
    elif orientation == 7:
        img = img.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:
        img = img.swapaxes(0, 1)[::-1]  # 90 degrees counter-clockwise
    return np.ascontiguousarray(img)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Sorted image files in ``folder`` (by extension)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    pattern = "**/*" if recursive else "*"
    found = []
    for p in folder.glob(pattern):
        if not is_image_file(p):
            continue
        if p.is_file():
            found.append(p)
        elif p.is_symlink() and not p.exists():  # said, not silently dropped: the user counted it in
            logger.warning("%s: a link to %s, which does not exist; skipped", p, os.readlink(p))
    return sorted(found)


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


def imdecode(buffer: bytes | np.ndarray, name: str = "<bytes>", *, max_pixels: int | None = None) -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, ...) to an RGB(A)/grey array as stored, turned upright.

    ``name`` is used in the error message (a file path or an LMDB key). The size in the header is
    checked against ``max_pixels`` (default :func:`max_image_pixels`; 0 = no limit) before decoding.
    An EXIF orientation (photos from phones and cameras) is applied, as every image viewer does.
    """
    arr = np.frombuffer(buffer, dtype=np.uint8) if isinstance(buffer, bytes | bytearray) else buffer
    data = memoryview(np.ascontiguousarray(arr).reshape(-1))
    probe = probe_image(data)
    if probe is None:  # OpenCV would decode some of these (Radiance HDR, PFM) without a size check first
        if not arr.size:
            raise ImageReadError(f"{name}: cannot decode image data (0 bytes); empty, not an image")
        raise ImageReadError(f"{name}: cannot decode image data ({arr.size} bytes); {_unprobed_reason(data)}")
    check_pixels(name, probe[0], probe[1], max_pixels)
    try:
        img = cv2.imdecode(arr, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. a size OpenCV's own limits refuse
        raise ImageReadError(f"{name}: cannot decode image data ({exc.err or exc})") from None
    if img is None:
        raise ImageReadError(f"{name}: cannot decode image data ({arr.size} bytes); truncated or not an image")
    if img.dtype not in (np.uint8, np.uint16):  # e.g. a floating-point TIFF
        raise ImageReadError(f"{name}: {img.dtype} pixels, not supported; expected an 8- or 16-bit image")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if probe is not None and probe[2] != 1:
        img = apply_orientation(img, probe[2])
    return _to_rgb_order(img)


def imread(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as stored (HW grey, HWC RGB or HWC RGBA; uint8 or uint16), turned upright.

    ``max_pixels``: see :func:`imdecode`.
    """
    path = Path(path)
    limit = max_image_pixels() if max_pixels is None else max_pixels
    try:
        size = _regular_file_size(path)
        # Even uncompressed 16-bit RGBA at the pixel limit is smaller: a bigger file is not read into memory.
        if limit and size > 8 * limit + 2**26:
            raise ImageTooLargeError(f"{path}: {size / 1e9:.1f} GB is too large for an image within the pixel "
                                     f"limit of {limit / 1e6:.0f} megapixels; not read (set {MAX_PIXELS_ENV})")
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(_os_reason(path, exc)) from None
    return imdecode(data, name=str(path), max_pixels=max_pixels)


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
