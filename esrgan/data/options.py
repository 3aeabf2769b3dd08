"""Options of one dataset (one entry under ``datasets:`` in a YAML option file).

Key names are BasicSR's, so BasicSR option files carry over. ``phase`` and ``scale``
are normally filled in by the option loader (phase from the dataset's key, e.g.
``train`` / ``val_1`` -> ``val``; scale from the top-level ``scale``).

Two dataset types:
- ``PairedImageDataset``: HR (``dataroot_gt``) and LR (``dataroot_lq``) images on disk or in LMDB,
  paired by name;
- ``SingleHRDataset``: HR images only; the LR image is made on the fly with the MATLAB-compatible
  bicubic (``esrgan.data.imresize``), for users who have no LR set.

Checks that need nothing but the values run on construction; checks that depend on
``phase`` and ``scale`` (which the loader may fill in later) run in :meth:`DatasetOptions.validate`,
which the dataset builder calls too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DATASET_TYPES = ("PairedImageDataset", "SingleHRDataset")
IO_BACKENDS = ("disk", "lmdb")
PHASES = ("train", "val", "test")
PREFETCH_MODES = (None, "cpu", "cuda")


@dataclass
class IOBackendOptions:
    """``io_backend: {type: disk}`` or ``{type: lmdb}``; the LMDB paths are the dataroots."""

    type: str = "disk"

    def validate(self, key_path: str = "io_backend") -> None:
        if self.type not in IO_BACKENDS:
            raise ValueError(f"{key_path}.type: {self.type!r} is not one of {', '.join(IO_BACKENDS)}")


@dataclass
class DatasetOptions:
    """One dataset and its loader (BasicSR key names)."""

    name: str = "dataset"
    type: str = "PairedImageDataset"
    dataroot_gt: str | None = None
    # Absent with type SingleHRDataset: LR images are bicubic-downscaled from HR on the fly.
    dataroot_lq: str | None = None
    # Optional list of GT names (first token per line, as in meta_info.txt) to restrict a disk dataset.
    meta_info_file: str | None = None
    io_backend: IOBackendOptions = field(default_factory=IOBackendOptions)
    # LR name for an HR stem, e.g. "{}x4" pairs 0001.png with 0001x4.png (disk backend only).
    filename_tmpl: str = "{}"
    phase: str = "train"
    scale: int = 4
    # Training: GT patch size (LR patch is gt_size // scale); None for whole images (validation).
    gt_size: int | None = None
    use_hflip: bool = True
    use_rot: bool = True
    use_shuffle: bool = True
    batch_size_per_gpu: int = 16
    num_worker_per_gpu: int = 4
    dataset_enlarge_ratio: int = 1
    prefetch_mode: str | None = None
    pin_memory: bool = True
    persistent_workers: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.io_backend, Mapping):
            self.io_backend = _io_backend_from_mapping(self.io_backend, f"datasets.{self.name}.io_backend")
        self._check_values(f"datasets.{self.name}")

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], key_path: str = "dataset") -> DatasetOptions:
        """Build from a YAML mapping; unknown keys are an error listing the known ones."""
        if not isinstance(mapping, Mapping):
            raise ValueError(f"{key_path}: expected a mapping of dataset options, got {type(mapping).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(mapping) - set(known))
        if unknown:
            raise ValueError(f"{key_path}: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(known)}")
        values = dict(mapping)
        if "io_backend" in values:
            values["io_backend"] = _io_backend_from_mapping(values["io_backend"], f"{key_path}.io_backend")
        try:
            opt = cls(**values)
        except ValueError as exc:
            # __post_init__ cannot know the YAML key path; put the caller's in front instead.
            message, default_prefix = str(exc), f"datasets.{values.get('name', 'dataset')}"
            if message.startswith(default_prefix):
                message = key_path + message[len(default_prefix) :]
            raise ValueError(message) from None
        opt.validate(key_path)
        return opt

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def is_train(self) -> bool:
        return self.phase == "train"

    def validate(self, key_path: str = "dataset") -> None:
        """All checks, including those that depend on ``phase`` and ``scale``; errors name ``key_path.key``."""
        self._check_values(key_path)
        if not self.dataroot_gt:
            raise ValueError(f"{key_path}.dataroot_gt: required (folder or .lmdb of HR/GT images)")
        if self.is_train:
            if self.gt_size is None:
                raise ValueError(f"{key_path}.gt_size: required for a training dataset (GT patch size, e.g. 128)")
            if self.gt_size % self.scale:
                raise ValueError(
                    f"{key_path}.gt_size: {self.gt_size} is not divisible by scale {self.scale} "
                    f"(the LR patch is gt_size / scale pixels)"
                )
        if self.type == "PairedImageDataset" and not self.dataroot_lq:
            raise ValueError(
                f"{key_path}.dataroot_lq: required for type PairedImageDataset; "
                f"use type SingleHRDataset to make LR images from HR on the fly"
            )
        if self.type == "SingleHRDataset" and self.dataroot_lq:
            raise ValueError(
                f"{key_path}.dataroot_lq: type SingleHRDataset makes LR images from HR; "
                f"remove dataroot_lq or use type PairedImageDataset"
            )

    def _check_values(self, key_path: str) -> None:
        if self.type not in DATASET_TYPES:
            raise ValueError(f"{key_path}.type: {self.type!r} is not one of {', '.join(DATASET_TYPES)}")
        if not isinstance(self.io_backend, IOBackendOptions):
            raise ValueError(f"{key_path}.io_backend: expected a mapping like {{type: disk}}, got {self.io_backend!r}")
        self.io_backend.validate(f"{key_path}.io_backend")
        if self.phase not in PHASES:
            raise ValueError(f"{key_path}.phase: {self.phase!r} is not one of {', '.join(PHASES)}")
        if self.prefetch_mode not in PREFETCH_MODES:
            allowed = ", ".join("null" if m is None else m for m in PREFETCH_MODES)
            raise ValueError(f"{key_path}.prefetch_mode: {self.prefetch_mode!r} is not one of {allowed}")
        if self.prefetch_mode == "cuda" and not self.pin_memory:
            raise ValueError(f"{key_path}.pin_memory: must be true with prefetch_mode cuda (async copies need it)")
        if "{}" not in self.filename_tmpl:
            raise ValueError(f"{key_path}.filename_tmpl: {self.filename_tmpl!r} must contain '{{}}' (the HR name)")
        for key in ("scale", "batch_size_per_gpu", "dataset_enlarge_ratio"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key_path}.{key}: expected an integer >= 1, got {value!r}")
        value = self.num_worker_per_gpu
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key_path}.num_worker_per_gpu: expected an integer >= 0, got {value!r}")
        if self.gt_size is not None and (
            isinstance(self.gt_size, bool) or not isinstance(self.gt_size, int) or self.gt_size < 1
        ):
            raise ValueError(f"{key_path}.gt_size: expected an integer >= 1 or null, got {self.gt_size!r}")
        for key in ("use_hflip", "use_rot", "use_shuffle", "pin_memory", "persistent_workers"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key_path}.{key}: expected true or false, got {getattr(self, key)!r}")


def _io_backend_from_mapping(value: Any, key_path: str) -> IOBackendOptions:
    if isinstance(value, IOBackendOptions):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{key_path}: expected a mapping like {{type: disk}}, got {value!r}")
    unknown = sorted(set(value) - {"type"})
    if unknown:
        raise ValueError(f"{key_path}: unknown key(s) {', '.join(unknown)}; allowed keys: type")
    backend = IOBackendOptions(**value)
    backend.validate(key_path)
    return backend
