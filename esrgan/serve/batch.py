"""Folder in, folder out: a batch of the user's own images without uploading them one by one.

Only for a server on the user's own machine (bound to localhost) and only inside the folders given with
``--batch-dir`` (the way ``--model-dir`` restricts models): a page can never make the server read or write
anywhere else, and paths are compared after resolving links and ``..``. Outputs never replace a file: an
output that exists from before is left as it is and its input marked skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from esrgan.data.image import list_images
from esrgan.utils.folders import MAX_NAME_BYTES, check_folder_name

MAX_BATCH_FILES = 10_000


class BatchNotAllowed(ValueError):
    """A batch the server refuses: not on localhost, no --batch-dir, or a path outside the allowed folders."""


@dataclass(frozen=True)
class BatchFolders:
    roots: tuple[Path, ...]  # resolved --batch-dir folders
    exposed: bool  # the server listens beyond this machine: batches are refused

    @classmethod
    def create(cls, folders: list[str], exposed: bool) -> BatchFolders:
        return cls(tuple(Path(f).expanduser().resolve() for f in folders), exposed)

    def why_not(self) -> str | None:
        """Why folder batches are off (None when they are on)."""
        if self.exposed:
            return ("folder batches read and write folders of the server's machine: only for a server bound to "
                    "this machine (esrgan serve --host 127.0.0.1, the default)")
        if not self.roots:
            return "folder batches are off: start esrgan serve with --batch-dir FOLDER to allow folders inside it"
        return None

    def _inside(self, path: Path, what: str, given: str) -> Path:
        if not any(path == root or path.is_relative_to(root) for root in self.roots):
            raise BatchNotAllowed(f"{what} {given}: outside the allowed batch folders "
                                  f"({', '.join(map(str, self.roots))}); start esrgan serve with --batch-dir")
        return path

    def _absolute(self, given: object, what: str) -> Path:
        if not isinstance(given, str) or not given.strip() or "\0" in given:
            raise BatchNotAllowed(f"{what}: give the folder's full path")
        path = Path(given.strip()).expanduser()
        if not path.is_absolute():
            raise BatchNotAllowed(f"{what} {given!r}: give the folder's full path (e.g. {self.roots[0] / 'photos'})")
        return path

    def input_files(self, given: object) -> tuple[Path, list[Path]]:
        """The input folder (resolved) and its images (not its subfolders'), each inside the allowed folders."""
        why = self.why_not()
        if why:
            raise BatchNotAllowed(why)
        folder = self._absolute(given, "input folder")
        try:
            real = self._inside(folder.resolve(), "input folder", str(given))
            if not real.is_dir():
                raise BatchNotAllowed(f"input folder {given}: no such folder")
        except OSError as exc:  # a name too long for the file system, a folder we may not read
            raise BatchNotAllowed(f"input folder: {exc}") from None
        files = [p for p in list_images(real) if p.resolve().is_relative_to(real.resolve()) or
                 any(p.resolve().is_relative_to(r) for r in self.roots)]  # a link leading out is left out
        if not files:
            raise BatchNotAllowed(f"input folder {given}: no images in it (png, jpg, webp, bmp, tif)")
        if len(files) > MAX_BATCH_FILES:
            raise BatchNotAllowed(f"input folder {given}: {len(files)} images, more than {MAX_BATCH_FILES} in one "
                                  "batch; split it into smaller folders")
        return real, files

    def output_folder(self, given: object) -> Path:
        """The output folder (resolved, inside the allowed folders); the missing part of it is created, each new
        folder name checked as one folder name."""
        why = self.why_not()
        if why:
            raise BatchNotAllowed(why)
        folder = self._absolute(given, "output folder")
        try:
            real = self._inside(folder.resolve(), "output folder", str(given))
            for part in real.parts:
                if len(part.encode("utf-8")) > MAX_NAME_BYTES:  # before asking the file system about it
                    check_folder_name(part, "output folder name")
            probe = real
            while not probe.exists():  # the part of it to create: each a name we may create
                check_folder_name(probe.name, "output folder name")
                probe = probe.parent
            if not real.is_dir() and real.exists():
                raise BatchNotAllowed(f"output folder {given}: exists and is not a folder")
            real.mkdir(parents=True, exist_ok=True)
        except BatchNotAllowed:
            raise
        except (ValueError, OSError) as exc:  # a name too long for the file system, a folder we may not create
            raise BatchNotAllowed(f"output folder: {exc}") from None
        return real
