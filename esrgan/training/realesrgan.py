"""Real-ESRGAN training: the degradation on the device, the pair queue, and the two models.

``RealESRNetModel`` (PSNR stage, L1 on the optionally sharpened GT) and ``RealESRGANModel`` (GAN
stage: UNet discriminator with spectral norm, non-relativistic GAN by default, multi-layer
perceptual loss; ``l1_gt_usm`` / ``percep_gt_usm`` / ``gan_gt_usm`` choose which targets are
sharpened). Both take batches of ``RealESRGANDataset`` (HR crops + kernels) and make the LR here:
USM -> two degradation rounds -> 8-bit rounding -> random ``gt_size`` crop -> pair queue.
With ``high_order_degradation: false`` (or batches that carry ``lq``) they train on given pairs.

The degradation's generators and the queue are per-process state (``rank_state``; each rank of a
distributed run draws its own degradations), saved with the training state, so resuming is exact.
The top-level option keys are BasicSR's (``opt.real_esrgan``, :class:`esrgan.options.RealESRGANOptions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from esrgan.data.degradations import (
    DegradationRNG,
    DiffJPEG,
    USMSharp,
    degradation_settings,
    degrade,
    paired_random_crop,
)
from esrgan.data.degradations.pair_queue import TrainingPairQueue
from esrgan.options.realesrgan import RealESRGANOptions
from esrgan.training import dist as dist_utils
from esrgan.training.models import ESRGANModel, SRModel

if TYPE_CHECKING:
    from esrgan.options import Options


class RealDegrader:
    """Batches of HR crops + kernels -> ``(lq, gt, gt_usm)`` training pairs on ``device``.

    ``sharpen_input``: degrade the sharpened GT (RealESRGANModel; RealESRNetModel with ``gt_usm``).
    ``sharpened_target``: the returned ``gt`` is the sharpened one (RealESRNetModel with ``gt_usm``).
    State: the degradation's generators and the pair queue.
    """

    def __init__(self, real: RealESRGANOptions, scale: int, device: torch.device, seed: int,
                 *, sharpen_input: bool, sharpened_target: bool) -> None:
        self.real = real
        self.scale = scale
        self.settings = degradation_settings(real, scale)
        self.device = device
        self.rng = DegradationRNG(seed, device)
        self.jpeg = DiffJPEG().to(device)
        self.usm = USMSharp().to(device)
        self.queue = TrainingPairQueue(real.queue_size)
        self.sharpen_input = sharpen_input
        self.sharpened_target = sharpened_target

    @torch.no_grad()
    def __call__(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gt = batch["gt"].to(self.device, non_blocking=True)
        if "lq" in batch or not self.real.high_order_degradation:
            if "lq" not in batch:
                raise ValueError("high_order_degradation is false: the training set must give lq images "
                                 "(type RealESRGANPairedDataset or PairedImageDataset)")
            return batch["lq"].to(self.device, non_blocking=True), gt, self.usm(gt)
        kernels = [batch[k].to(self.device, non_blocking=True) for k in ("kernel1", "kernel2", "sinc_kernel")]
        sharp = self.usm(gt) if self.sharpen_input or self.sharpened_target else gt
        lq = degrade(sharp if self.sharpen_input else gt, *kernels, self.settings, self.rng, self.jpeg)
        target = sharp if self.sharpened_target else gt
        (target,), lq = paired_random_crop([target], lq, self.real.gt_size, self.scale, self.rng)
        lq, target = self.queue(lq.contiguous(), target.contiguous(), self.rng.torch)
        # The queue may hand back other images: sharpen what is returned.
        gt_usm = target if self.sharpened_target else self.usm(target)
        return lq, target, gt_usm

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.state_dict(), "queue": self.queue.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.load_state_dict(state["rng"])
        self.queue.load_state_dict(state["queue"], self.device)


def degrader_for(opt: Options, device: torch.device, rank: int = 0) -> RealDegrader:
    """The degradation ``esrgan train`` runs for ``opt`` (a Real-ESRGAN model type) in process ``rank``: its seed,
    sharpening and targets (also what ``esrgan prepare degrade --preview`` draws)."""
    real = opt.real_esrgan  # checked against the scale and the training set at load
    seed = opt.manual_seed + rank
    if opt.model_type == "RealESRGANModel":
        return RealDegrader(real, opt.scale, device, seed, sharpen_input=True, sharpened_target=False)
    return RealDegrader(real, opt.scale, device, seed, sharpen_input=real.gt_usm, sharpened_target=real.gt_usm)


def _degrader(model: SRModel, opt: Options) -> RealDegrader:
    return degrader_for(opt, model.device, model.dist_info.rank)


class RealESRNetModel(SRModel):
    """PSNR stage of Real-ESRGAN: L1 towards the (``gt_usm``: sharpened) GT of degraded LR."""

    def __init__(self, opt: Options, device: torch.device, dist_info: dist_utils.DistInfo | None = None) -> None:
        super().__init__(opt, device, dist_info)
        self.degrader = _degrader(self, opt)

    def prepare_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        lq, gt, _ = self.degrader(batch)
        return self.to_input(lq), self.to_input(gt)

    def rank_state(self) -> dict[str, Any]:
        return {"degradation": self.degrader.state_dict()}

    def load_rank_state(self, state: Mapping[str, Any] | None) -> None:
        _load_degradation(self.degrader, state)


class RealESRGANModel(ESRGANModel):
    """GAN stage of Real-ESRGAN; ``l1_gt_usm`` / ``percep_gt_usm`` / ``gan_gt_usm`` pick sharpened targets."""

    def __init__(self, opt: Options, device: torch.device, dist_info: dist_utils.DistInfo | None = None) -> None:
        super().__init__(opt, device, dist_info)
        self.degrader = _degrader(self, opt)
        self._gt_usm: torch.Tensor | None = None

    def prepare_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        lq, gt, gt_usm = self.degrader(batch)
        self._gt_usm = self.to_input(gt_usm)
        return self.to_input(lq), self.to_input(gt)

    def loss_targets(self, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        usm = self._gt_usm if self._gt_usm is not None else gt
        real = self.degrader.real
        return tuple(usm if flag else gt for flag in (real.l1_gt_usm, real.percep_gt_usm, real.gan_gt_usm))  # type: ignore[return-value]

    def rank_state(self) -> dict[str, Any]:
        return {"degradation": self.degrader.state_dict()}

    def load_rank_state(self, state: Mapping[str, Any] | None) -> None:
        _load_degradation(self.degrader, state)


def _load_degradation(degrader: RealDegrader, state: Mapping[str, Any] | None) -> None:
    if not state or "degradation" not in state:
        raise ValueError("the training state has no degradation state (saved by a non-Real-ESRGAN model?)")
    degrader.load_state_dict(state["degradation"])
