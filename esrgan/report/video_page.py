"""``report.html`` for an ``esrgan test`` run on a video: the scores table and, beside the numbers, each model's
temporal-profile strip (one row of pixels from every frame, time running down: motion draws slanted lines,
flicker horizontal streaks) and its warping error over time. A static page: no script, nothing to load."""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from esrgan.report.pages import REPORT_NAME, asset, metric_label
from esrgan.utils.atomic import atomic_write_text

# (key in results.json, column title, what a lower or higher value means)
_COLUMNS = [
    ("warping_error", "warping error", "lower: steadier"),
    ("flicker_index", "flicker index", "0: as steady as the input"),
    ("color_drift", "colour drift (dE00)", "lower: colours kept"),
    ("psnr_y", metric_label("psnr_y"), "higher is better"),
    ("ssim_y", metric_label("ssim_y"), "higher is better"),
]
_STYLE = """
.strips { display: flex; gap: 12px; overflow-x: auto; align-items: flex-start; }
.strips figure { margin: 0; flex: 0 0 auto; }
.strips img { display: block; max-height: 480px; image-rendering: pixelated; border: 1px solid var(--line); }
.strips figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; max-width: 320px; }
table.scores td, table.scores th { padding: 4px 10px; text-align: right; }
table.scores td:first-child, table.scores th:first-child { text-align: left; }
"""


def _fmt(v: Any) -> str:
    return "&ndash;" if not isinstance(v, int | float) or not math.isfinite(v) else f"{v:.4f}"


def _sparkline(values: list[float | None], width: int = 220, height: int = 40) -> str:
    """An inline SVG line of the per-pair warping error (empty without two values)."""
    pts = [(i, v) for i, v in enumerate(values) if isinstance(v, int | float) and math.isfinite(v)]
    if len(pts) < 2:
        return ""
    top = max(v for _, v in pts) or 1.0
    n = max(len(values) - 1, 1)
    path = " ".join(f"{i * width / n:.1f},{height - 2 - v / top * (height - 4):.1f}" for i, v in pts)
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="warping error per frame pair">'
            f'<polyline fill="none" stroke="currentColor" stroke-width="1.2" points="{path}"/></svg>'
            f'<div class="small muted">max {top:.3f}</div>')


def _figure(src: str, caption: str) -> str:
    return (f'<figure><img src="{escape(quote(src))}" alt="{escape(caption)}" loading="lazy">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def render_video_report(data: dict[str, Any]) -> str:
    models = data.get("models", [])
    cols = [c for c in _COLUMNS if any(isinstance(m.get(c[0]), int | float) for m in models)]
    head = "".join(f'<th title="{escape(hint)}">{escape(title)}</th>' for _, title, hint in cols)
    rows = "".join(
        f"<tr><td>{escape(str(m.get('model', '')))}</td>" + "".join(f"<td>{_fmt(m.get(k))}</td>" for k, _, _ in cols)
        + f"<td>{_sparkline(m.get('warping_per_pair', []))}</td></tr>"
        for m in models
    )
    hr = data.get("hr_temporal")
    hr_row = (f"<tr><td>HR itself</td><td>{_fmt(hr.get('warping_error'))}</td>" + "<td></td>" * len(cols) + "</tr>"
              if hr else "")
    strips = [_figure(src, label) for label, src in data.get("strips", {}).items()]
    strips += [_figure(m["strip"], str(m.get("model", ""))) for m in models if m.get("strip")]
    title = f"{data.get('name', '')}: x{data.get('scale', '')} video test report"
    source = escape(str(data.get("input") or data.get("hr") or ""))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{asset("common.css")}{_STYLE}</style></head>
<body><div class="page">
<h1>{escape(title)}</h1>
<p class="muted">{source} &middot; {int(data.get("frames") or 0)} frames</p>
<div class="card"><h2>Scores</h2>
<table class="scores"><thead><tr><th>model</th>{head}<th>warping error over time</th></tr></thead>
<tbody>{rows}{hr_row}</tbody></table>
<p class="small muted">{escape(str(data.get("conventions", "")))}</p></div>
<div class="card"><h2>Temporal profiles</h2>
<p class="small muted">The middle row of pixels of every frame, time running down: motion draws slanted lines;
flicker, boiling texture or a seam that moves draws horizontal streaks.</p>
<div class="strips">{"".join(strips)}</div></div>
</div></body></html>
"""


def write_video_report(out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html`` for an ``esrgan test`` run on a video (from its results.json)."""
    out_dir = Path(out_dir)
    data = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    path = out_dir / REPORT_NAME
    atomic_write_text(path, render_video_report(data))
    return path
