"""Options of one dataset (one entry under ``datasets:`` in a YAML option file).

Key names are BasicSR's, so BasicSR option files carry over. ``phase`` and ``scale``
are normally filled in by the option loader (phase from the dataset's key, e.g.
``train`` / ``val_1`` -> ``val``; scale from the top-level ``scale``).

Two dataset types:
- ``PairedImageDataset``: HR (``dataroot_gt``) and LR (``dataroot_lq``) images on disk or in LMDB,
  paired by name;
- ``SingleHRDataset``: HR images only; the LR image is made on the fly with the MATLAB-compatible
  bicubic (``esrgan.imageops.imresize``), for users who have no LR set;
- ``RealESRGANDataset`` / ``RealESRGANPairedDataset`` (:class:`RealESRGANDatasetOptions`): HR crops
  with Real-ESRGAN's blur kernels (the LR is degraded on the training device), and real pairs.

Checks that need nothing but the values run on construction; checks that depend on
``phase`` and ``scale`` (which the loader may fill in later) run in :meth:`DatasetOptions.validate`,
which the dataset builder calls too.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from esrgan.options.convert import from_mapping
from esrgan.options.errors import OptionsError

DATASET_TYPES = ("PairedImageDataset", "SingleHRDataset", "RealESRGANDataset", "RealESRGANPairedDataset")
IO_BACKENDS = ("disk", "lmdb")
PHASES = ("train", "val", "test")
PREFETCH_MODES = (None, "cpu", "cuda")
# The blur kernel shapes of Real-ESRGAN's degradation (``esrgan.data.degradations.kernels`` draws them).
KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


@dataclass
class IOBackendOptions:
    """``io_backend: {type: disk}`` or ``{type: lmdb}``; the LMDB paths are the dataroots."""

    type: str = "disk"

    def validate(self, key_path: str = "io_backend") -> None:
        if self.type not in IO_BACKENDS:
            raise OptionsError(key=f"{key_path}.type", reason=f"{self.type!r} is not one of {', '.join(IO_BACKENDS)}")


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
        if isinstance(self.io_backend, Mapping):  # DatasetOptions(io_backend={"type": "lmdb"}) in code
            self.io_backend = from_mapping(IOBackendOptions, self.io_backend, "io_backend")

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], key_path: str = "dataset") -> DatasetOptions:
        """Build from a YAML mapping and validate; every error names ``key_path.key``."""
        opt = from_mapping(cls, mapping, key_path)
        opt.validate(key_path)
        return opt

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def input_paths(self) -> dict[str, str | None]:
        """The files and folders this dataset reads, by key (checked before a run touches anything)."""
        return {"dataroot_gt": self.dataroot_gt, "dataroot_lq": self.dataroot_lq, "meta_info_file": self.meta_info_file}

    def expand_user_paths(self) -> None:
        """``~`` in the paths of :meth:`input_paths` -> the home folder."""
        for key, value in self.input_paths().items():
            if value is not None:
                setattr(self, key, os.path.expanduser(value))

    @property
    def is_train(self) -> bool:
        return self.phase == "train"

    def validate(self, key_path: str = "dataset") -> None:
        """All checks, including those that depend on ``phase`` and ``scale``; errors name ``key_path.key``."""
        self._check_values(key_path)
        if not self.dataroot_gt:
            raise OptionsError(key=f"{key_path}.dataroot_gt", reason="required (folder or .lmdb of HR/GT images)")
        if self.is_train:
            if self.gt_size is None:
                raise OptionsError(
                    key=f"{key_path}.gt_size",
                    reason="required for a training dataset (GT patch size, e.g. 128)",
                )
            if self.gt_size % self.scale:
                raise OptionsError(
                    key=f"{key_path}.gt_size",
                    reason=f"{self.gt_size} is not divisible by scale {self.scale} "
                    f"(the LR patch is gt_size / scale pixels)",
                )
        if self.type in ("PairedImageDataset", "RealESRGANPairedDataset") and not self.dataroot_lq:
            raise OptionsError(
                key=f"{key_path}.dataroot_lq",
                reason=f"required for type {self.type}; use type SingleHRDataset to make LR images from HR on the fly",
            )
        if self.type == "SingleHRDataset" and self.dataroot_lq:
            raise OptionsError(
                key=f"{key_path}.dataroot_lq",
                reason="type SingleHRDataset makes LR images from HR; "
                "remove dataroot_lq or use type PairedImageDataset",
            )

    def _check_values(self, key_path: str) -> None:
        if self.type not in DATASET_TYPES:
            raise OptionsError(f"{self.type!r} is not one of {', '.join(DATASET_TYPES)}", key=f"{key_path}.type")
        self.io_backend.validate(f"{key_path}.io_backend")
        if self.phase not in PHASES:
            raise OptionsError(f"{self.phase!r} is not one of {', '.join(PHASES)}", key=f"{key_path}.phase")
        if self.prefetch_mode not in PREFETCH_MODES:
            allowed = ", ".join("null" if m is None else m for m in PREFETCH_MODES)
            raise OptionsError(f"{self.prefetch_mode!r} is not one of {allowed}", key=f"{key_path}.prefetch_mode")
        if self.prefetch_mode == "cuda" and not self.pin_memory:
            raise OptionsError(
                "must be true with prefetch_mode cuda (async copies need it)",
                key=f"{key_path}.pin_memory",
            )
        if "{}" not in self.filename_tmpl:
            raise OptionsError(
                f"{self.filename_tmpl!r} must contain '{{}}' (the HR name)",
                key=f"{key_path}.filename_tmpl",
            )
        for key, low in (
            ("scale", 1),
            ("batch_size_per_gpu", 1),
            ("dataset_enlarge_ratio", 1),
            ("num_worker_per_gpu", 0),
        ):
            _check_int(getattr(self, key), f"{key_path}.{key}", low)
        if self.gt_size is not None:
            _check_int(self.gt_size, f"{key_path}.gt_size", 1)


@dataclass
class RealESRGANDatasetOptions(DatasetOptions):
    """``type: RealESRGANDataset`` / ``RealESRGANPairedDataset``: Real-ESRGAN's keys on top of the common ones.

    The blur keys (BasicSR's names; ``*2`` for the second degradation round) describe the kernels
    the workers draw; ``blur_kernel_size`` is the largest kernel (sizes 7, 9, ... up to it; BasicSR
    ignores the key and always uses 7..21). ``meta_info`` is BasicSR's name for the list of images
    (``gt, lq`` pairs for the paired type). ``crop_pad_size`` (ours; BasicSR fixes 400) is the HR crop
    the degradation starts from; ``gt_size`` the patch trained on, cut after degrading.
    """

    type: str = "RealESRGANDataset"
    meta_info: str | None = None
    blur_kernel_size: int = 21
    kernel_list: list[str] = field(default_factory=lambda: list(KERNEL_TYPES))
    kernel_prob: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_prob: float = 0.1
    blur_sigma: list[float] = field(default_factory=lambda: [0.2, 3.0])
    betag_range: list[float] = field(default_factory=lambda: [0.5, 4.0])
    betap_range: list[float] = field(default_factory=lambda: [1.0, 2.0])
    blur_kernel_size2: int = 21
    kernel_list2: list[str] = field(default_factory=lambda: list(KERNEL_TYPES))
    kernel_prob2: list[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_prob2: float = 0.1
    blur_sigma2: list[float] = field(default_factory=lambda: [0.2, 1.5])
    betag_range2: list[float] = field(default_factory=lambda: [0.5, 4.0])
    betap_range2: list[float] = field(default_factory=lambda: [1.0, 2.0])
    final_sinc_prob: float = 0.8
    crop_pad_size: int = 400

    def input_paths(self) -> dict[str, str | None]:
        return {**super().input_paths(), "meta_info": self.meta_info}

    def validate(self, key_path: str = "dataset") -> None:
        super().validate(key_path)
        if self.type == "RealESRGANDataset":
            if self.dataroot_lq:
                raise OptionsError(
                    key=f"{key_path}.dataroot_lq",
                    reason="type RealESRGANDataset makes the LR on the training device; "
                    "remove dataroot_lq or use type RealESRGANPairedDataset",
                )
            if not self.is_train:
                raise OptionsError(
                    key=f"{key_path}.type",
                    reason="RealESRGANDataset is for training; validate on a fixed LR set "
                    "('esrgan prepare degrade') with type PairedImageDataset",
                )
            if self.gt_size is not None and self.gt_size > self.crop_pad_size:
                raise OptionsError(
                    key=f"{key_path}.gt_size",
                    reason=f"{self.gt_size} is larger than crop_pad_size {self.crop_pad_size} "
                    f"(the HR crop that is degraded); expected gt_size <= crop_pad_size",
                )
        if self.type not in ("RealESRGANDataset", "RealESRGANPairedDataset"):
            raise OptionsError(key=f"{key_path}.type", reason=f"{self.type!r} does not take Real-ESRGAN options")
        _check_int(self.crop_pad_size, f"{key_path}.crop_pad_size", 1)
        for suffix in ("", "2"):
            self._check_round(key_path, suffix)
        _check_probability(self.final_sinc_prob, f"{key_path}.final_sinc_prob")

    def _check_round(self, key_path: str, suffix: str) -> None:
        def key(name: str) -> str:
            return f"{key_path}.{name}{suffix}"

        size = getattr(self, f"blur_kernel_size{suffix}")
        _check_int(size, key("blur_kernel_size"), 1)
        if size % 2 == 0 or size < 7:
            raise OptionsError(
                key=key("blur_kernel_size"),
                reason=f"expected an odd size >= 7 (kernels are centred), got {size}",
            )
        if size // 2 >= self.crop_pad_size:
            raise OptionsError(
                key=key("blur_kernel_size"),
                reason=f"{size} is too large for crop_pad_size {self.crop_pad_size} "
                f"(reflected borders need images larger than half the kernel)",
            )
        kinds, probs = getattr(self, f"kernel_list{suffix}"), getattr(self, f"kernel_prob{suffix}")
        unknown = [k for k in kinds if k not in KERNEL_TYPES]
        if unknown or not kinds:
            raise OptionsError(
                key=key("kernel_list"),
                reason=f"{unknown or kinds!r} not kernel types; known: {', '.join(KERNEL_TYPES)}",
            )
        if len(probs) != len(kinds):
            raise OptionsError(
                key=key("kernel_prob"),
                reason=f"{len(probs)} probabilities for {len(kinds)} kernel types in {key('kernel_list')}",
            )
        check_distribution(probs, key("kernel_prob"))
        _check_probability(getattr(self, f"sinc_prob{suffix}"), key("sinc_prob"))
        for name in ("blur_sigma", "betag_range", "betap_range"):
            check_range(getattr(self, f"{name}{suffix}"), key(name), low=0.0, strict_low=True)


def _check_int(value: Any, key: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise OptionsError(key=key, reason=f"expected an integer >= {low}, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_probability(value: Any, key: str) -> None:
    if not _is_number(value) or not 0 <= value <= 1:
        raise OptionsError(key=key, reason=f"expected a probability in [0, 1], got {value!r}")


def check_distribution(probs: Any, key: str, length: int | None = None) -> None:
    """Probabilities that sum to 1 (within 1e-6), each in [0, 1]; ``length`` entries when given."""
    if not isinstance(probs, list | tuple) or not all(_is_number(p) for p in probs):
        raise OptionsError(key=key, reason=f"expected a list of probabilities, got {probs!r}")
    if length is not None and len(probs) != length:
        raise OptionsError(key=key, reason=f"expected {length} probabilities, got {len(probs)} ({list(probs)})")
    if any(p < 0 or p > 1 for p in probs) or abs(sum(probs) - 1) > 1e-6:
        raise OptionsError(
            key=key, reason=f"probabilities must be in [0, 1] and sum to 1, got {list(probs)} (sum {sum(probs):g})"
        )


def check_range(
    value: Any, key: str, low: float | None = None, high: float | None = None, strict_low: bool = False
) -> None:
    """A ``[min, max]`` pair of numbers with min <= max, inside ``[low, high]`` when given."""
    if not isinstance(value, list | tuple) or len(value) != 2 or not all(_is_number(v) for v in value):
        raise OptionsError(key=key, reason=f"expected [min, max], got {value!r}")
    lo, hi = value
    if lo > hi:
        raise OptionsError(key=key, reason=f"min {lo} > max {hi}; expected [min, max]")
    if low is not None and (lo < low or (strict_low and lo == low)):
        raise OptionsError(key=key, reason=f"expected values {'>' if strict_low else '>='} {low}, got {list(value)}")
    if high is not None and hi > high:
        raise OptionsError(key=key, reason=f"expected values <= {high}, got {list(value)}")


DATASET_OPTION_CLASSES: dict[str, type[DatasetOptions]] = {
    "RealESRGANDataset": RealESRGANDatasetOptions,
    "RealESRGANPairedDataset": RealESRGANDatasetOptions,
}


def dataset_options_class(type_name: Any) -> type[DatasetOptions]:
    """The options class for a dataset ``type`` (the common :class:`DatasetOptions` unless it has its own keys)."""
    return DATASET_OPTION_CLASSES.get(type_name, DatasetOptions) if isinstance(type_name, str) else DatasetOptions
