"""Which models the web app may load, and the loaded ones.

A page may name a zoo model or a checkpoint file, but a file only inside the allowed folders (the
zoo cache, the experiments folder, each ``--model-dir``) or one given by ``--model``: the app must
never become a way to read arbitrary files of the machine it runs on. Paths are compared after
resolving symbolic links and ``..``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("esrgan.serve")

CHECKPOINT_SUFFIXES = (".pth", ".safetensors")
# Folders that hold training states or optimiser files, never generators worth listing.
_SKIP_PARTS = {"training_states", ".git", "tb_logger", "__pycache__"}
MAX_LISTED = 400


class ModelNotAllowed(ValueError):
    """A model the page asked for that is not a zoo name nor a checkpoint in an allowed folder."""


@dataclass(frozen=True)
class ModelChoice:
    id: str  # what the page sends back: a zoo name or an absolute checkpoint path
    label: str
    kind: str  # "zoo" or "file"
    note: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "label": self.label, "kind": self.kind, "note": self.note}


class ModelCatalog:
    """Zoo names and checkpoint files in the allowed folders; ``resolve`` refuses everything else."""

    def __init__(self, model_dirs: Sequence[str | Path] = (), models: Sequence[str] = (),
                 experiments_root: str | Path = "experiments", zoo_cache: str | Path | None = None) -> None:
        from esrgan.zoo import ZOO, cache_dir

        self.zoo = ZOO
        self.zoo_cache = Path(zoo_cache) if zoo_cache is not None else cache_dir()
        self.roots = [Path(p).expanduser().resolve() for p in (self.zoo_cache, experiments_root, *model_dirs)]
        self.files: list[Path] = []  # the --model files: allowed wherever they are
        self.preferred: list[str] = []
        for spec in models:
            if spec in ZOO:
                self.preferred.append(spec)
                continue
            path = Path(spec).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"--model {spec}: no such checkpoint file, and not a zoo name "
                                        f"({', '.join(sorted(ZOO))})")
            self.files.append(path.resolve())
            self.preferred.append(str(path.resolve()))

    def choices(self) -> list[ModelChoice]:
        """The --model entries first, then checkpoints found in the allowed folders, then the zoo."""
        out: dict[str, ModelChoice] = {}
        for spec in self.preferred:
            out[spec] = self._choice(spec)
        found: list[Path] = []
        for root in self.roots:
            if root.is_dir():
                found += [p for p in self._scan(root) if p.resolve() not in found]
        for path in found[:MAX_LISTED]:
            spec = str(path.resolve())
            if spec not in out:
                out[spec] = self._choice(spec)
        for name in self.zoo:
            out.setdefault(name, self._choice(name))
        return list(out.values())

    def _choice(self, spec: str) -> ModelChoice:
        if spec in self.zoo:
            entry = self.zoo[spec]
            cached = (self.zoo_cache / entry.filename).is_file()
            note = f"x{entry.scale} {entry.arch}" + ("" if cached else ", downloads once")
            return ModelChoice(spec, spec, "zoo", note)
        path = Path(spec)
        root = next((r for r in self.roots if path.is_relative_to(r)), None)
        label = str(path.relative_to(root)) if root is not None else path.name
        return ModelChoice(spec, label, "file", str(root) if root is not None else "")

    @staticmethod
    def _scan(root: Path) -> list[Path]:
        out = []
        for p in sorted(root.rglob("*")):
            # Discriminators (net_d_*) are not upscalers: left out of the list.
            # A link leading out of the folder is not offered (and refused by resolve()).
            if (p.suffix.lower() in CHECKPOINT_SUFFIXES and not _SKIP_PARTS.intersection(p.parts)
                    and not p.name.startswith("net_d") and p.is_file() and p.resolve().is_relative_to(root)):
                out.append(p.resolve())
            if len(out) >= MAX_LISTED:
                break
        return out

    def resolve(self, spec: str) -> str:
        """The zoo name or absolute checkpoint path to load for ``spec``; ModelNotAllowed otherwise."""
        if not isinstance(spec, str) or not spec.strip():
            raise ModelNotAllowed("no model chosen")
        if spec in self.zoo:
            return spec
        path = Path(spec).expanduser()
        if not path.is_absolute():
            raise ModelNotAllowed(f"model {spec!r}: not a zoo name; checkpoint paths must be absolute paths "
                                  "inside the allowed model folders")
        real = path.resolve()
        allowed = real in self.files or any(real.is_relative_to(root) for root in self.roots)
        if not allowed:
            raise ModelNotAllowed(
                f"model {spec}: outside the allowed model folders ({', '.join(map(str, self.roots))}); "
                "start esrgan serve with --model-dir FOLDER or --model FILE to allow it"
            )
        if real.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise ModelNotAllowed(f"model {spec}: not a checkpoint file ({' or '.join(CHECKPOINT_SUFFIXES)})")
        if not real.is_file():
            raise ModelNotAllowed(f"model {spec}: no such file")
        return str(real)

    def local_path(self, spec: str) -> str:
        """A resolved spec as a file path: zoo names are fetched into the cache (once) first."""
        if spec in self.zoo:
            from esrgan.zoo import download

            return str(download(spec, cache=self.zoo_cache))
        return spec


class UpscalerCache:
    """The last few ``Upscaler``s (and interpolation pairs), so a second job with one model starts at once."""

    def __init__(self, catalog: ModelCatalog, device: str | None, size: int = 3) -> None:
        self.catalog = catalog
        self.device = device
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, key: tuple[Any, ...], make: Any) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def upscaler(self, model: str, *, tile: int, precision: str, model_b: str | None = None,
                 alpha: float | None = None) -> Any:
        """An Upscaler for ``model`` (a resolved spec) or, with ``model_b`` and ``alpha``, for
        (1 - alpha) * model + alpha * model_b (``esrgan.evaluation.interpolation``)."""
        from esrgan.inference.upscaler import Upscaler

        kw = dict(device=self.device, tile=tile, precision=precision, batch_tiles=1)
        if model_b is None:
            path = self.catalog.local_path(model)
            return self._get(("model", path, tile, precision), lambda: Upscaler(path, **kw))
        from esrgan.evaluation.interpolation import load_pair

        a, b = self.catalog.local_path(model), self.catalog.local_path(model_b)
        pair = self._get(("pair", a, b), lambda: load_pair(a, b))
        return self._get(("interp", a, b, alpha, tile, precision), lambda: Upscaler(pair.build(alpha), **kw))
