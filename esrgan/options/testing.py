"""Option files of the tester (``configs/test_*.yml``) and of interpolation sweeps (``configs/interp_*.yml``).

BasicSR's vocabulary: ``name``, ``scale``, ``datasets: {test_1: {name, type, dataroot_gt, dataroot_lq,
filename_tmpl}}``, ``path: {pretrain_network_g, strict_load_g, param_key_g}``, ``network_g``, ``val``
(``save_img``, ``pbar``, ``metrics``); ours: a ``models`` list (``bicubic``, checkpoint paths, zoo names,
or ``{name: label, model: spec}``), ``metrics`` (a list or comma-separated names: psnr, ssim, niqe,
lpips; without it psnr, ssim and the types of ``val.metrics``), ``val.{comparisons, tile,
precision, device}`` and, for sweeps, ``interp: {psnr, gan, alphas, save_models, strip_image}``.
Read by the same loader, upgrade of BasicSR's old names and converter as training files, and
``network_g`` by the training file's parser: duplicate keys, unknown keys and bad values are
:class:`OptionsError` naming the file and key path. Relative folders are relative to the working
directory, as in BasicSR (run from the repository root).

``esrgan test`` and ``esrgan interp`` give their flags as overrides of the same mapping
(:func:`test_options_from_dict`), so every default is the one stated here.

BasicSR keys that describe the run but change nothing in scoring are accepted: ``model_type``,
``num_gpu`` (0 = CPU when ``val.device`` is not given), ``manual_seed``, ``is_train``, ``dist``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from esrgan.options.basicsr import resolve_common, upgrade_basicsr
from esrgan.options.convert import deep_copy, from_mapping
from esrgan.options.datasets import IOBackendOptions
from esrgan.options.errors import OptionsError, _join, _show
from esrgan.options.sections import MetricOptions, NetworkOptions, _parse_metrics, parse_generator
from esrgan.options.yaml_io import read_option_file
from esrgan.utils.folders import EXPERIMENTS_ROOT, check_folder_name

# Scores are computed in fp32 unless asked otherwise: half-precision rounding would move them.
SCORING_PRECISION = "fp32"
Precision = Literal["fp32", "fp16", "bf16", "auto"]


@dataclass
class TestDatasetOptions:
    """One test set: HR folder, optional LR folder (else MATLAB bicubic LR on the fly).

    ``type``: ``PairedImageDataset`` needs ``dataroot_lq``; ``SingleHRDataset`` makes the LR from the HR
    (and refuses ``dataroot_lq``); left out, the set is paired when ``dataroot_lq`` is given.
    """

    __test__ = False  # not a pytest class

    dataroot_gt: str
    name: str | None = None  # None: the HR folder's name (its parent's when it is called HR or GT)
    type: Literal["PairedImageDataset", "SingleHRDataset"] | None = None
    dataroot_lq: str | None = None
    filename_tmpl: str | None = None
    io_backend: IOBackendOptions = field(default_factory=IOBackendOptions)
    phase: Literal["test", "val"] = "test"  # from the dataset's key (test_1 -> test), as in BasicSR
    scale: int | None = None  # BasicSR fills it in; must equal the top-level scale when given

    def check(self, path: str) -> None:
        if self.io_backend.type != "disk":
            raise OptionsError(
                f"must be 'disk' for testing (image folders), got {self.io_backend.type!r}",
                key=_join(path, "io_backend.type"),
            )
        if self.type == "PairedImageDataset" and not self.dataroot_lq:
            raise OptionsError("required for type PairedImageDataset; use type SingleHRDataset (or leave type out) "
                               "to make the LR with MATLAB bicubic", key=_join(path, "dataroot_lq"))
        if self.type == "SingleHRDataset" and self.dataroot_lq:
            raise OptionsError("type SingleHRDataset makes the LR from the HR; remove dataroot_lq or use type "
                               "PairedImageDataset", key=_join(path, "dataroot_lq"))


@dataclass
class TestPathOptions:
    pretrain_network_g: str | None = None
    strict_load_g: bool = True
    param_key_g: str | None = None  # which weights of the checkpoint: params_ema, params, ... (None: EMA first)
    results_root: str | None = None  # BasicSR's name for experiments_root
    experiments_root: str | None = None  # the run goes to <experiments_root>/<name> (default: experiments)

    @property
    def root(self) -> Path:
        return Path(self.experiments_root or self.results_root or EXPERIMENTS_ROOT)


@dataclass
class TestValOptions:
    save_img: bool = True
    comparisons: bool = True
    tile: int = 0  # as Upscaler's: 0 automatic (whole image when it fits in memory), N: N-pixel tiles
    precision: Precision = SCORING_PRECISION
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
    strip_image: str | None = None  # the HR stem shown in each set's strip (None: the set's first image)
    # the alpha a declared criterion chooses (esrgan.metrics.selection), e.g.
    # "lowest lpips with psnr_y no more than 0.5 dB below the PSNR model"; its names are checked against the
    # sweep's columns when it starts
    select: str | None = None

    def check(self, path: str) -> None:
        if self.select is not None:
            from esrgan.metrics.selection import parse_criterion

            try:
                parse_criterion(self.select)
            except ValueError as exc:
                raise OptionsError(str(exc), key=_join(path, "select")) from None


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


@dataclass
class TestOptions:
    """A test or sweep option file (or the flags standing for one), validated.

    ``source``: the file it came from (None: the command line); ``flags``: key path -> the flag that set it.
    """

    __test__ = False

    name: str
    scale: int
    models: list[str | tuple[str, str]] = field(default_factory=list, metadata={"parse": _parse_models})
    datasets: dict[str, TestDatasetOptions] = field(default_factory=dict)
    network_g: NetworkOptions | None = field(default=None, metadata={"parse": parse_generator})
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
    flags: dict[str, str] = field(default_factory=dict, init=False, repr=False)

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
            if metric.crop_border != self.scale:
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
        from esrgan.metrics import DEFAULT_METRICS, parse_metric_list

        if self.metrics is not None:
            return parse_metric_list(self.metrics)
        # BasicSR's val.metrics: its types are scored beside psnr and ssim
        return parse_metric_list([*DEFAULT_METRICS, *(m.type for m in self.val.metrics.values())])

    @property
    def experiments_root(self) -> Path:
        return self.path.root

    @property
    def device(self) -> str | None:
        return self.val.device or ("cpu" if self.num_gpu == 0 else None)


def test_options_from_dict(
    raw: Any,
    source: str | os.PathLike[str] | None = None,
    *,
    require_interp: bool = False,
    flags: Mapping[str, str] | None = None,
) -> TestOptions:
    """A test (or, with ``require_interp``, sweep) option mapping, checked; errors name ``source`` and the key,
    or the flag of ``flags`` (key path -> flag) that set the value."""
    flags = dict(flags or {})
    try:
        if not isinstance(raw, Mapping):
            raise OptionsError(f"expected a mapping of option sections at the top level, got {_show(raw)}")
        raw = deep_copy(raw)
        upgrade_basicsr(raw)
        resolve_common(raw, training=False)
        opt = from_mapping(TestOptions, raw, "")
        if require_interp:
            interp = opt.interp or InterpOptions()
            for key, value in (("psnr", interp.psnr), ("gan", interp.gan)):
                if not value:
                    raise OptionsError(f"required (the {key.upper()} checkpoint)", key=f"interp.{key}")
        elif not opt.models_to_test:
            raise OptionsError("no models: give a models list or path.pretrain_network_g", key="models")
    except OptionsError as err:
        flag = next((f for k, f in flags.items() if err.key and (err.key == k or err.key.startswith(k + "."))), None)
        if flag is not None:
            raise OptionsError(err.reason, key=flag) from None
        raise err.with_file(source) if source is not None else err from None
    opt.source = None if source is None else os.fspath(source)
    opt.flags = flags
    return opt


test_options_from_dict.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name


def load_test_options(path: str | os.PathLike[str], *, require_interp: bool = False) -> TestOptions:
    """Read and check a test (or, with ``require_interp``, sweep) option file."""
    return test_options_from_dict(read_option_file(path), path, require_interp=require_interp)


__all__ = ["SCORING_PRECISION", "InterpOptions", "TestDatasetOptions", "TestOptions", "TestPathOptions",
           "TestValOptions", "load_test_options", "test_options_from_dict"]
