"""Interpolation sweep: score the generator at every alpha on the test sets (the ESRGAN paper's Fig. 10).

Writes to ``experiments/<name>/``: ``sweep.csv`` and ``sweep.json`` (alpha, every requested metric
per set, and per image under ``images``), ``psnr_vs_alpha.png`` (PSNR and SSIM against alpha, one
line per set), with NIQE or LPIPS requested ``perception_distortion.png`` (the perception-distortion
plane: PSNR-Y against NIQE / LPIPS, one labelled point per alpha), ``strip_<set>.png`` (the same
crop at every alpha, then HR), with ``save_images`` every alpha's outputs
``<set>/alpha<alpha>/<image>.png`` and the mod-cropped HR ``<set>/_hr/`` (what the HTML report's
alpha slider shows), and with ``save_models`` the interpolated checkpoints
``models/net_g_alpha<alpha>.pth``; without it no checkpoint is written.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from esrgan.data.image import imwrite
from esrgan.evaluation.compare import comparison_picture, error_map
from esrgan.evaluation.interpolation import GeneratorPair, load_pair, parse_alphas
from esrgan.evaluation.layout import BICUBIC_FOLDER, HR_FOLDER
from esrgan.evaluation.provenance import dump_json, model_provenance, run_provenance
from esrgan.evaluation.tested_models import BicubicModel, NetworkModel
from esrgan.evaluation.tester import _FORMATS, _HEADS, conventions, evaluate, metric_keys, unique_set_names
from esrgan.evaluation.testsets import TestImage, TestSet, hr_paths
from esrgan.metrics import DEFAULT_METRICS, METRIC_TABLE
from esrgan.metrics.selection import Criterion
from esrgan.options.testing import SCORING_PRECISION
from esrgan.utils.atomic import atomic_path, atomic_write_text
from esrgan.utils.folders import EXPERIMENTS_ROOT, check_experiment_name, experiment_dir, fresh_output_dir
from esrgan.utils.lock import ExperimentLock

logger = logging.getLogger("esrgan.evaluation.sweep")


@dataclass
class SweepReport:
    """``means[alpha][set]`` = mean of every metric column (``keys``) of the set at that alpha."""

    name: str
    scale: int
    alphas: list[float]
    sets: list[str]
    out_dir: Path | None
    means: dict[float, dict[str, dict[str, float]]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    # images[set][alpha] = per-image rows ({"image": stem, metric: value, ...})
    images: dict[str, dict[float, list[dict[str, Any]]]] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    provenance: dict[str, Any] = field(default_factory=dict)  # the two end points (esrgan.evaluation.provenance)
    selection: dict[str, Any] | None = None  # the declared criterion's choice (select_alpha)

    @property
    def keys(self) -> tuple[str, ...]:
        return metric_keys(self.metrics)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["alpha", *(f"{s}_{k}" for s in self.sets for k in self.keys)])
        for alpha in self.alphas:
            writer.writerow([f"{alpha:g}", *(_cell(self.means[alpha][s][k], ".6f", "") for s in self.sets
                                             for k in self.keys)])
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scale": self.scale,
            "conventions": conventions(self.scale, self.metrics),
            "metrics": list(self.keys),
            "provenance": self.provenance,
            "alphas": self.alphas,
            "results": [{"alpha": a, **{s: self.means[a][s] for s in self.sets}} for a in self.alphas],
            "images": {s: {f"{a:g}": rows for a, rows in per_alpha.items()} for s, per_alpha in self.images.items()},
            **({"selection": self.selection} if self.selection is not None else {}),
        }

    def format_table(self) -> str:
        shown = [k for k in ("psnr_y", "ssim_y", *OTHER_KEYS) if k in self.keys]
        heads = {k: (_HEADS[k], _FORMATS[k]) for k in shown}
        head = "alpha " + "".join(
            " |" + "".join(f" {(s + ' ' if i == 0 else '') + heads[k][0]:>{14 if i == 0 else 7}}"
                           for i, k in enumerate(shown))
            for s in self.sets
        )
        title = f"interpolation sweep x{self.scale} ({self.name}); conventions: {conventions(self.scale, self.metrics)}"
        lines = [title, "", head]
        for alpha in self.alphas:
            cells = "".join(
                " |" + "".join(f" {_cell(self.means[alpha][s][k], heads[k][1]):>{14 if i == 0 else 7}}"
                               for i, k in enumerate(shown))
                for s in self.sets
            )
            lines.append(f"{alpha:5.2f} {cells}")
        if self.selection is not None:
            lines += ["", f"selection: {self.selection['criterion']}"]
            for s, choice in self.selection["sets"].items():
                chosen = "none meets the conditions" if choice["alpha"] is None else f"alpha {choice['alpha']:g}"
                lines.append(f"  {s}: {chosen} ({choice['bounds']})")
        return "\n".join(lines)


def _cell(value: float | None, spec: str, missing: str = "n/a") -> str:
    # A mean is None when no image of the set had a finite score (see tester.score_note).
    return missing if value is None or not math.isfinite(value) else f"{value:{spec}}"


def _plotted(value: float | None) -> float:
    return float("nan") if value is None else value  # matplotlib leaves a gap


def plot_sweep(report: SweepReport, path: Path) -> None:
    """PSNR-Y (and SSIM-Y when scored) against alpha, one line per set, as a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    panels = [(k, label) for k, label in (("psnr_y", "PSNR-Y (dB)"), ("ssim_y", "SSIM-Y")) if k in report.keys]
    # A bare Figure (not pyplot) keeps no global state between calls.
    fig = Figure(figsize=(4.5 * len(panels), 3.6), dpi=100, layout="constrained")
    for ax, (key, label) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for s in report.sets:
            ax.plot(report.alphas, [_plotted(report.means[a][s][key]) for a in report.alphas], "o-", label=s)
        ax.set(xlabel="alpha (0 = PSNR model, 1 = GAN model)", ylabel=label,
               title=f"x{report.scale} {label.split('-')[0]}")
        ax.grid(alpha=0.3)
        ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


# The columns after PSNR-Y and SSIM-Y in the table: every other metric column (NIQE, LPIPS, DISTS, colour drift).
OTHER_KEYS = {k: _HEADS[k] for k in _HEADS if not k.startswith(("psnr_", "ssim_"))}
# The perception axes by default: those that score perceived quality (not colour drift, a check against the input).
PERCEPTUAL_KEYS = {k: h for k, h in OTHER_KEYS.items() if not METRIC_TABLE[k].against_input}


def _axis_label(key: str) -> str:
    from esrgan.metrics import column_metric

    metric = column_metric(key)
    better = "higher" if metric is not None and metric.higher_is_better else "lower"
    return f"{_HEADS[key]}{' (dB)' if key.startswith('psnr') else ''}, {better} is better"


def pd_pairs(report: SweepReport, pairs: Sequence[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """The (x, y) metric columns of the perception-distortion plot: ``pairs`` checked against the sweep's
    columns, or by default PSNR-Y against each perceptual metric scored."""
    if pairs is None:
        pairs = [("psnr_y", k) for k in PERCEPTUAL_KEYS if k in report.keys] if "psnr_y" in report.keys else []
    if not pairs:
        raise ValueError("the perception-distortion plot needs psnr and a perceptual metric (niqe, lpips, dists) "
                         "among the sweep's metrics, or a pair of metric columns")
    for pair in pairs:
        for key in pair:
            if key not in report.keys:
                raise ValueError(f"perception-distortion axis {key!r} is not a column of this sweep; "
                                 f"its columns: {', '.join(report.keys)}")
    return list(pairs)


def plot_perception_distortion(
    report: SweepReport, path: Path, pairs: Sequence[tuple[str, str]] | None = None
) -> None:
    """The perception-distortion plane, one panel per (x, y) pair of metric columns (default: PSNR-Y
    against NIQE, LPIPS and/or DISTS), one line per set, each point labelled with its alpha."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    pairs = pd_pairs(report, pairs)
    fig = Figure(figsize=(5.5 * len(pairs), 4.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    for ax, (kx, ky) in zip(axes, pairs):
        for s in report.sets:
            xs = [_plotted(report.means[a][s][kx]) for a in report.alphas]
            ys = [_plotted(report.means[a][s][ky]) for a in report.alphas]
            ax.plot(xs, ys, "o-", label=s)
            for a, x, y in zip(report.alphas, xs, ys):
                ax.annotate(f"{a:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set(xlabel=_axis_label(kx), ylabel=_axis_label(ky),
               title=f"x{report.scale} perception-distortion (labels: alpha)")
        ax.grid(alpha=0.3)
        ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _provenance(model: NetworkModel, psnr: Any, gan: Any, metrics: list[str], scale: int) -> dict[str, Any]:
    """The two end points (alpha 0 and 1) with their files and digests, and how the blends ran."""
    ends = []
    for source, role in ((psnr, "alpha 0 (PSNR model)"), (gan, "alpha 1 (GAN model)")):
        given = None if isinstance(source, GeneratorPair) or source is None else str(source)
        entry = model_provenance(model, given, role)
        entry["label"] = Path(given).stem if given and ("/" in given or Path(given).suffix) else (given or role)
        ends.append(entry)
    return run_provenance(ends, conventions(scale, metrics))


def sweep_criterion(text: str, columns: Sequence[str]) -> Criterion:
    """``--select`` / ``interp.select`` read and checked against the sweep's result columns (``psnr`` and ``ssim``
    stand for their Y columns), before any scoring."""
    from esrgan.metrics.selection import parse_criterion

    return parse_criterion(text).check_metrics(list(columns), {"psnr": "psnr_y", "ssim": "ssim_y"})


def select_alpha(criterion: Criterion, report: SweepReport) -> dict[str, Any]:
    """The alpha the criterion chooses on each set (the PSNR model: alpha 0); ``alpha`` is the first set's."""
    sets = {}
    for s in report.sets:
        means = {a: {k: (math.nan if v is None else v) for k, v in report.means[a][s].items()} for a in report.alphas}
        reference = means.get(0.0)
        chosen = criterion.choose([(a, means[a]) for a in report.alphas], reference)
        sets[s] = {
            "alpha": None if chosen is None else chosen[0],
            "values": None if chosen is None else {k: chosen[1][k] for k in criterion.metrics},
            "bounds": criterion.describe(reference),
            "meets": [a for a in report.alphas if criterion.admissible(means[a], reference)],
        }
    first = sets[report.sets[0]]["alpha"] if report.sets else None
    return {"criterion": criterion.text, "alpha": first, "sets": sets}


def make_strip(outputs: dict[float, np.ndarray], psnrs: dict[float, float], hr: np.ndarray, border: int) -> np.ndarray:
    """The same crop at every alpha, then HR; the crop is where alpha 0 and alpha 1 differ most."""
    alphas = sorted(outputs)
    ref = error_map(outputs[alphas[0]], outputs[alphas[-1]]) if len(alphas) > 1 else error_map(outputs[alphas[0]], hr)
    images = [*(outputs[a] for a in alphas), hr]
    labels = [*(f"a={a:g} {psnrs[a]:.2f}dB" for a in alphas), "HR"]
    if hr.dtype == np.uint16:
        images = [(i.astype(np.float64) / 257.0).round().astype(np.uint8) for i in images]
    picture, _ = comparison_picture(images, labels, ref, border=border)
    return picture


def run_sweep(
    psnr: str | Path | GeneratorPair,
    gan: str | Path | None,
    alphas: str | Sequence[float],
    test_sets: Sequence[TestSet],
    scale: int,
    name: str,
    *,
    experiments_root: str | Path = EXPERIMENTS_ROOT,
    save_models: bool = False,
    device: str | None = None,
    tile: int = 0,
    precision: str = SCORING_PRECISION,
    strip_image: str | None = None,
    save_images: bool = True,
    progress: bool = True,
    metrics: Sequence[str] = DEFAULT_METRICS,
    pd_axes: Sequence[tuple[str, str]] | None = None,
    select: str | None = None,
) -> SweepReport:
    """Evaluate the interpolated generator at each alpha on ``test_sets``; write table, plot and strips.

    ``psnr``/``gan``: checkpoint paths or zoo names (or a loaded ``GeneratorPair`` as ``psnr``
    with ``gan=None``). ``alphas``: '0:1:0.1', '0,0.5,1' or a list. ``strip_image``: the HR
    stem shown in each set's strip (default: the set's first image). ``save_images``: every alpha's
    outputs, the HR images and the bicubic baseline, for the HTML report. ``metrics``: names from the metric
    table (psnr is always scored: it is the distortion axis); with niqe, lpips or dists a perception-distortion
    plot is drawn, of ``pd_axes`` (pairs of result columns, e.g. ``("ssim_y", "dists")``) when given. ``select``:
    a declared criterion (``esrgan.metrics.selection``, e.g. "lowest lpips with psnr_y no more than 0.5 dB below
    the PSNR model") choosing an alpha per set, written in sweep.json and the report.
    """
    check_experiment_name(name)
    from esrgan.metrics import parse_metric_list

    metric_list = parse_metric_list(["psnr", *metrics])
    columns = metric_keys(metric_list)
    for key in (k for pair in pd_axes or () for k in pair):
        if key not in columns:  # before hours of scoring, not after
            raise ValueError(
                f"perception-distortion axis {key!r} is not scored; the sweep's columns: {', '.join(columns)}"
            )
    alpha_list = parse_alphas(alphas if isinstance(alphas, str) else list(alphas))
    criterion = sweep_criterion(select, columns) if select is not None else None
    if criterion is not None and criterion.needs_reference and 0.0 not in alpha_list:
        raise ValueError(f"selection criterion {select!r} compares with the PSNR model, alpha 0, which the sweep's "
                         f"alphas ({', '.join(f'{a:g}' for a in alpha_list)}) leave out")
    if not test_sets:
        raise ValueError("no test sets for the sweep: give at least one HR folder")
    test_sets = unique_set_names(test_sets)
    strip_names = {}
    for t in test_sets:
        stems = [p.stem for p in hr_paths(t)]
        if strip_image is not None and strip_image not in stems:
            raise ValueError(f"strip image {strip_image!r} is not in test set {t.name} ({t.hr_dir})")
        strip_names[t.name] = strip_image or stems[0]
    pair = psnr if isinstance(psnr, GeneratorPair) else load_pair(psnr, gan)  # type: ignore[arg-type]
    folder = experiment_dir(experiments_root, name)
    with ExperimentLock(folder, what="sweep"):  # two runs of one name would archive each other's folder
        out_dir = fresh_output_dir(folder)
        report = SweepReport(name, scale, alpha_list, [], out_dir, metrics=metric_list)
        strip_outputs: dict[str, dict[float, np.ndarray]] = {}
        strip_psnr: dict[str, dict[float, float]] = {}
        strip_hr: dict[str, np.ndarray] = {}

        for alpha in alpha_list:
            net = pair.build(alpha)
            if save_models:
                from esrgan.checkpoint import save_network

                path = out_dir / "models" / f"net_g_alpha{alpha:.2f}.pth"
                save_network(path, {"params": {k: v.detach().cpu() for k, v in net.state_dict().items()}})
                report.files[f"model_{alpha:g}"] = path
            model = NetworkModel(net, f"alpha={alpha:g}", scale, device=device, tile=tile, precision=precision)
            if not report.provenance:
                report.provenance = _provenance(model, psnr, gan, metric_list, scale)

            def keep(set_name: str, item: TestImage, _model: str, sr: np.ndarray, psnr_y: float,
                     a: float = alpha) -> None:
                if save_images:
                    imwrite(out_dir / set_name / f"alpha{a:.2f}" / f"{item.name}.png", sr)
                    hr_path = out_dir / set_name / HR_FOLDER / f"{item.name}.png"
                    if not hr_path.exists():
                        imwrite(hr_path, item.hr)
                        # the report's baseline, as the tester's (MATLAB bicubic of the same LR)
                        imwrite(out_dir / set_name / BICUBIC_FOLDER / f"{item.name}.png",
                                BicubicModel(scale).upscale(item.lr))
                if item.name == strip_names[set_name]:
                    strip_outputs.setdefault(set_name, {})[a] = sr
                    strip_psnr.setdefault(set_name, {})[a] = psnr_y
                    strip_hr[set_name] = item.hr

            result = evaluate([model], test_sets, scale, out_dir=None, progress=progress, name=name, on_output=keep,
                              metrics=metric_list)
            report.sets = result.sets
            report.means[alpha] = {s: result.mean(s, model.name) for s in result.sets}
            for s in result.sets:
                # as results.json's rows: a score that is not a number is null with its note
                rows = [{k: v for k, v in r.to_dict().items() if k != "grey"} for r in result.scores[s][model.name]]
                report.images.setdefault(s, {})[alpha] = rows
            summary = ", ".join(
                f"{s} {_cell(m['psnr_y'], '.2f')} dB" + "".join(f" {v} {_cell(m[k], '.3f')}"
                                                                for k, v in OTHER_KEYS.items() if k in m)
                for s, m in report.means[alpha].items()
            )
            logger.info("alpha %g: %s", alpha, summary)

        if criterion is not None:
            report.selection = select_alpha(criterion, report)
            logger.info("selection (%s): %s", criterion.text, ", ".join(
                f"{s} alpha {c['alpha']:g}" if c["alpha"] is not None else f"{s} none meets the conditions"
                for s, c in report.selection["sets"].items()))
        atomic_write_text(out_dir / "sweep.csv", report.to_csv())
        atomic_write_text(out_dir / "sweep.json", dump_json(report.to_dict()))
        report.files.update(table=out_dir / "sweep.csv", json=out_dir / "sweep.json",
                            plot=out_dir / "psnr_vs_alpha.png")
        plot_sweep(report, report.files["plot"])
        if pd_axes or any(k in report.keys for k in PERCEPTUAL_KEYS):
            report.files["pd_plot"] = out_dir / "perception_distortion.png"
            plot_perception_distortion(report, report.files["pd_plot"], pd_axes)
        for set_name in report.sets:
            strip = make_strip(strip_outputs[set_name], strip_psnr[set_name], strip_hr[set_name], border=scale)
            report.files[f"strip_{set_name}"] = out_dir / f"strip_{set_name}.png"
            imwrite(report.files[f"strip_{set_name}"], strip)
        return report
