"""The parts of a video being upscaled: what lets a job of hours survive a crash, and ranks share one job.

A video is written as parts of ``part_frames`` frames, each encoded on its own (it starts with a keyframe) into
``.<output name>.parts/part-NNNNNN.<ext>`` and committed atomically: the part file is renamed into place, then
its record (``part-NNNNNN.json``: the encoder's packet timestamps, the frames' time stamps, size and SHA-256)
is written beside it. ``manifest.json`` says what the parts were made from: the input (size, modification time,
a SHA-256 of its first and last MB, its video stream), the model's weights (SHA-256) and every setting that
changes a pixel. A run that finds parts made from the same input, weights and settings does only the parts
that are missing; anything else is refused, never mixed. When every part is there, the output is put together
(the parts' packets with their recorded timestamps, and the input's audio copied) under a temporary name,
renamed into place, and the parts folder removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from esrgan.utils.atomic import atomic_path, atomic_write_text, remove_stale_temporaries, remove_stale_temporaries_of

logger = logging.getLogger("esrgan.inference.video")

# Seconds of video per part: what an interruption can cost at most, and where a keyframe is forced (each part
# is encoded on its own). benchmarks/bench_video_resume.py measures what it costs in bytes and time.
PART_SECONDS = 2.0
FORMAT = "esrgan-video-parts"
VERSION = 1
MANIFEST = "manifest.json"
FINISHED = "finished.json"
END = "end.json"
# How much of the input's head and tail is hashed: changed content is caught without reading hours of video.
_PROBE_BYTES = 2**20
_PART_RE = re.compile(r"^part-(\d{6})\.(json|[A-Za-z0-9]+)$")


class ResumeRefused(ValueError):
    """Parts of an unfinished job exist for this output, made from another input, model or settings."""


def parts_folder(dst: Path) -> Path:
    """Where the parts of ``dst`` are kept while it is being made: a hidden folder beside it."""
    return dst.parent / f".{dst.name}.parts"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            h.update(chunk)
    return h.hexdigest()


def file_fingerprint(path: Path) -> dict[str, Any]:
    """Size, modification time and a SHA-256 of the first and last MB of ``path``."""
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(_PROBE_BYTES))
        if st.st_size > 2 * _PROBE_BYTES:
            f.seek(-_PROBE_BYTES, os.SEEK_END)
        h.update(f.read(_PROBE_BYTES))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_tail_sha256": h.hexdigest()}


@dataclass
class PartRecord:
    """One committed part: its frames' timestamps and the encoder's packets, as they were made."""

    index: int
    first_frame: int
    frame_pts: list[int]
    packets: list[list[int]]  # [pts, dts, keyframe] in decode order, in the stream's time base
    time_base: list[int]  # numerator, denominator
    extradata: str  # the encoder's global header (hex): every part must have the same
    size: int
    sha256: str

    @property
    def frames(self) -> int:
        return len(self.frame_pts)


@dataclass
class Resumed:
    """What a run finds in the parts folder."""

    parts: dict[int, PartRecord] = field(default_factory=dict)
    frames_total: int | None = None  # every frame of the input (section), once a run decoded it to the end
    fresh: bool = True  # no earlier parts (or discarded with ``restart``)

    @property
    def frames(self) -> int:
        return sum(p.frames for p in self.parts.values())


class PartsFolder:
    """The parts folder of one output: manifest, part files and their records (see the module's docstring)."""

    def __init__(self, dst: Path) -> None:
        self.dst = dst
        self.path = parts_folder(dst)
        self.suffix = dst.suffix

    # ---------------------------------------------------------------- names

    def part_path(self, index: int) -> Path:
        return self.path / f"part-{index:06d}{self.suffix}"

    def record_path(self, index: int) -> Path:
        return self.path / f"part-{index:06d}.json"

    # ---------------------------------------------------------------- manifest

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, None when there is none; a damaged one is :class:`ResumeRefused` naming it."""
        path = self.path / MANIFEST
        if not self.path.exists():
            return None
        if not self.path.is_dir():
            raise ResumeRefused(f"{self.path}: expected the folder of this output's parts, found a file; "
                                "move it away")
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ResumeRefused(f"{path}: not a readable parts manifest ({exc}); pass --restart to discard "
                                "the parts and start afresh") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ResumeRefused(f"{path}: not an {FORMAT} manifest of version {VERSION}; pass --restart to "
                                "discard the parts and start afresh")
        return data

    def check_manifest(self, found: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
        """What differs between the manifest ``found`` and this run's ``wanted`` (empty: the parts fit)."""
        diffs = []
        for section in ("input", "model", "settings"):
            a, b = found.get(section), wanted[section]
            if not isinstance(a, dict):
                diffs.append(f"{section}: missing")
                continue
            for key in sorted(set(a) | set(b)):
                if key in ("mtime_ns", "path", "name"):  # a copied file or a moved checkpoint is the same one
                    continue
                if a.get(key) != b.get(key):
                    diffs.append(f"{section} {key}: {_short(a.get(key))} -> {_short(b.get(key))}")
        return diffs

    def start(self, manifest: dict[str, Any], *, restart: bool, verify: bool = True) -> Resumed:
        """Open the folder for this run: check or write the manifest, find the parts already done (``verify``:
        their SHA-256 too, not only their size).

        Parts from another input, model or settings raise :class:`ResumeRefused` unless ``restart``, which
        discards them (only the files this program writes there are removed).
        """
        if self.path.exists() and not self.path.is_dir():
            raise ResumeRefused(f"{self.path}: expected the folder of this output's parts, found a file; move it away")
        found = None if restart else self.read_manifest()
        if found is not None:
            diffs = self.check_manifest(found, manifest)
            if diffs and not restart:
                shown = "; ".join(diffs[:4]) + (f" (+{len(diffs) - 4} more)" if len(diffs) > 4 else "")
                raise ResumeRefused(
                    f"{self.dst}: the unfinished parts in {self.path} were made from another input, model or "
                    f"settings ({shown}); run the same command as before to finish them, or pass --restart to "
                    "discard them and start afresh"
                )
            if diffs:
                logger.warning("%s: discarding the parts made with other settings (--restart): %s", self.dst,
                               "; ".join(diffs[:4]))
                self.remove()
                found = None
        elif restart and self.path.exists():
            if self.path.is_dir():
                logger.warning("%s: discarding the %d part(s) an earlier run left (--restart)", self.dst,
                               len(self.present()))
            self.remove()
        self.path.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path)  # what a killed run was writing (no rank writes yet)
        remove_stale_temporaries_of([self.dst])  # the output of a run killed while it put it together
        if found is None:
            atomic_write_text(self.path / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
            return Resumed()
        return Resumed(parts=self.done_parts(verify=verify), frames_total=self.read_end(), fresh=False)

    # ---------------------------------------------------------------- parts

    def present(self) -> list[int]:
        """Indices of the parts whose record exists (not yet checked)."""
        if not self.path.is_dir():
            return []
        out = []
        for p in self.path.iterdir():
            m = _PART_RE.match(p.name)
            if m and m.group(2) == "json":
                out.append(int(m.group(1)))
        return sorted(out)

    def load(self, index: int, *, verify: bool = True) -> PartRecord | None:
        """The record of part ``index`` if it and its file are sound (size and SHA-256), else None (warned)."""
        path = self.record_path(index)
        try:
            record = PartRecord(**json.loads(path.read_text(encoding="utf-8")))
            ok = (record.index == index and record.frame_pts and len(record.packets) >= 1
                  and self.part_path(index).stat().st_size == record.size)
            if ok and verify:
                ok = _sha256_file(self.part_path(index)) == record.sha256
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
            logger.warning("%s: part %d is damaged (%s); it is done again", self.dst, index, exc)
            return None
        if not ok:
            logger.warning("%s: part %d does not match its record (size or SHA-256); it is done again",
                           self.dst, index)
            return None
        return record

    def done_parts(self, indices: list[int] | None = None, *, verify: bool = True) -> dict[int, PartRecord]:
        """The sound parts among ``indices`` (default: all present)."""
        out = {}
        for i in self.present() if indices is None else indices:
            if not self.record_path(i).exists():
                continue
            if (record := self.load(i, verify=verify)) is not None:
                out[i] = record
        return out

    def commit(self, record: PartRecord) -> None:
        """Write the record of a part whose file is in place: from now on the part counts as done."""
        atomic_write_text(self.record_path(record.index), json.dumps(asdict(record)))

    def sealed(self, index: int) -> tuple[int, str]:
        """Size and SHA-256 of part ``index``'s file, for its record."""
        path = self.part_path(index)
        return path.stat().st_size, _sha256_file(path)

    def write_end(self, frames: int) -> None:
        atomic_write_text(self.path / END, json.dumps({"frames": frames}))

    def read_end(self) -> int | None:
        try:
            frames = json.loads((self.path / END).read_text(encoding="utf-8"))["frames"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return frames if isinstance(frames, int) and frames >= 0 else None

    # ---------------------------------------------------------------- the end

    def mark_finished(self, output: Path) -> None:
        """Note which file the parts became (before it is renamed to the output's name)."""
        atomic_write_text(self.path / FINISHED, json.dumps(file_fingerprint(output)))

    def finished(self) -> bool:
        """Whether the output is the file these parts became (a run that died before removing them)."""
        try:
            noted = json.loads((self.path / FINISHED).read_text(encoding="utf-8"))
            now = file_fingerprint(self.dst)
        except (OSError, ValueError):
            return False
        return isinstance(noted, dict) and all(noted.get(k) == now[k] for k in ("size", "head_tail_sha256"))

    def remove(self) -> None:
        """Delete what this program writes in the folder, and the folder if nothing else is left in it."""
        try:
            names = [p for p in self.path.iterdir() if _PART_RE.match(p.name) or p.name in (MANIFEST, FINISHED, END)]
        except (FileNotFoundError, NotADirectoryError):  # gone (another rank on this disk removed it), or a file
            return
        for p in names:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        with contextlib.suppress(FileNotFoundError):
            remove_stale_temporaries(self.path)
        with contextlib.suppress(OSError):
            self.path.rmdir()
        if self.path.exists():
            logger.warning("%s: left in place: it holds files this program did not write", self.path)

    def writing(self, index: int) -> contextlib.AbstractContextManager[Path]:
        """A temporary file for part ``index``'s encoder, renamed to the part's name when the block ends well
        and removed otherwise."""
        return atomic_path(self.part_path(index))


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else text[:12] + "..."
