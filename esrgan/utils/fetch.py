"""The one downloader: model-zoo checkpoints and data sets alike.

``fetch(url, dest)`` streams ``url`` (http(s), ``file://`` or a plain local path) into ``dest.part``
with a progress bar, resumes a ``.part`` left by an interrupted run (HTTP ``Range``), refuses a web
page served instead of the file, hashes what arrived, lets the caller check the digest, and only
then renames the file into place: an interrupted or wrong download never looks like a finished
file. ``ESRGAN_OFFLINE=1`` never touches the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger("esrgan.fetch")


class DownloadError(RuntimeError):
    """A download that failed, was interrupted or does not match its checksum (the message says which)."""


def offline() -> bool:
    """``ESRGAN_OFFLINE`` is set (to anything but 0): nothing may be downloaded."""
    return os.environ.get("ESRGAN_OFFLINE", "") not in ("", "0")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _open(url: str, offset: int, user_agent: str) -> tuple[IO[bytes] | Any, int | None, bool, str]:
    """(stream, total size or None, resumed?, content type) for ``url`` from byte ``offset``."""
    if "://" not in url or (url.startswith("file://") and offset):  # local files resume by seeking
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path)) if "://" in url else Path(url)
        stream = open(path, "rb")  # noqa: SIM115 - closed by the caller
        size = path.stat().st_size
        stream.seek(min(offset, size))
        return stream, size, offset > 0, ""
    headers = {"User-Agent": user_agent}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    resumed = offset > 0 and getattr(response, "status", None) == 206
    length = response.headers.get("Content-Length")
    total = (int(length) + (offset if resumed else 0)) if length else None
    return response, total, resumed, response.headers.get("Content-Type") or ""


def fetch(
    url: str,
    dest: str | os.PathLike[str],
    *,
    check: Callable[[str, Path], None] | None = None,
    progress: bool = True,
    resume: bool = True,
    user_agent: str = "esrgan",
) -> str:
    """Download ``url`` to ``dest`` and return its SHA-256.

    ``check(digest, part_path)`` runs before the rename and raises to refuse the file (the ``.part``
    is then removed). ``resume``: continue a ``dest.part`` from an earlier, interrupted run.
    """
    from tqdm import tqdm

    dest = Path(dest)
    if offline():
        raise DownloadError(f"offline (ESRGAN_OFFLINE is set): cannot download {url}")
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if resume and part.is_file() else 0
    opened = None
    try:
        opened = _open(url, offset, user_agent)
    except FileNotFoundError as exc:
        raise DownloadError(f"source file not found: {exc.filename}") from exc
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not offset:  # 416 on a resume: the .part is already whole
            raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(f"cannot download {url} ({exc})") from exc
    if opened is not None:
        stream, total, resumed, content_type = opened
        with contextlib.closing(stream):
            if "text/html" in content_type:
                raise DownloadError(f"{url} returned a web page instead of the file (the host asks for a confirmation)")
            # Only now: a failed (offline) attempt must not leave empty folders behind.
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not resumed:
                offset = 0  # the server ignored the range (or nothing to resume): start over
            elif offset:
                logger.info("resuming %s at %d bytes", dest.name, offset)
            with open(part, "ab" if offset else "wb") as f, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                disable=not progress,
            ) as bar:
                try:
                    while block := stream.read(1 << 20):
                        f.write(block)
                        bar.update(len(block))
                except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                    raise DownloadError(
                        f"download of {url} interrupted after {f.tell()} bytes ({exc}); run again to resume"
                    ) from exc
                f.flush()
                os.fsync(f.fileno())
                if total is not None and f.tell() < total:  # the server closed early: keep the .part
                    raise DownloadError(
                        f"download of {url} interrupted after {f.tell()} of {total} bytes; run again to resume"
                    )
    digest = sha256_file(part)
    if check is not None:
        try:
            check(digest, part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    os.replace(part, dest)
    return digest


__all__ = ["DownloadError", "fetch", "offline", "sha256_file"]
