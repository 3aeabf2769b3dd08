"""What the trainer trains on: the first steps' (LR, GT) pairs of a Real-ESRGAN option file, drawn exactly as
``esrgan train`` draws them (``esrgan prepare degrade --options FILE --preview DIR``).

The same path as the trainer's: the loader seeded with ``manual_seed`` (epoch order, crops, flips and the blur
kernels of each sample), then on the device the degradation of process 0 (its generators seeded with
``manual_seed``), the random crop and the training-pair queue, in the same order. On the CPU the pairs are the ones
a CPU run trains on; a GPU run draws the same random numbers, its arithmetic may differ in the last bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from esrgan.options import Options


@dataclass
class TrainingPair:
    """One training pair of step ``iteration`` (1-based), image ``index`` of its batch: CHW tensors in [0, 1]."""

    iteration: int
    index: int
    lq: torch.Tensor
    gt: torch.Tensor


@torch.no_grad()
def training_pairs(opt: Options, steps: int, device: str | torch.device = "cpu") -> list[TrainingPair]:
    """The (LR, GT) pairs of the first ``steps`` optimizer steps of ``opt`` (all micro-batches of each), as the model's
    ``prepare_batch`` returns them (RealESRNetModel with ``gt_usm``: the GT sharpened)."""
    from esrgan.data.build import build_dataset
    from esrgan.data.loader import build_dataloader
    from esrgan.training.realesrgan import degrader_for
    from esrgan.training.steps import StepStream

    if steps < 1:
        raise ValueError(f"the preview needs at least one training step, got {steps}")
    if not opt.is_real:
        raise ValueError(f"model_type {opt.model_type} makes no degraded LR (expected RealESRNetModel or "
                         "RealESRGANModel)")
    device = torch.device(device)
    train_opt = opt.datasets["train"]
    loader = build_dataloader(build_dataset(train_opt), train_opt, seed=opt.manual_seed, rank=0, world_size=1,
                              pin_memory=False)
    stream = StepStream(loader, train_opt, device, opt.train.accumulate_grad_batches, lambda: False)
    degrader = degrader_for(opt, device, rank=0)
    pairs: list[TrainingPair] = []
    for iteration, batches in enumerate(stream, start=1):
        k = 0
        for batch in batches:
            lq, gt, _ = degrader(batch)
            for i in range(lq.shape[0]):
                pairs.append(TrainingPair(iteration, k, lq[i].float().cpu(), gt[i].float().cpu()))
                k += 1
        if iteration >= steps:
            break
    return pairs


__all__ = ["TrainingPair", "training_pairs"]
