"""Option files of the tester (``configs/test_*.yml``) and of interpolation sweeps (``configs/interp_*.yml``).

BasicSR's vocabulary: ``name``, ``scale``, ``datasets: {test_1: {name, dataroot_gt, dataroot_lq,
filename_tmpl}}``, ``path: {pretrain_network_g, strict_load_g, param_key_g}``, ``network_g``, ``val``
(``save_img``, ``pbar``, ``metrics``); ours: a ``models`` list (``bicubic``, checkpoint paths, zoo names,
or ``{name: label, model: spec}``), ``metrics`` (a list or comma-separated names: psnr, ssim, niqe,
lpips; without it psnr, ssim and the types of ``val.metrics``), ``val.{comparisons, tile,
precision, device}`` and, for sweeps, ``interp: {psnr, gan, alphas, save_models}``.
Read by the same loader and converter as training files: duplicate keys, unknown keys and bad values
are :class:`OptionsError` naming the file and key path. Relative folders are relative to the working
directory, as in BasicSR (run from the repository root).

BasicSR keys that describe the run but change nothing in scoring are accepted: ``model_type``,
``num_gpu`` (0 = CPU when ``val.device`` is not given), ``manual_seed``, ``is_train``, ``dist``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from esrgan.options.convert import from_mapping
from esrgan.options.datasets import IOBackendOptions
from esrgan.options.errors import OptionsError, _join, _show
from esrgan.options.sections import MetricOptions, _parse_metrics
from esrgan.options.yaml_io import read_option_file
from esrgan.utils.folders import check_folder_name


@dataclass
class TestDatasetOptions:
    """One test set: HR folder, optional LR folder (else MATLAB bicubic LR on the fly)."""

    __test__ = False  # not a pytest class

    dataroot_gt: str
    name: str | None = None
    type: Literal["PairedImageDataset", "SingleHRDataset"] = "PairedImageDataset"
    dataroot_lq: str | None = None
    filename_tmpl: str | None = None
    io_backend: IOBackendOptions = field(default_factory=IOBackendOptions)
    phase: Literal["test", "val"] | None = None
    scale: int | None = None  # BasicSR fills it in; must equal the top-level scale when given

    def check(self, path: str) -> None:
        if self.io_backend.type != "disk":
            raise OptionsError(
                f"must be 'disk' for testing (image folders), got {self.io_backend.type!r}",
                key=_join(path, "io_backend.type"),
            )


@dataclass
class TestPathOptions:
    pretrain_network_g: str | None = None
    strict_load_g: bool = True
    param_key_g: str | None = None  # which weights of the checkpoint: params_ema, params, ... (None: EMA first)
    results_root: str | None = None
    experiments_root: str | None = None


@dataclass
class TestValOptions:
    save_img: bool = True
    comparisons: bool = True
    tile: int = 0  # as Upscaler's: 0 automatic (whole image when it fits in memory), N: N-pixel tiles
    precision: Literal["fp32", "fp16", "bf16", "auto"] = "fp32"
    device: str | None = None
    pbar: bool = True  # progress bars (``-q`` turns them off too)
    # BasicSR's metric section: its types say which metrics the tester reports (when ``metrics`` is not given)
    metrics: dict[str, MetricOptions] = field(default_factory=dict, metadata={"parse": _parse_metrics})
    suffix: str | None = None  # refused when set: see check()

    def check(self, path: str) -> None:
        if self.tile < 0:
            raise OptionsError(
                f"must be 0 (automatic) or a tile size N > 0 in pixels, got {self.tile}", key=_join(path, "tile")
            )
        if self.suffix is not None:
            raise OptionsError(
                "not supported: SR images are saved as <set>/<model>/<image>.png, the names the comparison "
                "pictures and report.html find them by; remove val.suffix",
                key=_join(path, "suffix"),
            )


@dataclass
class InterpOptions:
    psnr: str | None = None
    gan: str | None = None
    alphas: str | list[float] = "0:1:0.1"  # start:stop:step (stop included) or a list
    save_models: bool = False


def _parse_models(value: Any, path: str) -> list[str | tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OptionsError(f"expected a list of models, got {_show(value)}", key=path)
    models: list[str | tuple[str, str]] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            models.append(item)
        elif isinstance(item, Mapping) and set(item) == {"name", "model"}:
            try:  # the label becomes the folder <run>/<set>/<name>/
                check_folder_name(item["name"], "model name")
            except ValueError as exc:
                raise OptionsError(str(exc), key=f"{path}[{i}].name") from None
            models.append((str(item["name"]), str(item["model"])))
        else:
            raise OptionsError(f"expected a string or {{name: label, model: spec}}, got {_show(item)}",
                               key=f"{path}[{i}]")
    return models


def _parse_network(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or "type" not in value:
        raise OptionsError(f"expected a mapping with a 'type' key, got {_show(value)}", key=path)
    return dict(value)


@dataclass
class TestOptions:
    """A test or sweep option file, validated. ``source`` is the file it came from."""

    __test__ = False

    name: str
    scale: int
    models: list[str | tuple[str, str]] = field(default_factory=list, metadata={"parse": _parse_models})
    datasets: dict[str, TestDatasetOptions] = field(default_factory=dict)
    network_g: dict[str, Any] | None = field(default=None, metadata={"parse": _parse_network})
    path: TestPathOptions = field(default_factory=TestPathOptions)
    val: TestValOptions = field(default_factory=TestValOptions)
    interp: InterpOptions | None = None
    # ours: metric names, a list or "psnr,ssim,niqe,lpips" (default: psnr, ssim and val.metrics' types)
    metrics: str | list[str] | None = None
    # BasicSR's description of the run (see the module docstring)
    model_type: str | None = None
    num_gpu: int | Literal["auto"] | None = None
    manual_seed: int | None = None
    is_train: bool | None = None
    dist: bool | None = None
    source: str | None = field(default=None, init=False, repr=False)

    def check(self, path: str) -> None:
        if self.scale < 1:
            raise OptionsError(f"must be >= 1, got {self.scale}", key="scale")
        if not self.datasets:
            raise OptionsError("is empty; add e.g. test_1: {name: Set5, dataroot_gt: datasets/Set5/HR}", key="datasets")
        for key, ds in self.datasets.items():
            if ds.scale is not None and ds.scale != self.scale:
                raise OptionsError(f"{ds.scale} differs from the top-level scale {self.scale}",
                                   key=f"datasets.{key}.scale")
        if self.metrics is not None:
            from esrgan.metrics import parse_metric_list

            try:
                parse_metric_list(self.metrics)
            except ValueError as exc:
                raise OptionsError(str(exc), key="metrics") from None
        for name, metric in self.val.metrics.items():
            if metric.crop_border is not None and metric.crop_border != self.scale:
                raise OptionsError(
                    f"{metric.crop_border}: the tester crops scale ({self.scale}) pixels at each border, as the "
                    "SR literature scores; remove crop_border or set it to the scale",
                    key=f"val.metrics.{name}.crop_border",
                )

    @property
    def models_to_test(self) -> list[str | tuple[str, str]]:
        """The ``models`` list plus ``path.pretrain_network_g`` (BasicSR's way to name one model)."""
        extra = [self.path.pretrain_network_g] if self.path.pretrain_network_g else []
        return [*self.models, *extra]

    @property
    def metric_names(self) -> list[str]:
        """What the tester scores: ``metrics``, else psnr, ssim and the types of ``val.metrics``."""
        from esrgan.metrics import parse_metric_list

        if self.metrics is not None:
            return parse_metric_list(self.metrics)
        if self.val.metrics:  # BasicSR's val.metrics: its types are scored beside psnr and ssim
            return parse_metric_list(["psnr", "ssim", *(m.type for m in self.val.metrics.values())])
        return ["psnr", "ssim"]

    @property
    def experiments_root(self) -> Path:
        return Path(self.path.experiments_root or self.path.results_root or "experiments")

    @property
    def device(self) -> str | None:
        return self.val.device or ("cpu" if self.num_gpu == 0 else None)


def load_test_options(path: str | os.PathLike[str], *, require_interp: bool = False) -> TestOptions:
    """Read and check a test (or, with ``require_interp``, sweep) option file."""
    raw = read_option_file(path)
    try:
        opt = from_mapping(TestOptions, raw, "")
        if require_interp:
            interp = opt.interp or InterpOptions()
            for key, value in (("psnr", interp.psnr), ("gan", interp.gan)):
                if not value:
                    raise OptionsError(f"required (the {key.upper()} checkpoint)", key=f"interp.{key}")
        elif not opt.models_to_test:
            raise OptionsError("no models: give a models list or path.pretrain_network_g", key="models")
    except OptionsError as err:
        raise err.with_file(path) from None
    opt.source = os.fspath(path)
    return opt


__all__ = ["InterpOptions", "TestDatasetOptions", "TestOptions", "TestPathOptions",
           "TestValOptions", "load_test_options"]
