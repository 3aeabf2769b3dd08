"""Atomic file writes: a reader never sees a half-written file.

Everything we write that a user could mistake for a finished result
(checkpoints, images, videos, LMDBs, tables) goes through here: the data is
written to a temporary name in the same folder and renamed over the target
only once it is complete. ``os.replace`` is atomic on POSIX and Windows when
source and target are on the same file system, which the same folder ensures.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any threads write files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


logger = logging.getLogger("esrgan")

# Hidden temporaries of atomic_path / atomic_dir: ".<name>.tmp-<8 random chars>..." (and ".old-" folders).
_TEMP_RE = re.compile(r"^\..+\.(tmp|old)-[a-z0-9_]{8}")


class DiskFullError(OSError):
    """The file system filled up while writing ``file``; the target was left as it was."""

    def __init__(self, folder: Path, file: str) -> None:
        super().__init__(errno.ENOSPC, f"no space left on {folder} while saving {file}")
        self.folder, self.file = folder, file

    def __str__(self) -> str:
        return self.strerror or ""


def _is_disk_full(exc: BaseException, folder: Path) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    # torch.save reports a full disk as a RuntimeError from its zip writer ("unexpected pos ...");
    # judge by the free space left (the partial temporary is still there, so a full disk reads ~0).
    if isinstance(exc, RuntimeError):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(folder).free < 64 * 1024
    return False


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the hidden temporaries a killed writer left under ``folder`` (recursively); return them.

    Call it only while no other process writes there (the trainer does, holding the experiment lock).
    """
    found = [p for p in Path(folder).rglob(".*") if _TEMP_RE.match(p.name)]
    for p in found:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    if found:
        logger.info("removed %d temporary file(s) left by an interrupted save in %s", len(found), folder)
    return found


def _temp_stem(target: Path, suffix: str) -> str:
    """The stem in ``atomic_path``'s temporary name for ``target``: shortened so that a target with a long (legal)
    name still gets a temporary name within the file system's 255 bytes."""
    room = 255 - len(b".tmp-") - 1 - 8 - len(suffix.encode())
    return target.stem.encode()[:room].decode(errors="ignore")


def remove_stale_temporaries_of(targets: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Delete the hidden temporaries a killed writer left for these files (``atomic_path``'s
    ``.<stem>.tmp-<8 chars><suffix>`` beside each); return them. Call it only while nothing else writes them
    (the command that owns those outputs, before it starts)."""
    found = []
    for target in map(Path, targets):
        if not target.parent.is_dir():
            continue
        stem = _temp_stem(target, target.suffix)
        name = re.compile(rf"^\.{re.escape(stem)}\.tmp-[a-z0-9_]{{8}}{re.escape(target.suffix)}$")
        found += [p for p in target.parent.glob(f".{glob.escape(stem)}.tmp-*") if name.match(p.name)]
    for p in found:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            p.unlink()
    if found:
        logger.info("removed %d temporary file(s) left by an interrupted run: %s", len(found),
                    ", ".join(p.name for p in found[:3]))
    return found


# mkstemp creates files readable by the owner only; finished outputs get the usual 0o666 & ~umask.
_UMASK = _read_umask()
_FILE_MODE = 0o666 & ~_UMASK
_DIR_MODE = 0o777 & ~_UMASK


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    On an exception the temporary file is removed and ``target`` is left as it was.
    ``suffix`` defaults to the target's own suffix, so that writers which choose a
    format from the file name (OpenCV, PyAV, torch) see the right one.
    """
    target = Path(target)
    if target.is_dir():  # else the rename below fails naming the temporary, not the target
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    # Hidden name ending in the real suffix: ".net_g_100.tmp-x1y2.pth"; the stem is shortened so that a target with
    # a long (legal) name still gets a temporary name within the file system's 255 bytes.
    suffix = target.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{_temp_stem(target, suffix)}.tmp-", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
    except BaseException as exc:
        full = _is_disk_full(exc, target.parent)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if full:
            raise DiskFullError(target.parent, target.name) from exc
        raise


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically, flushed to disk before the rename."""
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden temporary folder next to ``target``; on success it becomes ``target``.

    An existing ``target`` is replaced only once the new folder is complete (it is moved
    aside, the new one renamed in, then the old one deleted). On an exception the temporary
    folder is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, _DIR_MODE)  # mkdtemp's folders are owner-only
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(src: Path, target: Path) -> None:
    if not target.exists():
        os.replace(src, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    old.rmdir()
    os.replace(target, old)
    try:
        os.replace(src, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
