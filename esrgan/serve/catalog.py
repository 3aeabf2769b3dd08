"""Which models the web app may load, and the loaded ones.

A page may name a zoo model or a checkpoint file, but a file only inside the allowed folders (the
zoo cache, the experiments folder, each ``--model-dir``) or one given by ``--model``: the app must
never become a way to read arbitrary files of the machine it runs on. Paths are compared after
resolving symbolic links and ``..``.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esrgan.inference.color_fix import DEFAULT_COLOR_FIX, check_color_fix
from esrgan.utils.folders import EXPERIMENTS_ROOT

logger = logging.getLogger("esrgan.serve")

CHECKPOINT_SUFFIXES = (".pth", ".safetensors")
# Folders that hold training states or optimiser files, never generators worth listing.
_SKIP_PARTS = {"training_states", ".git", "tb_logger", "__pycache__"}
MAX_LISTED = 400
MAX_COMPARED = 60  # checkpoints read to tell which can be blended with a model (each is read once, then cached)


class ModelNotAllowed(ValueError):
    """A model the page asked for that is not a zoo name nor a checkpoint in an allowed folder."""


@dataclass(frozen=True)
class ModelChoice:
    id: str  # what the page sends back: a zoo name or an absolute checkpoint path
    label: str
    kind: str  # "zoo" or "file"
    note: str = ""
    description: str = ""  # what it is for (the zoo's words), shown under the choice
    available: bool = True  # False: cannot run now (a zoo model not downloaded while offline)
    why: str = ""  # why it cannot run now

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "kind": self.kind, "note": self.note,
                "description": self.description, "available": self.available, "why": self.why}


@dataclass(frozen=True)
class Network:
    """What a checkpoint holds, as far as blending is concerned: two models blend when ``family`` is equal."""

    arch: str
    scale: int
    family: str | None  # arch and hyper-parameters; None when not known before a download
    parameters: int | None = None
    error: str = ""  # it does not load

    def describe(self) -> str:
        if self.error:
            return f"does not load: {self.error}"
        size = ""
        if self.parameters:
            n = self.parameters
            size = f", {n / 1e6:.1f} M parameters" if n >= 1e5 else f", {n / 1e3:.1f} k parameters"
        return f"{self.arch} x{self.scale}{size}"


class ModelCatalog:
    """Zoo names and checkpoint files in the allowed folders; ``resolve`` refuses everything else."""

    def __init__(self, model_dirs: Sequence[str | Path] = (), models: Sequence[str] = (),
                 experiments_root: str | Path = EXPERIMENTS_ROOT, zoo_cache: str | Path | None = None) -> None:
        from esrgan.zoo import ZOO, cache_dir

        self.zoo = ZOO
        self.zoo_cache = Path(zoo_cache) if zoo_cache is not None else cache_dir()
        self.roots = [Path(p).expanduser().resolve() for p in (self.zoo_cache, experiments_root, *model_dirs)]
        self.files: list[Path] = []  # the --model files: allowed wherever they are
        self.preferred: list[str] = []
        self.failed_downloads: dict[str, str] = {}  # zoo name -> why its download failed in this session
        self.speeds: dict[str, float] = {}  # spec -> seconds per input megapixel, measured on this server's jobs
        self._networks: dict[tuple[str, int, int], Network] = {}
        self._lock = threading.Lock()
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
            from esrgan.utils.fetch import offline

            entry = self.zoo[spec]
            cached = self.cached(spec)
            note = f"x{entry.scale} {entry.arch}" + ("" if cached else ", downloads once")
            why = ""
            if not cached and offline():
                why = "not downloaded, and this server is offline (ESRGAN_OFFLINE)"
            elif not cached and spec in self.failed_downloads:
                why = f"not downloaded: {self.failed_downloads[spec]}"
            return ModelChoice(spec, spec, "zoo", note, entry.description, not why, why)
        path = Path(spec)
        root = next((r for r in self.roots if path.is_relative_to(r)), None)
        label = str(path.relative_to(root)) if root is not None else path.name
        return ModelChoice(spec, label, "file", str(root) if root is not None else "",
                           f"checkpoint in {root}" if root is not None else "checkpoint given with --model")

    def cached(self, spec: str) -> bool:
        return spec in self.zoo and (self.zoo_cache / self.zoo[spec].filename).is_file()

    def label(self, spec: str) -> str:
        """A model as people call it: the zoo name, or the checkpoint's path inside its folder."""
        if spec in self.zoo:
            return spec
        path = Path(spec)
        root = next((r for r in self.roots if path.is_relative_to(r)), None)
        return str(path.relative_to(root)) if root is not None and path != root else path.name

    def tag(self, spec: str) -> str:
        """A model's short name for output file names: the zoo name or the checkpoint's stem."""
        return spec if spec in self.zoo else Path(spec).stem

    def network(self, spec: str) -> Network:
        """What ``spec`` (a resolved spec) holds; read once per file version (path, size, time), then cached."""
        if spec in self.zoo and not self.cached(spec):
            entry = self.zoo[spec]
            return Network(entry.arch, entry.scale, None)
        path = Path(self.local_path(spec)) if spec in self.zoo else Path(spec)
        try:
            st = path.stat()
        except OSError as exc:
            return Network("?", 0, None, error=str(exc))
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._networks:
                return self._networks[key]
        from esrgan.loading import load_generator

        try:
            arch, kwargs, sd = load_generator(str(path))
            scale = int(kwargs.get("scale", kwargs.get("upscale", 0)) or 0)
            family = f"{arch}({', '.join(f'{k}={v!r}' for k, v in sorted(kwargs.items()))})"
            net = Network(arch, scale, family, sum(int(t.numel()) for t in sd.values()))
        except Exception as exc:  # not ours (spandrel) or not a checkpoint: it cannot be blended
            from esrgan.serve.errors import one_line

            net = Network("?", 0, None, error=one_line(str(exc), 160))
        with self._lock:
            self._networks[key] = net
        return net

    def compatible(self, spec: str, choices: list[ModelChoice]) -> dict[str, str]:
        """For the blend's second model: id -> "yes" (same network), "unknown" (a zoo model not downloaded yet,
        of the same architecture and scale) for each choice that can be blended with ``spec``."""
        mine = self.network(spec)
        out: dict[str, str] = {}
        if mine.error:
            return out
        read = 0
        for choice in choices:
            if choice.id == spec or not choice.available:
                continue
            if choice.kind == "file" and read >= MAX_COMPARED:  # a huge folder: the rest is checked when run
                out[choice.id] = "unknown"
                continue
            read += choice.kind == "file"
            other = self.network(choice.id)
            if other.error or other.arch != mine.arch or other.scale != mine.scale:
                continue
            if other.family is None or mine.family is None:
                out[choice.id] = "unknown"
            elif other.family == mine.family:
                out[choice.id] = "yes"
        return out

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

            try:
                return str(download(spec, cache=self.zoo_cache))
            except Exception as exc:  # remembered: the page marks the model as not available now
                from esrgan.serve.errors import one_line

                self.failed_downloads[spec] = one_line(str(exc), 120)
                raise
        return spec


class UpscalerCache:
    """The last few ``Upscaler``s (and interpolation pairs), so a second job with one model starts at once.

    ``cancelled``: asked by every layer of every network made here (``jobs.add_cancel_hooks``), so that a
    cancelled job stops within one layer.
    """

    def __init__(self, catalog: ModelCatalog, device: str | None, size: int = 3,
                 cancelled: Callable[[], bool] | None = None) -> None:
        self.catalog = catalog
        self.device = device
        self.size = size
        self.cancelled = cancelled
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

    def _upscaler(self, model: Any, **kw: Any) -> Any:
        from esrgan.inference.upscaler import Upscaler
        from esrgan.serve.jobs import add_cancel_hooks

        up = Upscaler(model, **kw)
        if self.cancelled is not None:
            add_cancel_hooks(up.model, self.cancelled)
        return up

    def upscaler(self, model: str, *, tile: int, precision: str, model_b: str | None = None,
                 alpha: float | None = None, color_fix: str = DEFAULT_COLOR_FIX) -> Any:
        """An Upscaler for ``model`` (a resolved spec) or, with ``model_b`` and ``alpha``, for
        (1 - alpha) * model + alpha * model_b (``esrgan.evaluation.interpolation``), with ``color_fix``
        (``esrgan.inference.color_fix``; the CLI's default unless asked)."""
        return _with_color_fix(self._network_upscaler(model, tile, precision, model_b, alpha), color_fix)

    def _network_upscaler(self, model: str, tile: int, precision: str, model_b: str | None,
                          alpha: float | None) -> Any:
        kw = dict(device=self.device, tile=tile, precision=precision, batch_tiles=1)
        if model_b is None:
            path = self.catalog.local_path(model)
            return self._get(("model", path, tile, precision), lambda: self._upscaler(path, **kw))
        from esrgan.evaluation.interpolation import load_pair
        from esrgan.serve.errors import BlendError

        a, b = self.catalog.local_path(model), self.catalog.local_path(model_b)
        net_a, net_b = self.catalog.network(model), self.catalog.network(model_b)
        if net_a.family != net_b.family or net_a.error or net_b.error:
            la, lb = self.catalog.label(model), self.catalog.label(model_b)
            raise BlendError(f"{la} and {lb} cannot be blended: they are different networks ({net_a.describe()} "
                             f"and {net_b.describe()}). Choose a second model of the same network.")
        pair = self._get(("pair", a, b), lambda: load_pair(a, b))
        return self._get(("interp", a, b, alpha, tile, precision), lambda: self._upscaler(pair.build(alpha), **kw))


def _with_color_fix(up: Any, color_fix: str) -> Any:
    """The cached Upscaler with ``color_fix``: the same network on the device (loaded once), its own setting
    (a shallow copy, so a job with another fix neither loads the weights again nor changes the cached one)."""
    if up.color_fix == check_color_fix(color_fix):
        return up
    view = copy.copy(up)
    view.color_fix = color_fix
    return view
