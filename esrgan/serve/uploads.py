"""Uploads of the web app: the request body streamed to the job's folder, bytes counted as they arrive.

A declared ``Content-Length`` is only a claim: a chunked upload has none. So the multipart body is parsed
as it streams in (python-multipart's parser, which Starlette uses too), each file written straight to the
job's folder, and its bytes counted: a file over ``--max-upload-mb`` stops being written at the limit (the
rest of it is read and dropped, and the file is refused by name) and a body over what ``--max-files`` such
files can need is refused at once. Nothing is held in memory but one chunk.

Names from the upload become file names only through :func:`safe_name` (one folder level, no control
characters, at most ``MAX_NAME_BYTES``; see ``esrgan.utils.folders.check_folder_name``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from esrgan.utils.folders import MAX_NAME_BYTES, check_folder_name

MAX_FIELD_BYTES = 64 * 1024  # a settings field (model path, alpha, ...)
MAX_FIELDS = 50
_UNSAFE = re.compile(r"[^\w .()+,@=-]+")  # \w: letters and digits of every script; the rest becomes '_'


class UploadError(ValueError):
    """The request as a whole cannot be read: malformed, too many files, or over the total limit."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def size_text(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{max(1, round(n / 1024))} kB"


def over_limit(name: str, size: int, limit: int, flag: str = "--max-upload-mb") -> str:
    """'NAME: 20.000 5 MB is over the limit of 20 MB': as many digits as it takes for the two numbers to differ."""
    shown_limit = f"{limit / 2**20:g} MB"
    for digits in range(1, 7):
        a, b = round(size / 2**20, digits), round(limit / 2**20, digits)
        if a != b:
            return f"{name}: {a:.{digits}f} MB is over the upload limit of {shown_limit} (esrgan serve {flag})"
    return f"{name}: {size} bytes is over the upload limit of {limit} bytes (esrgan serve {flag})"


def truncate_bytes(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore")


def safe_name(name: str, taken: set[str], limit: int = MAX_NAME_BYTES) -> str:
    """A file name for an uploaded ``name``: its last path part, unsafe characters as '_', at most ``limit``
    bytes (the stem is shortened, the extension kept), unique in ``taken`` (case-insensitive; added to it)."""
    base = unicodedata.normalize("NFC", str(name or "")).replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip(" .") or "image"
    suffix = Path(base).suffix if len(Path(base).suffix) <= 16 else ""
    stem = (base[: -len(suffix)] if suffix else base).strip(" .") or "image"
    k = 1
    while True:
        tail = f"_{k}" if k > 1 else ""
        candidate = truncate_bytes(stem, limit - len((tail + suffix).encode("utf-8"))).rstrip(" .") + tail + suffix
        if candidate.lower() not in taken:
            taken.add(candidate.lower())
            return check_folder_name(candidate, "upload name")
        k += 1


@dataclass
class Received:
    """One uploaded file as it was stored (under a placeholder name until it is checked)."""

    name: str  # as the browser sent it
    path: Path
    size: int = 0  # bytes received (all of them, also past the limit)
    over: bool = False  # over the per-file limit: its data beyond the limit was dropped


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[Received] = field(default_factory=list)


async def read_upload(content_type: str, stream: AsyncIterator[bytes], folder: Path, *, file_limit: int,
                      max_files: int, total_limit: int) -> Upload:
    """Parse a multipart/form-data body from ``stream``, writing file parts to ``folder`` as they arrive.

    Fields ``files`` hold the uploads; any other field is a setting (at most ``MAX_FIELDS`` of
    ``MAX_FIELD_BYTES``). UploadError for a body that is not multipart, malformed, has more than
    ``max_files`` files or more than ``total_limit`` bytes.
    """
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, params = parse_options_header(content_type or "")
    if kind == b"application/x-www-form-urlencoded":  # settings only (a rerun, a folder batch)
        return Upload(fields=await _read_form(stream))
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError("expected a multipart/form-data upload (files and settings)")
    upload = Upload()
    folder.mkdir(parents=True, exist_ok=True)
    state: dict[str, object] = {"headers": [], "name": b"", "value": b"", "part": None, "field": None, "data": b""}
    current: dict[str, object] = {}
    open_file: list[IO[bytes]] = []

    def on_part_begin() -> None:
        state["headers"] = []
        current.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["name"] = bytes(state["name"]) + data[start:end]  # type: ignore[arg-type]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] = bytes(state["value"]) + data[start:end]  # type: ignore[arg-type]

    def on_header_end() -> None:
        if bytes(state["name"]).lower() == b"content-disposition":  # type: ignore[arg-type]
            current["disposition"] = state["value"]
        state["name"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, options = parse_options_header(current.get("disposition", b""))  # type: ignore[arg-type]
        field_name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            if len(upload.files) >= max_files:
                raise UploadError(f"more than {max_files} files in one upload (esrgan serve --max-files)", 413)
            received = Received(options[b"filename"].decode("utf-8", "replace"),
                                folder / f".upload-{len(upload.files)}")
            upload.files.append(received)
            current["file"] = received
            open_file.append(received.path.open("wb"))
        else:
            if len(upload.fields) >= MAX_FIELDS:
                raise UploadError(f"more than {MAX_FIELDS} settings in one upload")
            current["field"] = field_name
            current["data"] = b""
        current["field_name"] = field_name

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        received = current.get("file")
        if isinstance(received, Received):
            room = file_limit - received.size
            if room > 0:
                open_file[-1].write(chunk[:room])
            received.size += len(chunk)
            received.over = received.size > file_limit
            return
        value = bytes(current.get("data", b"")) + chunk  # type: ignore[arg-type]
        if len(value) > MAX_FIELD_BYTES:
            raise UploadError(f"setting {current.get('field_name')!r} is longer than {MAX_FIELD_BYTES} bytes")
        current["data"] = value

    def on_part_end() -> None:
        if isinstance(current.get("file"), Received):
            open_file.pop().close()
            if current.get("field_name") != "files":  # a file in another field is not an upload of ours
                received = upload.files.pop()
                received.path.unlink(missing_ok=True)
        elif current.get("field") is not None:
            upload.fields[str(current["field"])] = bytes(current["data"]).decode("utf-8", "replace")  # type: ignore

    callbacks = {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
    }
    total = 0
    try:
        parser = MultipartParser(params[b"boundary"], callbacks)  # type: ignore[arg-type]
        async for chunk in stream:
            total += len(chunk)
            if total > total_limit:
                raise UploadError(f"upload of more than {size_text(total_limit)} refused while it arrived: over "
                                  f"{max_files} files of {size_text(file_limit)} (esrgan serve --max-upload-mb, "
                                  "--max-files)", 413)
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise UploadError(f"could not read the upload: malformed multipart data ({exc})") from None
    finally:
        for f in open_file:
            f.close()
    return upload


async def _read_form(stream: AsyncIterator[bytes]) -> dict[str, str]:
    from urllib.parse import parse_qsl

    body = b""
    async for chunk in stream:
        body += chunk
        if len(body) > MAX_FIELDS * MAX_FIELD_BYTES:
            raise UploadError(f"settings of more than {size_text(MAX_FIELDS * MAX_FIELD_BYTES)} refused", 413)
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    if any(len(v.encode("utf-8")) > MAX_FIELD_BYTES for _, v in pairs):
        raise UploadError(f"a setting is longer than {MAX_FIELD_BYTES} bytes")
    return dict(pairs)
