"""Validation during training: metrics per validation set, SR images saved, best values tracked.

Metrics come from the metric table (:mod:`esrgan.metrics`): PSNR/SSIM and NIQE are scored on
the CPU copy of the 8-bit SR image, LPIPS and DISTS on the training device (their networks run there).

Runs on rank 0 only (the other ranks wait at a barrier): validation sets are small (Set5,
Set14) and whole images of different sizes do not batch, so splitting them over ranks
would save little and cost a reduction per metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from esrgan.data.image import imwrite, tensor2img
from esrgan.metrics.niqe_metric import NIQE_BLOCK

if TYPE_CHECKING:
    from esrgan.options import MetricOptions

logger = logging.getLogger("esrgan.training.validation")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[..., torch.Tensor]
    crop_border: int
    y_channel: bool
    higher_is_better: bool = True
    on_device: bool = False  # scored where the network ran (LPIPS) rather than on the CPU copy
    min_size: int = 0  # the smallest image side it can score (NIQE: its blocks inside the crop border)
    against_input: bool = False  # compares the output with the LR input, not the GT (colour drift)


def metric_specs(metrics: Mapping[str, MetricOptions]) -> list[MetricSpec]:
    """``val.metrics`` (validated, resolved options: ``crop_border`` is the scale unless the file says otherwise)
    as callables."""
    import functools

    from esrgan.metrics import metric_info

    specs = []
    for name, m in metrics.items():
        info = metric_info(m.type)
        fn = info.fn_torch
        if info.name == "lpips":
            from esrgan.metrics.lpips_metric import get_lpips_model

            # Load (or download) the backbone now: a missing file fails before training, not hours into it.
            get_lpips_model(m.net)
            fn = functools.partial(fn, net=m.net)
        elif info.load is not None:
            info.load()
        specs.append(
            MetricSpec(
                name=name,
                fn=fn,
                crop_border=m.crop_border,
                y_channel=m.test_y_channel,
                higher_is_better=info.higher_is_better if m.better is None else m.better != "lower",
                on_device=info.on_device,
                min_size=NIQE_BLOCK + 2 * m.crop_border if info.name == "niqe" else 0,
                against_input=info.against_input,
            )
        )
    return specs


def check_validation_images(name: str, dataset: Any, metrics: list[MetricSpec]) -> None:
    """Before training: every validation image is large enough for every metric (NIQE scores whole 96x96
    blocks inside the crop border); the first one that is not is named with the size it needs."""
    need = max(metrics, key=lambda m: m.min_size, default=None)
    if need is None or need.min_size == 0:
        return
    from esrgan.data.image import inspect_image_file

    refs = [gt for gt, _ in dataset.pairs] if hasattr(dataset, "pairs") else list(getattr(dataset, "refs", []))
    for ref in refs:
        if ref.key is None:
            w, h = inspect_image_file(ref.path)
        elif ref.shape is not None:
            h, w = ref.shape[:2]
        else:
            continue  # an LMDB without sizes in its meta_info: the metric itself reports it
        if w < need.min_size or h < need.min_size:
            raise ValueError(
                f"validation set {name}: {ref.path} is {w}x{h} pixels, but metric {need.name} needs at least "
                f"{need.min_size}x{need.min_size} (NIQE's {NIQE_BLOCK}x{NIQE_BLOCK} blocks inside a crop_border "
                f"of {(need.min_size - NIQE_BLOCK) // 2}); use larger validation images or remove {need.name} "
                "from val.metrics"
            )


class BestTracker:
    """Best value and iteration per (dataset, metric); a plain dict in the training state."""

    def __init__(self, state: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None) -> None:
        self.best: dict[str, dict[str, dict[str, float]]] = {
            ds: {m: dict(v) for m, v in ms.items()} for ds, ms in (state or {}).items()
        }

    def update(self, dataset: str, metric: MetricSpec, value: float, iteration: int) -> bool:
        """Record ``value``; True if it is a new best."""
        cur = self.best.setdefault(dataset, {}).get(metric.name)
        improved = cur is None or (value > cur["val"] if metric.higher_is_better else value < cur["val"])
        if improved:
            self.best[dataset][metric.name] = {"val": float(value), "iter": int(iteration)}
        return improved

    def state_dict(self) -> dict[str, dict[str, dict[str, float]]]:
        return {ds: {m: dict(v) for m, v in ms.items()} for ds, ms in self.best.items()}


def _image_name(batch: Mapping[str, Any]) -> str:
    path = batch.get("lq_path") or batch.get("gt_path")
    if isinstance(path, list | tuple):
        path = path[0]
    return Path(str(path)).stem if path else "img"


@torch.no_grad()
def validate_dataset(
    test_fn: Callable[[torch.Tensor], torch.Tensor],
    loader: torch.utils.data.DataLoader,
    metrics: list[MetricSpec],
    *,
    save_dir: Path | None,
    iteration: int,
    max_images_out: int = 0,
    progress: bool = False,
    desc: str = "validation",
) -> tuple[dict[str, float], list[tuple[str, torch.Tensor]]]:
    """Average metrics over ``loader`` (batch 1), on images rounded to 8 bits as the SR literature scores.

    Returns the averages and up to ``max_images_out`` (name, CHW SR tensor) pairs for TensorBoard.
    """
    sums = {m.name: 0.0 for m in metrics}
    count = 0
    images: list[tuple[str, torch.Tensor]] = []
    from tqdm import tqdm

    for batch in tqdm(loader, desc=desc, unit="img", leave=False, disable=not progress):
        name = _image_name(batch)
        # Score what is saved: the 8-bit image (BasicSR computes metrics on tensor2img's uint8).
        sr_dev = test_fn(batch["lq"]).clamp_(0, 1).mul_(255).round_().div_(255)
        sr = sr_dev.cpu()
        gt = batch["gt"]
        if sr.shape != gt.shape:
            raise ValueError(
                f"validation image {name}: SR output {tuple(sr.shape)} and GT {tuple(gt.shape)} differ in size; "
                "is the network's scale the option file's scale?"
            )
        for m in metrics:
            x = sr_dev if m.on_device else sr
            other = batch["lq"] if m.against_input else gt
            sums[m.name] += float(m.fn(x, other.to(x), crop_border=m.crop_border, y_channel=m.y_channel)[0])
        count += 1
        if save_dir is not None:
            imwrite(save_dir / f"{name}_{iteration}.png", tensor2img(sr[0]))
        if len(images) < max_images_out:
            images.append((name, sr[0]))
    if count == 0:
        raise ValueError("validation set is empty")
    return {k: v / count for k, v in sums.items()}, images
