"""One line for an operating-system error: the path and what is wrong with it, in words, without ``[Errno N]``."""

from __future__ import annotations

import errno
import os
from pathlib import Path

_REASONS = {
    errno.ENOENT: "no such file or folder",
    errno.EISDIR: "is a folder, expected a file",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "file name too long",
    errno.EFBIG: "file too large (a file size limit is in force)",
    errno.ELOOP: "too many levels of symbolic links",
}


def os_error_line(exc: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """``"<path>: <reason>"`` for ``exc`` (``path`` when the error names none)."""
    where = exc.filename if exc.filename is not None else path
    if exc.errno == errno.EEXIST and where is not None and not Path(where).is_dir():
        reason = "a file is in the way of a folder to create"  # mkdir(parents=True) met a file
    else:
        reason = _REASONS.get(exc.errno or -1) or exc.strerror or str(exc)
    return f"{where}: {reason}" if where is not None else reason
