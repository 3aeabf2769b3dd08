"""``report.html`` of training pairs: the LR/GT pairs the trainer trains on (``esrgan prepare degrade --preview``).

The page is the reports' own (template, styles, scripts: ``pages.render_page``), kind ``degradations``: a viewer
comparing each LR (enlarged by pixel repetition to the GT's size) with its GT, and every pair by training step.
Images go to ``images/`` beside the page: ``it<step>_<k>_lq.png`` (what the network is fed), ``..._lq_x<s>.png``
(the same, enlarged for the eye) and ``..._gt.png`` (the target).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from esrgan.data.image import imwrite, tensor2img
from esrgan.report.pages import REPORT_NAME, render_page
from esrgan.training.preview import TrainingPair
from esrgan.utils.atomic import atomic_write_text

IMAGES = "images"


def write_degradation_gallery(pairs: Sequence[TrainingPair], out_dir: str | Path, *, name: str, scale: int,
                              description: str, provenance: dict[str, Any] | None = None) -> Path:
    """Write the pairs' images and ``out_dir/report.html``; returns the page's path."""
    out_dir = Path(out_dir)
    steps: dict[int, list[dict[str, Any]]] = {}
    for p in pairs:
        stem = f"it{p.iteration:04d}_{p.index:02d}"
        lq, gt = tensor2img(p.lq), tensor2img(p.gt)
        big = np.repeat(np.repeat(lq, scale, axis=0), scale, axis=1)
        files = {"lq": f"{stem}_lq.png", "lq_big": f"{stem}_lq_x{scale}.png", "gt": f"{stem}_gt.png"}
        for key, img in (("lq", lq), ("lq_big", big), ("gt", gt)):
            imwrite(out_dir / IMAGES / files[key], img)
        steps.setdefault(p.iteration, []).append({
            "name": f"step {p.iteration}, image {p.index + 1}",
            **{k: f"{IMAGES}/{v}" for k, v in files.items()},
            "lq_size": f"{lq.shape[1]}x{lq.shape[0]}", "gt_size": f"{gt.shape[1]}x{gt.shape[0]}",
        })
    data = {
        "kind": "degradations",
        "name": name,
        "scale": scale,
        "description": description,
        "provenance": provenance or {},
        "steps": [{"iteration": it, "pairs": rows} for it, rows in steps.items()],
    }
    page = out_dir / REPORT_NAME
    atomic_write_text(page, render_page(f"{name}: x{scale} training pairs", data))
    return page


__all__ = ["write_degradation_gallery"]
