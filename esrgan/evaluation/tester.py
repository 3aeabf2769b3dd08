"""The tester: PSNR/SSIM (and NIQE, LPIPS on request) of models on test sets, as tables, SR images
and comparison pictures.

Scoring follows the SR literature's MATLAB scripts (and the trainer's validation):
HR mod-cropped to the scale, SR rounded to the image's integer type, ``scale`` pixels
cropped at every border, PSNR/SSIM on Y (MATLAB ``rgb2ycbcr``) and on RGB; grey images
on their own values. Outputs go to ``experiments/<name>/``: ``results.json``,
``results.csv``, ``<set>/<model>/<image>.png``, ``<set>/compare/<image>.png`` and, for the
HTML report's viewer, the mod-cropped HR (``<set>/_hr/``) and, when bicubic is not one of
the models, the bicubic baseline (``<set>/_bicubic/``).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from esrgan.data.image import imwrite
from esrgan.evaluation.compare import comparison_picture, error_map
from esrgan.evaluation.layout import BICUBIC_FOLDER, COMPARE_FOLDER, HR_FOLDER
from esrgan.evaluation.provenance import dump_json, model_provenance, run_provenance
from esrgan.evaluation.tested_models import BicubicModel, TestedModel, build_models
from esrgan.evaluation.testsets import TestImage, TestSet, iter_test_images
from esrgan.inference.upscaler import GREY_FROM_RGB
from esrgan.metrics import DEFAULT_METRICS, METRIC_TABLE
from esrgan.metrics.color_drift import CONVENTION as COLOR_DRIFT
from esrgan.options.testing import SCORING_PRECISION
from esrgan.utils.atomic import atomic_write_text
from esrgan.utils.folders import EXPERIMENTS_ROOT, check_experiment_name, experiment_dir, fresh_output_dir
from esrgan.utils.lock import ExperimentLock

logger = logging.getLogger("esrgan.evaluation.tester")

METRIC_KEYS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")
# Scored on Y and on RGB, as the literature reports them; every other metric of the table is one column.
_Y_AND_RGB = ("psnr", "ssim")
_OTHERS = tuple(dict.fromkeys(m.name for m in METRIC_TABLE.values() if m.name not in _Y_AND_RGB))
# Metric name (``--metrics``) -> its result columns, in table order.
METRIC_COLUMNS = {
    **{m: (f"{m}_y", f"{m}_rgb") for m in _Y_AND_RGB}, **{m: (m,) for m in _OTHERS}
}
ALL_KEYS = (*METRIC_KEYS, *_OTHERS)
_HEADS = {
    **{f"{m}_{c}": f"{METRIC_TABLE[m].label}-{c.upper()}" for m in _Y_AND_RGB for c in ("y", "rgb")},
    **{m: METRIC_TABLE[m].label or m.upper() for m in _OTHERS},
}
_FORMATS = {
    **{k: METRIC_TABLE[k.rsplit("_", 1)[0]].fmt for k in METRIC_KEYS}, **{m: METRIC_TABLE[m].fmt for m in _OTHERS}
}


def metric_keys(metrics: Sequence[str] = DEFAULT_METRICS) -> tuple[str, ...]:
    """Result columns of the metric names (``psnr`` -> psnr_y, psnr_rgb), in table order."""
    from esrgan.metrics import parse_metric_list

    wanted = {k for m in parse_metric_list(list(metrics)) for k in METRIC_COLUMNS[m]}
    return tuple(k for k in ALL_KEYS if k in wanted)


def conventions(scale: int, metrics: Sequence[str] = DEFAULT_METRICS) -> str:
    """The scoring conventions, printed with every table and stored in results.json."""
    extra = ""
    if "niqe" in metrics:
        extra += (f"; NIQE (no reference, lower is better) on Y as the MATLAB release (96x96 blocks, "
                  f"{scale} px border cropped)")
    if "lpips" in metrics:
        extra += f"; LPIPS v0.1 AlexNet on RGB (lower is better, {scale} px border cropped)"
    if "dists" in metrics:
        extra += f"; DISTS (VGG16) on RGB (lower is better, {scale} px border cropped)"
    if "color_drift" in metrics:
        extra += f"; colour drift = {COLOR_DRIFT} (no reference; lower is better; whole images)"
    return (
        f"PSNR/SSIM on Y (MATLAB rgb2ycbcr, BT.601, 16-235) and on RGB, 0-255 scale; HR mod-cropped to x{scale}; "
        f"{scale} px cropped at each border; SR rounded to the image's integer type; SSIM Gaussian 11x11 "
        f"sigma 1.5; grey images scored on their own grey values (Y = RGB = grey): bicubic resizes the grey "
        f"image, networks get it replicated to RGB and their output is folded back to grey as the {GREY_FROM_RGB}"
        + extra
    )


def _as_255(img: np.ndarray) -> np.ndarray:
    # Metrics take [0, 255]; 16-bit images are rescaled, not truncated.
    return img.astype(np.float64) / 257.0 if img.dtype == np.uint16 else img


def score(
    sr: np.ndarray, hr: np.ndarray, crop_border: int, metrics: Sequence[str] = DEFAULT_METRICS, device: Any = "cpu",
    lr: np.ndarray | None = None,
) -> dict[str, float]:
    """The requested metrics with the tester's conventions: PSNR/SSIM on Y and on RGB (grey: its own
    values for both), NIQE on Y, LPIPS (AlexNet) and DISTS on RGB (on ``device``); ``crop_border``
    pixels cropped for all; colour drift against ``lr``, the input, on whole images."""
    from esrgan.metrics import psnr, ssim

    if sr.shape != hr.shape:
        raise ValueError(f"SR image shape {sr.shape} differs from HR {hr.shape}")
    sr, hr = _as_255(sr), _as_255(hr)
    y = hr.ndim == 3  # grey images have no Y to take: scored on their own values
    out: dict[str, float] = {}
    if "psnr" in metrics:
        out["psnr_y"] = float(psnr(sr, hr, crop_border=crop_border, y_channel=y))
        out["psnr_rgb"] = float(psnr(sr, hr, crop_border=crop_border, y_channel=False))
    if "ssim" in metrics:
        out["ssim_y"] = float(ssim(sr, hr, crop_border=crop_border, y_channel=y))
        out["ssim_rgb"] = float(ssim(sr, hr, crop_border=crop_border, y_channel=False))
    for name in _OTHERS:
        if name in metrics:
            info = METRIC_TABLE[name]
            kwargs = {"device": device} if info.on_device else {}
            if info.against_input and lr is None:
                raise ValueError(f"{name} compares the output with the input: no LR image given")
            other = _as_255(lr) if info.against_input else hr
            out[name] = float(info.fn(sr, other, crop_border=crop_border, y_channel=True, **kwargs))
    return {k: out[k] for k in ALL_KEYS if k in out}


def score_note(key: str, value: float | None) -> str | None:
    """Why a score is not a number and was left out of its set's mean; None for a finite score.

    A flat image is the usual cause: an output identical to HR has MSE 0, so its PSNR is infinite (no cap
    is chosen for it: a capped value would move the mean by an arbitrary amount); NIQE fits a Gaussian to
    local contrast, which a flat image does not have.
    """
    if value is None or math.isfinite(value):
        return None
    if key.startswith("psnr") and value > 0:
        return "identical to HR (MSE 0): PSNR is infinite; left out of the mean"
    if key == "niqe":
        return "not defined: the image has no local contrast (flat) for NIQE's statistics; left out of the mean"
    return f"not a finite number ({value}); left out of the mean"


def mean_scores(rows: Sequence[dict[str, float]]) -> dict[str, float | None]:
    """Mean over images of each metric (the published tables' per-set figure), over the finite scores only
    (see :func:`score_note`); None for a metric with no finite score at all."""
    keys = [k for k in ALL_KEYS if rows and k in rows[0]]
    out: dict[str, float | None] = {}
    for k in keys:
        finite = [r[k] for r in rows if r.get(k) is not None and math.isfinite(r[k])]
        out[k] = float(np.mean(finite)) if finite else None
    return out


def left_out(rows: Sequence[ImageScore]) -> dict[str, list[str]]:
    """metric -> the images whose score is not a number (left out of the mean), for metrics with any."""
    out: dict[str, list[str]] = {}
    for r in rows:
        for k, v in r.metrics().items():
            if score_note(k, v) is not None:
                out.setdefault(k, []).append(r.image)
    return out


def _number(value: float | None, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:{spec}}"


@dataclass
class ImageScore:
    """One image's scores by column (``psnr_y``, ``lpips``, ...); ``score.psnr_y`` reads one (None: not scored)."""

    image: str
    values: dict[str, float] = field(default_factory=dict)
    grey: bool = False

    def __getattr__(self, key: str) -> float | None:
        if key in ALL_KEYS:
            return self.values.get(key)
        raise AttributeError(key)

    def metrics(self) -> dict[str, float]:
        """The scored metrics (those not requested are absent)."""
        return {k: self.values[k] for k in ALL_KEYS if k in self.values}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a score that is not a number is null, with the reason under ``notes`` (valid JSON has no
        Infinity or NaN)."""
        scores = self.metrics()
        notes = {k: note for k, v in scores.items() if (note := score_note(k, v)) is not None}
        row: dict[str, Any] = {"image": self.image, **{k: (None if k in notes else v) for k, v in scores.items()},
                               "grey": self.grey}
        if notes:
            row["notes"] = notes
        return row


@dataclass
class TestReport:
    """Scores per set, per model, per image; ``mean(set, model)`` is the table's entry."""

    name: str
    scale: int
    out_dir: Path | None
    models: list[str]
    sets: list[str]
    scores: dict[str, dict[str, list[ImageScore]]] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    provenance: dict[str, Any] = field(default_factory=dict)  # what was compared (esrgan.evaluation.provenance)

    __test__ = False

    @property
    def keys(self) -> tuple[str, ...]:
        return metric_keys(self.metrics)

    def mean(self, set_name: str, model: str) -> dict[str, float | None]:
        return mean_scores([s.metrics() for s in self.scores[set_name][model]])

    def _entry(self, set_name: str, model: str) -> dict[str, Any]:
        rows = self.scores[set_name][model]
        entry: dict[str, Any] = {"mean": self.mean(set_name, model), "images": [s.to_dict() for s in rows]}
        excluded = left_out(rows)
        if excluded:  # which images each mean leaves out, and how many it is over
            entry["left_out"] = excluded
            entry["counts"] = {k: len(rows) - len(excluded.get(k, [])) for k in self.keys}
        return entry

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scale": self.scale,
            "conventions": conventions(self.scale, self.metrics),
            "metrics": list(self.keys),
            "directions": {k: _direction(k) for k in self.keys},
            "models": self.models,
            "provenance": self.provenance,
            "sets": {
                set_name: {model: self._entry(set_name, model) for model in per_model}
                for set_name, per_model in self.scores.items()
            },
        }

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["set", "model", "image", *self.keys])
        for set_name, per_model in self.scores.items():
            for model, rows in per_model.items():
                # A score that is not a number (see score_note) is an empty cell, as results.json's null.
                for s in rows:
                    writer.writerow([set_name, model, s.image, *(_csv(v) for v in s.metrics().values())])
                writer.writerow([set_name, model, "MEAN", *(_csv(v) for v in self.mean(set_name, model).values())])
        return buf.getvalue()

    def format_table(self) -> str:
        width = max([len("model"), *map(len, self.models)])
        lines = [f"x{self.scale} results ({self.name})", f"conventions: {conventions(self.scale, self.metrics)}"]
        heads = [_HEADS[k] for k in self.keys]
        for set_name, per_model in self.scores.items():
            n = len(next(iter(per_model.values())))
            lines += ["", f"{set_name} ({n} images)", f"{'model':<{width}}" + "".join(f"  {h:>8}" for h in heads)]
            for model in per_model:
                m = self.mean(set_name, model)
                lines.append(f"{model:<{width}}" + "".join(f"  {_number(m[k], _FORMATS[k]):>8}" for k in self.keys))
            for model, rows in per_model.items():
                for k, images in left_out(rows).items():
                    note = score_note(k, next(r.metrics()[k] for r in rows if r.image == images[0]))
                    lines.append(f"  {model} {_HEADS[k]}: mean of {n - len(images)} of {n}; "
                                 f"left out: {', '.join(images)} ({(note or '').split(';')[0]})")
        lower = [_HEADS[k] for k in _OTHERS if k in self.keys and not METRIC_TABLE[k].higher_is_better]
        if lower:
            higher = [h for k, h in (("psnr_y", "PSNR"), ("ssim_y", "SSIM")) if k in self.keys]
            lines += ["", f"{', '.join(higher) + ': higher is better; ' if higher else ''}"
                          f"{', '.join(lower)}: lower is better"]
        return "\n".join(lines)

    def write(self, out_dir: Path) -> None:
        atomic_write_text(out_dir / "results.json", dump_json(self.to_dict()))
        atomic_write_text(out_dir / "results.csv", self.to_csv())


def _csv(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6f}"


def _direction(key: str) -> str:
    from esrgan.metrics import column_metric

    metric = column_metric(key)
    assert metric is not None, key  # the tester's columns all come from the metric table
    return "higher" if metric.higher_is_better else "lower"


def caption(name: str, scores: dict[str, float]) -> str:
    """A comparison picture's label: the name with PSNR-Y, then NIQE, LPIPS, DISTS on a second line."""
    first = f"{name} {scores['psnr_y']:.2f} dB" if "psnr_y" in scores else name
    second = " ".join(f"{_HEADS[k]} {scores[k]:{_FORMATS[k]}}" for k in _OTHERS if k in scores)
    return f"{first}\n{second}" if second else first


def _display(img: np.ndarray) -> np.ndarray:
    return (img.astype(np.float64) / 257.0).round().astype(np.uint8) if img.dtype == np.uint16 else img


def evaluate(
    models: Sequence[TestedModel],
    test_sets: Sequence[TestSet],
    scale: int,
    *,
    out_dir: Path | None = None,
    save_images: bool = True,
    comparisons: bool = True,
    progress: bool = True,
    name: str = "test",
    on_output: Callable[[str, TestImage, str, np.ndarray, float | None], None] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    sources: Sequence[str | None] | None = None,
) -> TestReport:
    """Run every model on every image of every set and score it; write images under ``out_dir``.

    ``metrics``: names from the metric table (psnr, ssim, niqe, lpips); psnr and ssim give a Y
    and an RGB column each. ``sources``: what each model was loaded from (a path or zoo name; None for one
    built in memory), for the provenance in results.json.

    Images are the outer loop (each read once, all models run on it), so a comparison
    picture can be made as soon as its image is done and memory holds one image at a time.
    ``on_output(set, image, model, sr, psnr_y)`` sees every SR image (the sweep keeps its strips so).
    """
    if not test_sets:
        raise ValueError("no test sets: give at least one HR folder")
    test_sets = unique_set_names(test_sets)
    from esrgan.metrics import parse_metric_list

    metrics = parse_metric_list(list(metrics))
    report = TestReport(name=name, scale=scale, out_dir=out_dir, models=[m.name for m in models],
                        sets=[t.name for t in test_sets], metrics=metrics)
    if out_dir is not None:
        given = list(sources) if sources is not None else [None] * len(models)
        report.provenance = run_provenance([model_provenance(m, src) for m, src in zip(models, given)],
                                           conventions(scale, metrics))

    # LPIPS runs where the networks do (the first network's device; CPU for bicubic alone).
    metric_device = next((m.device for m in models if getattr(m, "device", None) is not None), "cpu")

    def scored(sr: np.ndarray, item: TestImage, model_name: str) -> dict[str, float]:
        try:
            return score(sr, item.hr, scale, metrics, metric_device, lr=item.lr)
        except ValueError as exc:  # e.g. an image smaller than one NIQE block
            raise ValueError(f"{model_name} on {item.hr_path}: {exc}") from exc

    for test_set in test_sets:
        per_model: dict[str, list[ImageScore]] = {m.name: [] for m in models}
        bar = tqdm(iter_test_images(test_set, scale), desc=test_set.name, unit="img", disable=not progress)
        for item in bar:
            outputs = {}
            for model in models:
                sr = model.upscale(item.lr)
                if sr.shape != item.hr.shape:
                    raise ValueError(
                        f"model {model.name} on {item.lr_path or item.hr_path}: output shape {sr.shape}, "
                        f"expected the mod-cropped HR shape {item.hr.shape}"
                    )
                outputs[model.name] = sr
                per_model[model.name].append(ImageScore(item.name, scored(sr, item, model.name), grey=item.is_grey))
                if on_output is not None:
                    on_output(test_set.name, item, model.name, sr, per_model[model.name][-1].psnr_y)
            if out_dir is None:
                continue
            bic_name = next((m.name for m in models if isinstance(m, BicubicModel)), None)
            bicubic = outputs[bic_name] if bic_name else None
            if save_images:
                for model_name, sr in outputs.items():
                    imwrite(out_dir / test_set.name / model_name / f"{item.name}.png", sr)
                imwrite(out_dir / test_set.name / HR_FOLDER / f"{item.name}.png", item.hr)
                if bicubic is None:
                    bicubic = BicubicModel(scale).upscale(item.lr)
                    imwrite(out_dir / test_set.name / BICUBIC_FOLDER / f"{item.name}.png", bicubic)
            if comparisons:
                bicubic = BicubicModel(scale).upscale(item.lr) if bicubic is None else bicubic
                bic_scores = per_model[bic_name][-1].metrics() if bic_name else scored(bicubic, item, "bicubic")
                nets = {k: v for k, v in outputs.items() if k != bic_name}
                images = [bicubic, *nets.values(), item.hr]
                hr_label = caption("HR", {"niqe": _hr_niqe(item, scale)} if "niqe" in metrics else {})
                labels = [caption(bic_name or "bicubic", bic_scores),
                          *(caption(k, per_model[k][-1].metrics()) for k in nets), hr_label]
                picture, _ = comparison_picture(
                    [_display(i) for i in images], labels, error_map(bicubic, item.hr), border=scale
                )
                imwrite(out_dir / test_set.name / COMPARE_FOLDER / f"{item.name}.png", picture)
        report.scores[test_set.name] = per_model
        for model in models:
            m = report.mean(test_set.name, model.name)
            logger.info("%s %s: %s", test_set.name, model.name,
                        ", ".join(f"{_HEADS[k]} {_number(v, _FORMATS[k])}" for k, v in m.items()))
    if out_dir is not None:
        report.write(out_dir)
    return report


def _hr_niqe(item: TestImage, scale: int) -> float:
    from esrgan.metrics import niqe

    return float(niqe(_as_255(item.hr), crop_border=scale))


def unique_set_names(test_sets: Sequence[TestSet]) -> list[TestSet]:
    # Two folders both called .../HR would share an output folder and a table row: number them.
    seen: set[str] = set()
    out = []
    for t in test_sets:
        name, k = t.name, 2
        while name in seen:
            name, k = f"{t.name}_{k}", k + 1
        seen.add(name)
        out.append(t if name == t.name else replace(t, name=name))
    return out


def run_tests(
    models: Sequence[str | tuple[str, str]],
    test_sets: Sequence[TestSet],
    scale: int,
    name: str,
    *,
    experiments_root: str | Path = EXPERIMENTS_ROOT,
    device: str | None = None,
    tile: int = 0,
    precision: str = SCORING_PRECISION,
    network_g: dict[str, Any] | None = None,
    strict_load_g: bool = True,
    param_key_g: str | None = None,
    save_images: bool = True,
    comparisons: bool = True,
    progress: bool = True,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> TestReport:
    """Test models (``bicubic``, checkpoint paths, zoo names, or ``(label, spec)``) on sets at ``scale``.

    Writes ``experiments_root/name/{results.json, results.csv}``, SR images and comparison
    pictures; returns the report (``report.format_table()`` is the console table).
    """
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    check_experiment_name(name)
    from esrgan.metrics import parse_metric_list

    metrics = parse_metric_list(list(metrics))  # unknown names fail before any model is loaded
    built = build_models(list(models), scale, device=device, tile=tile, precision=precision, network_g=network_g,
                         strict=strict_load_g, param_key=param_key_g)
    folder = experiment_dir(experiments_root, name)
    with ExperimentLock(folder, what="test run"):  # two runs of one name would archive each other's folder
        out_dir = fresh_output_dir(folder)
        sources = [s if isinstance(s, str) else s[1] for s in models]
        return evaluate(built, test_sets, scale, out_dir=out_dir, save_images=save_images,
                        comparisons=comparisons, progress=progress, name=name, metrics=metrics, sources=sources)


