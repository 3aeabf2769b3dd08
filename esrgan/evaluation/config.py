"""Option files of the tester (``configs/test_*.yml``) and of interpolation sweeps (``configs/interp_*.yml``).

BasicSR's vocabulary: ``name``, ``scale``, ``datasets: {test_1: {name, dataroot_gt, dataroot_lq,
filename_tmpl}}``, ``path: {pretrain_network_g, strict_load_g}``, ``network_g``; ours: a ``models``
list (``bicubic``, checkpoint paths, zoo names, or ``{name: label, model: spec}``), ``val``
(output and device choices), ``metrics`` (a list or comma-separated names: psnr, ssim, niqe, lpips;
without it psnr, ssim and the types of BasicSR's ``val.metrics`` entries) and, for sweeps,
``interp: {psnr, gan, alphas, save_models}``.
Unknown keys are errors naming their key path and the allowed keys. Relative folders are
relative to the working directory, as in BasicSR (run from the repository root).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from esrgan.evaluation.testsets import TestSet, make_test_set

# BasicSR keys that an option file may carry and the tester has no use for.
_IGNORED_TOP = {"model_type", "num_gpu", "manual_seed", "is_train", "dist", "suffix"}
_TOP = {"name", "scale", "models", "path", "network_g", "datasets", "val", "interp", "metrics"} | _IGNORED_TOP
_DATASET = {"name", "type", "dataroot_gt", "dataroot_lq", "filename_tmpl", "io_backend", "phase", "scale"}
_PATH = {"pretrain_network_g", "strict_load_g", "param_key_g", "results_root", "experiments_root"}
_VAL = {"save_img", "comparisons", "tile", "precision", "device", "metrics", "suffix"}
_INTERP = {"psnr", "gan", "alphas", "save_models"}


class ConfigError(ValueError):
    """An option file is missing, malformed, or has a bad key or value (the message names which)."""


@dataclass
class EvalConfig:
    name: str
    scale: int
    models: list[str | tuple[str, str]]
    test_sets: list[TestSet]
    network_g: dict[str, Any] | None = None
    strict_load_g: bool = True
    experiments_root: Path = Path("experiments")
    save_img: bool = True
    comparisons: bool = True
    tile: int = 0
    precision: str = "fp32"
    device: str | None = None
    metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim"])
    # sweeps only
    psnr: str | None = None
    gan: str | None = None
    alphas: Any = None
    save_models: bool = False
    source: Path | None = field(default=None, repr=False)


def _check_keys(section: Any, allowed: set[str], where: str, file: Path) -> Mapping[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{file}: {where} must be a mapping, got {type(section).__name__}")
    unknown = sorted(set(section) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"{file}: unknown key {prefix}{unknown[0]}; allowed: {', '.join(sorted(allowed))}")
    return section


def _typed(value: Any, kind: type | tuple[type, ...], key: str, file: Path, what: str) -> Any:
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{file}: {key} must be {what}, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{file}: {key} must be {what}, got {value!r}")
    return value


def _models(raw: Mapping[str, Any], file: Path) -> list[str | tuple[str, str]]:
    models: list[str | tuple[str, str]] = []
    for i, item in enumerate(raw.get("models") or []):
        if isinstance(item, str):
            models.append(item)
        elif isinstance(item, Mapping) and set(item) == {"name", "model"}:
            models.append((str(item["name"]), str(item["model"])))
        else:
            raise ConfigError(f"{file}: models[{i}] must be a string or {{name: label, model: spec}}, got {item!r}")
    pretrain = (raw.get("path") or {}).get("pretrain_network_g")
    if pretrain:
        models.append(str(pretrain))
    return models


def _metrics(raw: Mapping[str, Any], val: Mapping[str, Any], file: Path) -> list[str]:
    from esrgan.metrics import parse_metric_list

    given, key = raw.get("metrics"), "metrics"
    if given is None and isinstance(val.get("metrics"), Mapping):
        # BasicSR's val.metrics: {name: {type: calculate_psnr, ...}}: its types are scored beside psnr and ssim
        key = "val.metrics"
        given = ["psnr", "ssim", *((m.get("type") if isinstance(m, Mapping) else None) or name
                                   for name, m in val["metrics"].items())]
    if given is None:
        return ["psnr", "ssim"]
    if not isinstance(given, str | list):
        raise ConfigError(f"{file}: {key} must be a list or a comma-separated string of metric names, got {given!r}")
    try:
        return parse_metric_list(given)
    except ValueError as exc:
        raise ConfigError(f"{file}: {key}: {exc}") from None


def _test_sets(raw: Mapping[str, Any], file: Path) -> list[TestSet]:
    datasets = _check_keys(raw.get("datasets"), set(raw.get("datasets") or {}), "datasets", file)
    if not datasets:
        raise ConfigError(f"{file}: datasets is empty; add e.g. test_1: {{name: Set5, dataroot_gt: datasets/Set5/HR}}")
    sets = []
    for key, ds in datasets.items():
        ds = _check_keys(ds, _DATASET, f"datasets.{key}", file)
        if not ds.get("dataroot_gt"):
            raise ConfigError(f"{file}: datasets.{key}.dataroot_gt is required (the HR folder)")
        backend = (ds.get("io_backend") or {}).get("type", "disk")
        if backend != "disk":
            raise ConfigError(f"{file}: datasets.{key}.io_backend.type must be 'disk' for testing, got {backend!r}")
        try:
            test_set = make_test_set(ds.get("name"), ds["dataroot_gt"], ds.get("dataroot_lq"), ds.get("filename_tmpl"))
        except (FileNotFoundError, ValueError) as exc:
            raise ConfigError(f"{file}: datasets.{key}: {exc}") from exc
        sets.append(test_set)
    return sets


def load_eval_config(path: str | os.PathLike[str], *, require_interp: bool = False) -> EvalConfig:
    """Read and check a test or sweep option file; folders must exist."""
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"option file not found: {file}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    raw = _check_keys(raw, _TOP, "", file)
    for key in ("name", "scale"):
        if key not in raw:
            raise ConfigError(f"{file}: missing required key {key}")
    name = _typed(raw["name"], str, "name", file, "a string")
    scale = _typed(raw["scale"], int, "scale", file, "a positive integer")
    if scale < 1:
        raise ConfigError(f"{file}: scale must be a positive integer, got {scale}")
    paths = _check_keys(raw.get("path"), _PATH, "path", file)
    val = _check_keys(raw.get("val"), _VAL, "val", file)
    interp = _check_keys(raw.get("interp"), _INTERP, "interp", file)
    network_g = raw.get("network_g")
    if network_g is not None and (not isinstance(network_g, Mapping) or "type" not in network_g):
        raise ConfigError(f"{file}: network_g must be a mapping with a 'type' key, got {network_g!r}")
    models = _models(raw, file)
    if require_interp:
        for key in ("psnr", "gan"):
            if not interp.get(key):
                raise ConfigError(f"{file}: interp.{key} is required (the {key.upper()} checkpoint)")
    elif not models:
        raise ConfigError(f"{file}: no models: give a models list or path.pretrain_network_g")
    tile = _typed(val.get("tile", 0), int, "val.tile", file, "an integer (0 automatic, N pixels)")
    if tile < 0:
        raise ConfigError(f"{file}: val.tile must be 0 (automatic) or a tile size N > 0 in pixels, got {tile}")
    cfg = EvalConfig(
        name=name,
        scale=scale,
        models=models,
        test_sets=_test_sets(raw, file),
        network_g=dict(network_g) if network_g else None,
        strict_load_g=bool(paths.get("strict_load_g", True)),
        experiments_root=Path(paths.get("experiments_root") or paths.get("results_root") or "experiments"),
        save_img=bool(val.get("save_img", True)),
        comparisons=bool(val.get("comparisons", True)),
        tile=tile,
        precision=str(val.get("precision", "fp32")),
        device=val.get("device"),
        metrics=_metrics(raw, val, file),
        psnr=interp.get("psnr"),
        gan=interp.get("gan"),
        alphas=interp.get("alphas", "0:1:0.1"),
        save_models=bool(interp.get("save_models", False)),
        source=file,
    )
    return cfg
