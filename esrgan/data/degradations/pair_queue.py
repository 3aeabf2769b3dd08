"""Real-ESRGAN's training-pair pool: mixes degradations across batches.

A batch shares one resize factor, one interpolation and one noise kind; the pool holds
``queue_size`` past (LR, GT) pairs and, once full, each new batch is swapped for ``b`` random
pairs of the pool. Same draws as BasicSR's ``_dequeue_and_enqueue`` (one ``randperm`` per
batch once full, from the degradation's torch generator).

State (``state_dict``): ``lq`` and ``gt`` (the pool; stored as uint8 when every value is a
multiple of 1/255, which is the case for 8-bit GT and for the LR) and ``ptr``.
"""

from __future__ import annotations

from typing import Any

import torch


def _pack(x: torch.Tensor) -> torch.Tensor:
    q = (x * 255).round()
    if bool(x.min() >= 0) and bool(x.max() <= 1) and torch.equal(q / 255, x):
        return q.to(torch.uint8).cpu()
    return x.cpu()


def _unpack(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x.to(device).float() / 255 if x.dtype == torch.uint8 else x.to(device)


class TrainingPairQueue:
    """``queue(lq, gt) -> (lq, gt)``: fill the pool first (returns the batch itself), then swap."""

    def __init__(self, queue_size: int) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.queue_size = queue_size
        self.lq: torch.Tensor | None = None
        self.gt: torch.Tensor | None = None
        self.ptr = 0

    @torch.no_grad()
    def __call__(
        self, lq: torch.Tensor, gt: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b = lq.shape[0]
        if self.lq is None:
            if self.queue_size % b:
                raise ValueError(f"queue_size {self.queue_size} is not divisible by the batch size {b}")
            self.lq = lq.new_zeros((self.queue_size, *lq.shape[1:]))
            self.gt = gt.new_zeros((self.queue_size, *gt.shape[1:]))
        assert self.gt is not None
        if self.ptr < self.queue_size:
            self.lq[self.ptr : self.ptr + b] = lq
            self.gt[self.ptr : self.ptr + b] = gt
            self.ptr += b
            return lq, gt
        device = generator.device if generator is not None else torch.device("cpu")
        idx = torch.randperm(self.queue_size, generator=generator, device=device).to(self.lq.device)
        self.lq, self.gt = self.lq[idx], self.gt[idx]
        out_lq, out_gt = self.lq[:b].clone(), self.gt[:b].clone()
        self.lq[:b] = lq
        self.gt[:b] = gt
        return out_lq, out_gt

    def state_dict(self) -> dict[str, Any]:
        if self.lq is None or self.gt is None:
            return {"ptr": 0}
        return {"ptr": self.ptr, "lq": _pack(self.lq), "gt": _pack(self.gt)}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.ptr = int(state["ptr"])
        if "lq" in state:
            self.lq = _unpack(state["lq"], torch.device(device))
            self.gt = _unpack(state["gt"], torch.device(device))
        else:
            self.lq = self.gt = None
