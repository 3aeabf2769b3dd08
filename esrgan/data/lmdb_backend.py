"""BasicSR-compatible LMDB image stores: read lazily per process, write atomically, verify.

Layout of ``<name>.lmdb/``: LMDB's ``data.mdb``/``lock.mdb`` plus ``meta_info.txt`` with one
line per image, ``<key>.png (<h>,<w>,<c>) <compression level>``; the key is the file name
without its extension and the value is the PNG-encoded image (BGR order inside the PNG,
as OpenCV writes it, so BasicSR reads our LMDBs and we read theirs).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from esrgan.data.image import ImageReadError, imdecode
from esrgan.utils.atomic import atomic_dir

logger = logging.getLogger("esrgan.data.lmdb")

META_INFO = "meta_info.txt"
_REBUILD = "rebuild it with 'esrgan prepare create-lmdb'"


class LmdbError(ValueError):
    """An LMDB that cannot be read: empty, truncated or corrupted data.mdb, or a failed read."""


class LmdbKeyError(LmdbError, KeyError):
    """A key listed in ``meta_info.txt`` is not in the database."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# LMDB's data.mdb starts with two meta pages (LMDB 0.9, 64-bit): a 16-byte page header, then
# magic u32, version u32, address, map size, two 48-byte database records (the first one's first
# u32 is the page size), the last page number used and the transaction id. The current meta is
# the one with the higher transaction id.
_LMDB_MAGIC = 0xBEEFC0DE
_META = struct.Struct("<II8xQ")  # magic, version, map size (at byte 16 of the page)


def _read_meta(data: bytes) -> tuple[int, int, int] | None:
    """(page size, last page, txnid) from one meta page, or None if it is not one."""
    if len(data) < 152:
        return None
    magic, version, _ = _META.unpack_from(data, 16)
    if magic != _LMDB_MAGIC or version != 1:
        return None
    (psize,) = struct.unpack_from("<I", data, 40)
    last_pg, txnid = struct.unpack_from("<QQ", data, 136)
    return psize, last_pg, txnid


def check_data_file(lmdb_path: str | os.PathLike[str]) -> None:
    """Check ``data.mdb`` against its own header before it is memory-mapped.

    Reading a mapped page past the end of a truncated file kills the process with SIGBUS; an empty or
    corrupted file makes LMDB fail deep inside a read. Each is one ``LmdbError`` naming the LMDB here.
    """
    path = Path(lmdb_path)
    data = path / "data.mdb"
    size = data.stat().st_size
    if size == 0:
        raise LmdbError(f"{path}: data.mdb is empty (0 bytes), the LMDB was never written completely; {_REBUILD}")
    with open(data, "rb") as f:
        first = f.read(4096)
        meta0 = _read_meta(first)
        if meta0 is None or meta0[0] < 512 or meta0[0] & (meta0[0] - 1):
            raise LmdbError(f"{path}: data.mdb is not an LMDB data file or its header is corrupted; {_REBUILD}")
        psize = meta0[0]
        f.seek(psize)
        meta1 = _read_meta(f.read(152))
    current = meta0 if meta1 is None or meta1[2] < meta0[2] else meta1
    needed = (current[1] + 1) * psize
    if size < needed:
        raise LmdbError(
            f"{path}: data.mdb is truncated: {size} bytes, but its header says the database fills {needed} "
            f"bytes ({current[1] + 1} pages of {psize}); an interrupted copy or download? {_REBUILD}"
        )
_META_LINE = re.compile(r"^(?P<name>\S+)\s+\((?P<shape>\s*\d+\s*(?:,\s*\d+\s*){1,2})\)(?:\s+(?P<level>-?\d+))?\s*$")


@dataclass(frozen=True)
class MetaEntry:
    """One line of ``meta_info.txt``."""

    name: str  # file name as recorded, e.g. "0001_s001.png"
    key: str  # LMDB key: the name without extension
    shape: tuple[int, int, int]  # (h, w, c)
    compression: int | None = None

    def line(self) -> str:
        h, w, c = self.shape
        level = "" if self.compression is None else f" {self.compression}"
        return f"{self.name} ({h},{w},{c}){level}"


def read_meta_info(lmdb_path: str | os.PathLike[str]) -> list[MetaEntry]:
    """Parse ``<lmdb_path>/meta_info.txt``; errors name the file and line."""
    lmdb_path = Path(lmdb_path)
    meta = lmdb_path / META_INFO
    if not lmdb_path.is_dir():
        raise FileNotFoundError(f"LMDB not found: {lmdb_path} (expected a folder with data.mdb and {META_INFO})")
    if not meta.is_file():
        raise FileNotFoundError(
            f"{meta}: meta-info file missing; every LMDB needs one line per image "
            f"'name.png (h,w,c) compression' (create it with 'esrgan prepare create-lmdb')"
        )
    entries = []
    for number, raw in enumerate(meta.read_text().splitlines(), 1):
        if not raw.strip():
            continue
        match = _META_LINE.match(raw.strip())
        if not match:
            raise ValueError(f"{meta}:{number}: cannot parse {raw!r}; expected 'name.png (h,w,c) compression'")
        dims = tuple(int(v) for v in match["shape"].split(","))
        shape = (dims[0], dims[1], dims[2] if len(dims) == 3 else 1)
        level = match["level"]
        name = match["name"]
        entries.append(MetaEntry(name, os.path.splitext(name)[0], shape, None if level is None else int(level)))
    if not entries:
        raise ValueError(f"{meta}: meta-info file lists no images")
    return entries


# resolved path -> (pid that opened it, environment). One handle per LMDB and process: py-lmdb
# refuses to open the same files twice in a process (LMDB's locks are per process and file).
_ENVS: dict[str, tuple[int, Any]] = {}


def _open_env(key: str) -> Any:
    pid = os.getpid()
    entry = _ENVS.get(key)
    if entry is not None:
        owner, env = entry
        if owner == pid:
            return env
        # Inherited through fork (a DataLoader worker): LMDB handles must not cross fork, and
        # py-lmdb would refuse a new open while this copy is registered. Closing the child's
        # copy of a read-only, lock-free environment leaves the parent's untouched.
        with contextlib.suppress(Exception):
            env.close()
    import lmdb  # imported here: inference code never pays for it

    # readonly + lock=False: many readers, no writer; readahead off helps random access.
    env = lmdb.open(key, readonly=True, lock=False, readahead=False, meminit=False)
    _ENVS[key] = (pid, env)
    return env


def _close_env(key: str) -> None:
    entry = _ENVS.pop(key, None)
    if entry is not None and entry[0] == os.getpid():
        entry[1].close()


class LmdbReader:
    """Read-only access to one LMDB, opened on first use in each process.

    The handle is never pickled and never opened in ``__init__``: a DataLoader worker or
    DDP process opens its own on its first read. Readers of the same LMDB in one process
    share one handle.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(
                f"{self.path}: LMDB not found; build it with 'esrgan prepare create-lmdb' (see datasets/README.md)"
            )
        if not (self.path / "data.mdb").is_file():
            raise FileNotFoundError(f"{self.path}: not an LMDB (data.mdb missing)")
        check_data_file(self.path)
        self._key = str(self.path.resolve())
        self._warned_resize = False

    @property
    def is_open(self) -> bool:
        entry = _ENVS.get(self._key)
        return entry is not None and entry[0] == os.getpid()

    @property
    def env(self) -> Any:
        return _open_env(self._key)

    def get(self, key: str) -> bytes:
        import lmdb

        for attempt in range(2):
            try:
                with self.env.begin(write=False) as txn:
                    value = txn.get(key.encode("ascii"))
                break
            except lmdb.MapResizedError:
                # Another process grew the database past our map: adopt its new size (LMDB's documented
                # way), once, and say so: a training set that changes under a run is worth knowing about.
                if attempt:
                    raise LmdbError(f"{self.path}[{key}]: the LMDB keeps growing while it is read") from None
                if not self._warned_resize:
                    logger.warning("%s: the LMDB grew while being read (is something writing to it?)", self.path)
                    self._warned_resize = True
                self.env.set_mapsize(0)
            except lmdb.Error as exc:
                raise LmdbError(
                    f"{self.path}[{key}]: cannot read the LMDB ({type(exc).__name__}: {exc}); "
                    f"was it changed while being read? {_REBUILD}"
                ) from None
        if value is None:
            raise LmdbKeyError(f"{self.path}: key {key!r} listed in {META_INFO} but not in the database")
        return bytes(value)

    def read_image(self, key: str) -> np.ndarray:
        return imdecode(self.get(key), name=f"{self.path}[{key}]")

    def keys(self) -> list[str]:
        with self.env.begin(write=False) as txn:
            return [k.decode("ascii") for k in txn.cursor().iternext(keys=True, values=False)]

    def check_keys(self, wanted: Iterable[str]) -> None:
        """Every key of ``wanted`` (``meta_info.txt``'s) is in the database; reads keys only, no values."""
        present = set(self.keys())
        missing = [k for k in wanted if k not in present]
        if missing:
            more = f" ({len(missing)} keys missing in all)" if len(missing) > 1 else ""
            raise LmdbKeyError(f"{self.path}: key {missing[0]!r} listed in {META_INFO} is not in data.mdb{more}")

    def close(self) -> None:
        """Close this process's handle (shared by all readers of this LMDB; they reopen on next use)."""
        _close_env(self._key)


def png_params(level: int) -> list[int]:
    """OpenCV PNG encoder settings for LMDB values at zlib ``level`` (0..9), chosen for decode speed.

    Training reads every value many times, so decoding is what costs. OpenCV's adaptive
    filtering picks Paeth for most photo rows, whose un-filtering dominates the decode; the Up
    filter with zlib's RLE strategy gives the same size as ``extract-subimages``' level-3
    folder and decodes ~1.5x faster (``benchmarks/bench_data.py``). Level 0 stores the rows
    unfiltered (a filter would only cost time there): ~7x faster to decode, ~1.9x the size.
    Any PNG reader, BasicSR's included, reads all of these.
    """
    import cv2

    if not 0 <= level <= 9:
        raise ValueError(f"PNG compression level {level}: expected 0..9")
    if level == 0:
        return [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    return [
        cv2.IMWRITE_PNG_COMPRESSION, level,
        cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP,
        cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
    ]  # fmt: skip


def estimate_map_size(raw_bytes: int) -> int:
    """LMDB map size for images totalling ``raw_bytes`` decoded: PNG never exceeds raw by much.

    PNG adds one filter byte per row and chunk headers; 1.2x + 16 MiB covers that plus the
    B-tree pages. On Linux the map is sparse, so over-estimating costs address space only.
    """
    return int(math.ceil((raw_bytes * 1.2 + (16 << 20)) / 4096) * 4096)


def write_lmdb(
    items: Iterable[tuple[str, bytes, tuple[int, int, int]]],
    target: str | os.PathLike[str],
    map_size: int,
    compress_level: int,
    *,
    overwrite: bool = False,
    commit_every: int = 1000,
) -> list[MetaEntry]:
    """Write ``(key, png_bytes, (h, w, c))`` items to a new LMDB at ``target``, atomically.

    Everything goes to a hidden temporary folder next to the target, ``meta_info.txt``
    last; only then is the folder renamed to ``target``. An interrupted run leaves the
    temporary folder (removed here on Python exceptions) and never a complete-looking LMDB.
    """
    import lmdb

    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: already exists; pass --overwrite to replace it")
    entries: list[MetaEntry] = []
    with atomic_dir(target) as tmp:
        try:
            env = lmdb.open(str(tmp), map_size=map_size, meminit=False, map_async=True)
        except lmdb.Error as exc:  # e.g. "File too large" (a file-size limit), "No space left on device"
            raise LmdbError(f"{target}: cannot create the LMDB: {_lmdb_reason(exc)}") from None
        try:
            seen: set[str] = set()
            batch: list[tuple[bytes, bytes]] = []
            batch_bytes = 0
            for key, value, shape in items:
                if key in seen:
                    raise ValueError(f"duplicate LMDB key {key!r}: two input images share this name without extension")
                seen.add(key)
                batch.append((key.encode("ascii"), value))
                batch_bytes += len(value)
                entries.append(MetaEntry(f"{key}.png", key, shape, compress_level))
                if len(batch) >= commit_every or batch_bytes >= _COMMIT_BYTES:
                    _commit(env, batch)
                    batch, batch_bytes = [], 0
            _commit(env, batch)
            env.sync(True)
        except lmdb.Error as exc:
            raise LmdbError(f"{target}: cannot write the LMDB: {_lmdb_reason(exc)}") from None
        finally:
            env.close()
        (tmp / META_INFO).write_text("".join(e.line() + "\n" for e in entries))
        _close_env(str(target.resolve()))  # a reader of the old files would keep seeing them
    return entries


_COMMIT_BYTES = 64 << 20


def _lmdb_reason(exc: BaseException) -> str:
    """lmdb's message without the temporary folder's name it starts with (``'.x.tmp-ab12: File too large'``)."""
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text and ".tmp-" in text.split(": ", 1)[0] else text


def _commit(env: Any, batch: list[tuple[bytes, bytes]]) -> None:
    """Write ``batch`` in one transaction, doubling the map size while it does not fit."""
    import lmdb

    while True:
        txn = env.begin(write=True)
        try:
            for key, value in batch:
                txn.put(key, value)
            txn.commit()
            return
        except lmdb.MapFullError:
            # The estimate was short (e.g. incompressible images); a full map aborts the transaction.
            txn.abort()
            env.set_mapsize(env.info()["map_size"] * 2)
        except BaseException:
            txn.abort()
            raise


def iter_verify(lmdb_path: str | os.PathLike[str]) -> Iterator[tuple[MetaEntry, str | None]]:
    """Yield each meta-info entry with ``None`` if its value decodes to the recorded shape, else the error."""
    entries = read_meta_info(lmdb_path)
    reader = LmdbReader(lmdb_path)
    try:
        for entry in entries:
            try:
                img = reader.read_image(entry.key)
            except (LmdbError, ImageReadError) as exc:
                yield entry, str(exc)
                continue
            shape = img.shape if img.ndim == 3 else (*img.shape, 1)
            if tuple(shape) != entry.shape:
                yield entry, (
                    f"{Path(lmdb_path)}[{entry.key}]: decodes to shape ({shape[0]},{shape[1]},{shape[2]}) "
                    f"but {META_INFO} records ({entry.shape[0]},{entry.shape[1]},{entry.shape[2]})"
                )
            else:
                yield entry, None
    finally:
        with contextlib.suppress(Exception):
            reader.close()
