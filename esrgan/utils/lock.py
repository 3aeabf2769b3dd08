"""One run per experiment folder: an OS-level lock beside the folder.

``experiments/<name>`` is locked through ``experiments/.<name>.lock`` with ``fcntl.flock``: the kernel
drops the lock when its holder exits, however it exits (a crash, ``kill -9``), so a lock left by a dead
run never blocks the next one. The file lies beside the folder, not in it, because a new run renames
an old folder aside (``<name>_archived_<time>``) and the lock must not move with it. The holder writes
its pid, host, start time and command into the file, for the message a second run prints.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not locked
    fcntl = None  # type: ignore[assignment]


class ExperimentInUseError(ValueError):
    """Another live process holds the experiment folder's lock."""


def lock_path(folder: str | os.PathLike[str]) -> Path:
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


class ExperimentLock:
    """An exclusive, non-blocking lock on one experiment folder; ``release()`` (or exit) frees it."""

    def __init__(self, folder: str | os.PathLike[str], what: str = "training run") -> None:
        self.folder = Path(folder)
        self.what = what
        self.path = lock_path(self.folder)
        self._fd: int | None = None

    def acquire(self) -> ExperimentLock:
        if fcntl is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise ExperimentInUseError(
                    f"experiment folder {self.folder} is in use by another {holder}; "
                    f"wait for it to end or stop it, or choose another name (lock: {self.path})"
                ) from None
            # The holder before us may have unlinked the file between our open and our lock:
            # then we hold a lock on a file nobody else can see; start again on the path's file.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = (
            f"{self.what} (pid {os.getpid()} on {socket.gethostname()}, started "
            f"{time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime())}): {' '.join(sys.argv)}\n"
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode("utf-8", "replace"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlink while still holding the lock (see the samestat check above), then unlock by closing.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> ExperimentLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "run (its details are not written yet)"
