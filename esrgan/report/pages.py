"""Build ``report.html`` from an experiment folder's results file and images.

The page is data-driven: Python gathers the numbers (every numeric metric found in the results,
whatever its name) and the relative paths of the images into one JSON object; the page's own
scripts (``assets/*.js``, inlined) draw the tables, plots and comparison viewer from it.
Thumbnails (``_thumbs/``) keep long tables light; full images load only when shown.
"""

from __future__ import annotations

import json
import logging
import math
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import numpy as np

from esrgan.data.image import imread, imwrite
from esrgan.evaluation.layout import BICUBIC_FOLDER, HR_FOLDER, THUMB_FOLDER
from esrgan.utils.atomic import atomic_write_text

logger = logging.getLogger("esrgan.report")

REPORT_NAME = "report.html"
THUMB_SIZE = 160

_LABELS = {"psnr": "PSNR", "ssim": "SSIM", "niqe": "NIQE", "lpips": "LPIPS", "pi": "PI", "rmse": "RMSE"}


def metric_direction(key: str) -> int | None:
    """+1 when a larger value of metric ``key`` is better (PSNR, SSIM), -1 when smaller is (NIQE, LPIPS), else None.

    The direction comes from the metric table (``esrgan.metrics.column_metric``: ``psnr_y`` -> ``psnr``,
    ``color_drift`` itself); a name the table does not know has no direction.
    """
    from esrgan.metrics import column_metric

    metric = column_metric(key)
    return None if metric is None else (1 if metric.higher_is_better else -1)


def metric_label(key: str) -> str:
    """``psnr_y`` -> ``PSNR-Y``, a metric's own name -> its label in the table; unknown names keep their spelling,
    upper-cased."""
    from esrgan.metrics import METRIC_TABLE

    if key.lower() in METRIC_TABLE and METRIC_TABLE[key.lower()].label:
        return METRIC_TABLE[key.lower()].label
    head, _, rest = key.partition("_")
    label = _LABELS.get(head.lower(), head.upper())
    return f"{label}-{rest.upper()}" if rest else label


def _numeric_keys(rows: list[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        for k, v in row.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                keys.setdefault(k, None)
    return list(keys)


def _metric_info(keys: list[str], directions: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Label and direction of each metric; ``directions`` ({key: "higher"|"lower"}, as results.json
    stores them) wins over the metric table."""
    from esrgan.metrics import column_metric

    given = {k: {"higher": 1, "lower": -1}.get(str(v)) for k, v in (directions or {}).items()}
    # "input": compared with the network's input, not a quality axis (colour drift): no perception-distortion plane
    return [{"key": k, "label": metric_label(k), "direction": given.get(k) or metric_direction(k),
             "input": bool(getattr(column_metric(k), "against_input", False))} for k in keys]


def _ordered_keys(results: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    # The results file's own metric order first, then any other numeric column found in the rows.
    found = _numeric_keys(rows)
    listed = [k for k in results.get("metrics", []) if k in found]
    return listed + [k for k in found if k not in listed]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _numbers(row: dict[str, Any], keys: list[str]) -> dict[str, float]:
    # Finite numbers only: an older results file may hold Infinity/NaN, which JSON (and the page) cannot.
    return {k: float(row[k]) for k in keys if _is_number(row.get(k)) and math.isfinite(row[k])}


def _notes(row: dict[str, Any], keys: list[str]) -> dict[str, list[str]]:
    """metric -> [what the cell shows, why] for each score that is not a number (results.json's ``notes``, or an
    Infinity/NaN of an older file); the page shows the first and the reason on hover."""
    notes = {k: str(v) for k, v in (row.get("notes") or {}).items() if k in keys}
    for k in keys:
        v = row.get(k)
        if _is_number(v) and not math.isfinite(v) and k not in notes:
            notes[k] = "identical to HR: PSNR is infinite" if v > 0 and k.startswith("psnr") else "not a finite number"
    return {k: ["\u221e" if "infinite" in why else "n/a", why] for k, why in notes.items()}


def asset(name: str, package: str = "esrgan.report") -> str:
    """A page asset shipped in ``package``'s ``assets/`` folder (package data)."""
    return (resources.files(package) / "assets" / name).read_text(encoding="utf-8")


# Inside <script>, '</script', '<!--' and '<script' can end or confuse the element: every '<', '>' and '&' is
# written as a JSON escape, so the text stays valid JSON that JSON.parse reads back unchanged.
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _script_json(data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return "".join(_SCRIPT_ESCAPES.get(c, c) for c in text)


def render_page(title: str, data: dict[str, Any]) -> str:
    """The report page: template with the shared styles and scripts and ``data`` inlined."""
    import re
    from html import escape

    parts = {
        "STYLE": asset("common.css") + asset("report.css"),
        "SCRIPT": "\n".join(asset(n) for n in ("compare.js", "widgets.js", "report.js")),
        "DATA": _script_json(data),
        "TITLE": escape(title),
    }
    # One pass, so text inside the data (an image called '{{SCRIPT}}') is never substituted.
    return re.sub(r"\{\{(STYLE|SCRIPT|DATA|TITLE)\}\}", lambda m: parts[m.group(1)], asset("report.html"))


def _rel(out_dir: Path, path: Path) -> str | None:
    """The URL of ``path`` relative to the page: each folder and file name percent-encoded ('#', '?', '%'...)."""
    if not path.is_file():
        return None
    return "/".join(quote(part, safe="") for part in path.relative_to(out_dir).parts)


def make_thumbnail(src: Path, dst: Path, size: int = THUMB_SIZE) -> bool:
    """A JPEG of ``src`` whose longer side is ``size`` px (8-bit, RGB or grey); False if ``src`` cannot be read."""
    if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
        return True
    try:
        img = imread(src)
    except (OSError, ValueError) as exc:
        logger.warning("report: no thumbnail for %s: %s", src, exc)
        return False
    if img.dtype == np.uint16:
        img = (img.astype(np.float64) / 257.0).round().astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    h, w = img.shape[:2]
    f = size / max(h, w)
    if f < 1:
        img = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    imwrite(dst, img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return True


def _thumb(out_dir: Path, set_name: str, image: str, candidates: list[Path]) -> str | None:
    src = next((p for p in candidates if p.is_file()), None)
    if src is None:
        return None
    dst = out_dir / set_name / THUMB_FOLDER / f"{image}.jpg"
    return _rel(out_dir, dst) if make_thumbnail(src, dst) else None


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; the report is built from it")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _mean_notes(entry: dict[str, Any], keys: list[str], n: int) -> dict[str, list[str]]:
    """For each metric whose mean leaves images out: ['*', 'mean of 4 of 5 images; left out: flat (...)']."""
    return {k: ["*", f"mean of {n - len(names)} of {n} images; left out: {', '.join(names)} (no finite score)"]
            for k, names in (entry.get("left_out") or {}).items() if k in keys}


def collect_test_data(out_dir: str | Path) -> dict[str, Any]:
    """What the test page shows, from ``results.json`` and the images under ``out_dir``."""
    out_dir = Path(out_dir)
    results = _load_json(out_dir / "results.json")
    models: list[str] = list(results.get("models", []))
    all_rows = [row for per_model in results["sets"].values() for m in per_model.values() for row in
                [m["mean"], *m["images"]]]
    keys = _ordered_keys(results, all_rows)
    sets = []
    for set_name, per_model in results["sets"].items():
        names = [row["image"] for row in next(iter(per_model.values()))["images"]]
        images = []
        for name in names:
            hr = out_dir / set_name / HR_FOLDER / f"{name}.png"
            sources = []
            bic = _rel(out_dir, out_dir / set_name / BICUBIC_FOLDER / f"{name}.png")
            if bic:
                sources.append({"label": "bicubic", "src": bic})
            for model in per_model:
                src = _rel(out_dir, out_dir / set_name / model / f"{name}.png")
                if src:
                    sources.append({"label": model, "src": src})
            if _rel(out_dir, hr):
                sources.append({"label": "HR", "src": _rel(out_dir, hr)})
            rows = {model: next(r for r in entry["images"] if r["image"] == name) for model, entry in per_model.items()}
            thumb = _thumb(out_dir, set_name, name, [hr, *(out_dir / set_name / m / f"{name}.png" for m in per_model)])
            images.append({
                "name": name, "thumb": thumb, "sources": sources,
                "scores": {model: _numbers(row, keys) for model, row in rows.items()},
                "notes": {model: notes for model, row in rows.items() if (notes := _notes(row, keys))},
            })
        n = len(names)
        sets.append({
            "name": set_name,
            "means": {model: _numbers(entry["mean"], keys) for model, entry in per_model.items()},
            "mean_notes": {model: notes for model, entry in per_model.items()
                           if (notes := {**_notes(entry["mean"], keys), **_mean_notes(entry, keys, n)})},
            "images": images,
        })
    return {
        "kind": "test",
        "name": results.get("name", out_dir.name),
        "scale": results.get("scale"),
        "conventions": results.get("conventions", ""),
        "provenance": results.get("provenance") or {},
        "models": models or list(next(iter(results["sets"].values()), {})),
        "metrics": _metric_info(keys, results.get("directions")),
        "sets": sets,
    }


def _alpha_folder(alpha: float) -> str:
    return f"alpha{alpha:.2f}"


def collect_sweep_data(out_dir: str | Path) -> dict[str, Any]:
    """What the sweep page shows, from ``sweep.json`` and the images under ``out_dir``."""
    out_dir = Path(out_dir)
    sweep = _load_json(out_dir / "sweep.json")
    alphas = [float(a) for a in sweep["alphas"]]
    results = sweep["results"]
    set_names = [k for k in results[0] if k != "alpha"] if results else []
    per_image = sweep.get("images", {})
    keys = _ordered_keys(sweep, [r[s] for r in results for s in set_names])
    sets = []
    for set_name in set_names:
        means = {f"{r['alpha']:g}": _numbers(r[set_name], keys) for r in results}
        rows = per_image.get(set_name, {})
        names = list(dict.fromkeys(row["image"] for per_alpha in rows.values() for row in per_alpha))
        if not names:  # a sweep without saved images: whatever the HR folder holds
            names = sorted(p.stem for p in (out_dir / set_name / HR_FOLDER).glob("*.png"))
        images = []
        for name in names:
            hr = out_dir / set_name / HR_FOLDER / f"{name}.png"
            outputs = {f"{a:g}": _rel(out_dir, out_dir / set_name / _alpha_folder(a) / f"{name}.png") for a in alphas}
            scores = {
                a: _numbers(next((r for r in per_alpha if r["image"] == name), {}), keys)
                for a, per_alpha in rows.items()
            }
            first = out_dir / set_name / _alpha_folder(alphas[0]) / f"{name}.png" if alphas else hr
            images.append({
                "name": name,
                "thumb": _thumb(out_dir, set_name, name, [hr, first]),
                "hr": _rel(out_dir, hr),
                "bicubic": _rel(out_dir, out_dir / set_name / BICUBIC_FOLDER / f"{name}.png"),
                "outputs": outputs,
                "scores": scores,
                "notes": {a: notes for a, per_alpha in rows.items()
                          if (notes := _notes(next((r for r in per_alpha if r["image"] == name), {}), keys))},
            })
        sets.append({"name": set_name, "means": means, "images": images})
    return {
        "kind": "sweep",
        "name": sweep.get("name", out_dir.name),
        "scale": sweep.get("scale"),
        "conventions": sweep.get("conventions", ""),
        "provenance": sweep.get("provenance") or {},
        "alphas": [f"{a:g}" for a in alphas],
        "metrics": _metric_info(keys, sweep.get("directions")),
        "sets": sets,
        "selection": _selection(sweep.get("selection")),
    }


def _selection(selection: Any) -> dict[str, Any] | None:
    """sweep.json's ``selection`` for the page: the criterion and, per set, the chosen alpha (as the page's alpha
    labels) with its bounds; None without one."""
    if not isinstance(selection, dict) or not isinstance(selection.get("sets"), dict):
        return None
    sets = {}
    for name, choice in selection["sets"].items():
        alpha = choice.get("alpha") if isinstance(choice, dict) else None
        sets[str(name)] = {"alpha": None if not _is_number(alpha) else f"{alpha:g}",
                           "bounds": str(choice.get("bounds", "")) if isinstance(choice, dict) else "",
                           "values": _numbers(choice.get("values") or {}, list(choice.get("values") or {}))
                           if isinstance(choice, dict) else {}}
    return {"criterion": str(selection.get("criterion", "")), "sets": sets}


def _write(out_dir: Path, data: dict[str, Any], what: str) -> Path:
    path = out_dir / REPORT_NAME
    atomic_write_text(path, render_page(f"{data['name']}: x{data['scale']} {what}", data))
    return path


def _collect(collect: Any, out_dir: Path, name: str, what: str) -> dict[str, Any]:
    try:
        return collect(out_dir)
    except (KeyError, TypeError, AttributeError, IndexError, StopIteration, ValueError) as exc:  # not our layout
        if str(out_dir / name) in str(exc):
            raise
        raise ValueError(f"{out_dir / name}: not a results file of {what} (unexpected layout: "
                         f"{type(exc).__name__} {exc})") from None


def write_test_report(out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html`` for an ``esrgan test`` run; returns its path."""
    data = _collect(collect_test_data, Path(out_dir), "results.json", "esrgan test")
    return _write(Path(out_dir), data, "test report")


def write_sweep_report(out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html`` for an interpolation sweep; returns its path."""
    data = _collect(collect_sweep_data, Path(out_dir), "sweep.json", "esrgan interp --sweep")
    return _write(Path(out_dir), data, "interpolation sweep")
