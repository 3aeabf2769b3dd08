"""Hostile files, made on the spot (nothing is stored): images that lie about their size or format, damaged
images, odd-but-valid images, checkpoints that lie, and the file-system oddities a reader can meet.

Each builder returns bytes (or makes a path) and is cheap: the largest is a 2000 x 2000 deflate bomb (4 MB
decoded); bigger claims are made by headers that declare them.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from esrgan.data.image import imencode

# Damage only decoding finds (the header and the file's end are intact): the header check before training
# (inspect_image_file) passes them, the reader refuses them.
DAMAGED_DATA = ("bad-crc.png", "bad-idat.png")


def rgb(h: int = 24, w: int = 32, seed: int = 0, dtype: type = np.uint8) -> np.ndarray:
    top = 256 if dtype == np.uint8 else 65536
    return np.random.default_rng(seed).integers(0, top, (h, w, 3), dtype=dtype)


def _chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` RGB with a few rows of data (tiny file, huge claim)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_bomb(side: int = 2000) -> bytes:
    """A valid grey PNG of ``side`` x ``side`` zeros: a few KB that decode to side**2 bytes."""
    comp = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    data = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def png_with_exif(img: np.ndarray, orientation: int) -> bytes:
    """A PNG with an eXIf chunk (PNG 1.5) holding an EXIF orientation, written by Pillow."""
    from PIL import Image

    im = Image.fromarray(img)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "PNG", exif=exif)
    return buf.getvalue()


def jpeg_header(width: int, height: int) -> bytes:
    """SOI, a baseline SOF declaring ``width`` x ``height`` (3 components), a scan header, a little data, EOI."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    sos = b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    seg = lambda marker, body: b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body  # noqa: E731
    return b"\xff\xd8" + seg(0xC0, sof) + seg(0xDA, sos) + b"\x00" * 32 + b"\xff\xd9"


def pillow_bytes(img: np.ndarray | None, fmt: str, mode: str | None = None, **save: object) -> bytes:
    from PIL import Image

    im = Image.fromarray(img if img is not None else rgb())
    if mode is not None:
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **save)
    return buf.getvalue()


def gif_claiming(width: int, height: int) -> bytes:
    """A small GIF whose logical screen (what Pillow and OpenCV size it by) is ``width`` x ``height``."""
    data = bytearray(pillow_bytes(rgb(8, 8), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(imencode(rgb(4, 4), ".bmp"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def tiff_claiming(width: int, height: int) -> bytes:
    """A hand-made grey TIFF whose first IFD declares ``width`` x ``height`` (one strip of 64 bytes)."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 8 + 4), (278, 4, 1, height), (279, 4, 1, 64)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", 8) + ifd + b"\0" * 64


def webp_claiming(width: int, height: int) -> bytes:
    """An extended (VP8X) WebP whose canvas is ``width`` x ``height`` around an 8 x 8 picture."""
    data = bytearray(pillow_bytes(rgb(8, 8), "WEBP", exif=b"Exif\0\0II*\0\x08\0\0\0\0\0"))
    assert data[12:16] == b"VP8X", "Pillow wrote a simple WebP; the canvas-size trick needs VP8X"
    data[24:30] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return bytes(data)


def radiance_hdr(width: int, height: int) -> bytes:
    """A Radiance HDR header declaring ``width`` x ``height`` (OpenCV decodes the format; no data follows)."""
    return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n" + f"-Y {height} +X {width}\n".encode() + b"\0" * 64


def pfm(width: int = 4, height: int = 3) -> bytes:
    return f"PF\n{width} {height}\n-1.0\n".encode() + np.zeros((height, width, 3), "<f4").tobytes()


def pam(width: int = 4, height: int = 3) -> bytes:
    head = f"P7\nWIDTH {width}\nHEIGHT {height}\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n".encode()
    return head + bytes(width * height * 3)


def float_tiff() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((6, 5), np.float32)).save(buf, "TIFF")
    return buf.getvalue()


def jpeg_with_stray_bytes() -> bytes:
    """A valid JPEG with garbage bytes between two segments (libjpeg skips them with a warning)."""
    data = imencode(rgb(16, 16), ".jpg")
    # after SOI and the first segment (APP0 or DQT): insert bytes that are not a marker
    (length,) = struct.unpack(">H", data[4:6])
    cut = 4 + length
    return data[:cut] + b"\x00\x13\x37" + data[cut:]


def _interlaced_png() -> bytes:
    """An Adam7-interlaced PNG (libpng's writer through OpenCV cannot; Pillow can with a hand-set flag)."""
    raw = rgb()
    h, w = raw.shape[:2]
    passes = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]
    data = b""
    for y0, x0, dy, dx in passes:
        sub = raw[y0::dy, x0::dx]
        if sub.size:
            data += b"".join(b"\0" + row.tobytes() for row in sub)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(data)) + _chunk(b"IEND", b"")


def _animated_gif() -> bytes:
    from PIL import Image

    frames = [Image.fromarray(rgb(seed=s)) for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=40)
    return buf.getvalue()


# name -> builder: files every reader must refuse with one ImageReadError naming them, without decoding a lie.
BAD_IMAGES: dict[str, Callable[[], bytes]] = {
    "empty.png": lambda: b"",
    "text.png": lambda: b"hello, I am not an image\n",
    "truncated.png": lambda: imencode(rgb(), ".png")[:-40],
    "half.jpg": lambda: (lambda d: d[: len(d) // 2])(imencode(rgb(64, 64), ".jpg")),
    "header-only.png": lambda: imencode(rgb(), ".png")[:33],
    "bad-crc.png": lambda: (lambda d: d[:50] + bytes([d[50] ^ 0xFF]) + d[51:])(imencode(rgb(), ".png")),
    "bad-idat.png": lambda: (lambda d: d[:45] + b"\x00" * 40 + d[85:])(imencode(rgb(), ".png")),
    "radiance.png": lambda: radiance_hdr(16000, 16000),
    "radiance-small.hdr": lambda: radiance_hdr(4, 4),
    "float.pfm": pfm,
    "rgb.pam": pam,
    "float.tif": float_tiff,
    "huge-header.png": lambda: png_header(20000, 20000),
    "huge-header.jpg": lambda: jpeg_header(65000, 65000),
    "huge-canvas.webp": lambda: webp_claiming(16000, 16000),
    "huge-bmp.bmp": lambda: bmp_claiming(30000, 30000),
    "huge-tiff.tif": lambda: tiff_claiming(100000, 100000),
    "huge-screen.gif": lambda: gif_claiming(65535, 65535),
    "zeros.png": lambda: b"\0" * 4096,
    "png-signature-only.png": lambda: b"\x89PNG\r\n\x1a\n",
    "jpeg-soi-only.jpg": lambda: b"\xff\xd8\xff",
    "riff-not-webp.webp": lambda: b"RIFF\x10\0\0\0WAVEfmt " + b"\0" * 16,
}

# name -> (builder, (height, width[, channels]) and dtype a reader must return)
ODD_IMAGES: dict[str, tuple[Callable[[], bytes], tuple[int, ...], type]] = {
    "deep.png": (lambda: imencode(rgb(dtype=np.uint16), ".png"), (24, 32, 3), np.uint16),
    "grey.png": (lambda: imencode(rgb()[:, :, 0], ".png"), (24, 32), np.uint8),
    "grey-alpha.png": (lambda: pillow_bytes(None, "PNG", "LA"), (24, 32, 4), np.uint8),
    "rgba.png": (lambda: imencode(np.dstack([rgb(), rgb()[:, :, :1]]), ".png"), (24, 32, 4), np.uint8),
    "palette.png": (lambda: pillow_bytes(None, "PNG", "P"), (24, 32, 3), np.uint8),
    "one-bit.png": (lambda: pillow_bytes(None, "PNG", "1"), (24, 32), np.uint8),
    "interlaced.png": (_interlaced_png, (24, 32, 3), np.uint8),
    "trailing-garbage.png": (lambda: imencode(rgb(), ".png") + b"appended junk" * 10, (24, 32, 3), np.uint8),
    "jpeg-named.png": (lambda: imencode(rgb(), ".jpg"), (24, 32, 3), np.uint8),
    "png-named.jpg": (lambda: imencode(rgb(), ".png"), (24, 32, 3), np.uint8),
    "stray-bytes.jpg": (jpeg_with_stray_bytes, (16, 16, 3), np.uint8),
    "progressive.jpg": (lambda: pillow_bytes(None, "JPEG", progressive=True), (24, 32, 3), np.uint8),
    "cmyk.jpg": (lambda: pillow_bytes(None, "JPEG", "CMYK"), (24, 32, 3), np.uint8),
    "rotated-exif.png": (lambda: png_with_exif(rgb(), 6), (32, 24, 3), np.uint8),
    "deep-grey.tif": (lambda: pillow_bytes(rgb(dtype=np.uint16)[:, :, 0], "TIFF"), (24, 32), np.uint16),
    "animated.gif": (_animated_gif, (24, 32, 4), np.uint8),  # OpenCV reads GIF as RGBA: the first frame
    "small.webp": (lambda: imencode(rgb(), ".webp", [64, 101]), (24, 32, 3), np.uint8),  # lossless
    "small.bmp": (lambda: imencode(rgb(), ".bmp"), (24, 32, 3), np.uint8),
    "one-pixel.png": (lambda: imencode(rgb(1, 1), ".png"), (1, 1, 3), np.uint8),
}


def write_all(folder: Path, files: dict[str, Callable[[], bytes]]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, build in files.items():
        (folder / name).write_bytes(build())
        out[name] = folder / name
    return out


def odd_paths(folder: Path) -> dict[str, Path]:
    """File-system oddities named like images: a folder, a FIFO, a dangling link, a link loop, an unreadable
    file (a link to /proc/self/mem: reading it fails with EIO even as root, which chmod 000 cannot do)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "folder.png").mkdir()
    os.mkfifo(folder / "fifo.png")
    (folder / "dangling.png").symlink_to(folder / "does-not-exist.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    (folder / "unreadable.png").symlink_to("/proc/self/mem")
    return {p.name: p for p in folder.iterdir()}
