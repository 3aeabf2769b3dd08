"""Real-ESRGAN training: the degradation on the device, the pair queue, and the two models.

``RealESRNetModel`` (PSNR stage, L1 on the optionally sharpened GT) and ``RealESRGANModel`` (GAN
stage: UNet discriminator with spectral norm, non-relativistic GAN by default, multi-layer
perceptual loss; ``l1_gt_usm`` / ``percep_gt_usm`` / ``gan_gt_usm`` choose which targets are
sharpened). Both take batches of ``RealESRGANDataset`` (HR crops + kernels) and make the LR here:
USM -> two degradation rounds -> 8-bit rounding -> random ``gt_size`` crop -> pair queue.
With ``high_order_degradation: false`` (or batches that carry ``lq``) they train on given pairs.

The degradation's generators and the queue are per-process state (``rank_state``; each rank of a
distributed run draws its own degradations), saved with the training state, so resuming is exact.
The top-level option keys are BasicSR's (:class:`RealESRGANOptions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from esrgan.data.degradations import (
    DegradationRNG,
    DegradationSettings,
    DiffJPEG,
    NoiseRound,
    USMSharp,
    degrade,
    paired_random_crop,
)
from esrgan.data.degradations.pair_queue import TrainingPairQueue
from esrgan.options.datasets import check_distribution, check_range
from esrgan.training import dist as dist_utils
from esrgan.training.models import ESRGANModel, SRModel


@dataclass
class RealESRGANOptions:
    """Top-level keys of a Real-ESRGAN option file (defaults: the published x4plus recipe)."""

    high_order_degradation: bool = True
    gt_usm: bool = True  # RealESRNetModel: sharpen the GT before degrading it (and train towards it)
    l1_gt_usm: bool = True  # RealESRGANModel: targets of the pixel / perceptual / GAN losses
    percep_gt_usm: bool = True
    gan_gt_usm: bool = False
    resize_prob: list[float] = field(default_factory=lambda: [0.2, 0.7, 0.1])
    resize_range: list[float] = field(default_factory=lambda: [0.15, 1.5])
    gaussian_noise_prob: float = 0.5
    noise_range: list[float] = field(default_factory=lambda: [1.0, 30.0])
    poisson_scale_range: list[float] = field(default_factory=lambda: [0.05, 3.0])
    gray_noise_prob: float = 0.4
    jpeg_range: list[float] = field(default_factory=lambda: [30.0, 95.0])
    second_blur_prob: float = 0.8
    resize_prob2: list[float] = field(default_factory=lambda: [0.3, 0.4, 0.3])
    resize_range2: list[float] = field(default_factory=lambda: [0.3, 1.2])
    gaussian_noise_prob2: float = 0.5
    noise_range2: list[float] = field(default_factory=lambda: [1.0, 25.0])
    poisson_scale_range2: list[float] = field(default_factory=lambda: [0.05, 2.5])
    gray_noise_prob2: float = 0.4
    jpeg_range2: list[float] = field(default_factory=lambda: [30.0, 95.0])
    gt_size: int = 256
    queue_size: int = 180

    @classmethod
    def from_options(cls, opt: Any) -> RealESRGANOptions:
        """The keys from a (typed or mapping) options object; absent ones take the defaults."""
        get = opt.get if isinstance(opt, Mapping) else (lambda k, d: getattr(opt, k, d))
        values = {}
        for f in fields(cls):
            value = get(f.name, None)
            if value is not None:
                values[f.name] = list(value) if isinstance(value, tuple) else value
        return cls(**values)

    def check(self, path: str = "", *, scale: int = 4, batch_size: int | None = None,
              crop_pad_size: int | None = None, blur_kernel_size2: int | None = None) -> None:
        """Every value, and how they fit the dataset (batch, crop, kernel sizes); errors name the key."""

        def key(name: str) -> str:
            return f"{path}.{name}" if path else name

        for s in ("", "2"):
            check_distribution(getattr(self, f"resize_prob{s}"), key(f"resize_prob{s}"), length=3)
            check_range(getattr(self, f"resize_range{s}"), key(f"resize_range{s}"), low=0.0, strict_low=True)
            lo, hi = getattr(self, f"resize_range{s}")
            if lo > 1 or hi < 1:
                raise ValueError(f"{key(f'resize_range{s}')}: expected [down, up] around 1, got {[lo, hi]}")
            check_range(getattr(self, f"noise_range{s}"), key(f"noise_range{s}"), low=0.0)
            check_range(getattr(self, f"poisson_scale_range{s}"), key(f"poisson_scale_range{s}"), low=0.0)
            check_range(getattr(self, f"jpeg_range{s}"), key(f"jpeg_range{s}"), low=1.0, high=100.0)
            for p in ("gaussian_noise_prob", "gray_noise_prob"):
                _probability(getattr(self, f"{p}{s}"), key(f"{p}{s}"))
        _probability(self.second_blur_prob, key("second_blur_prob"))
        for name in ("gt_size", "queue_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key(name)}: expected an integer >= 1, got {value!r}")
        if self.gt_size % scale:
            raise ValueError(f"{key('gt_size')}: {self.gt_size} is not divisible by scale {scale}")
        if batch_size is not None and self.queue_size % batch_size:
            raise ValueError(
                f"{key('queue_size')}: {self.queue_size} is not divisible by the batch size {batch_size} "
                f"(datasets.train.batch_size_per_gpu); the queue swaps whole batches"
            )
        if crop_pad_size is not None:
            if self.gt_size > crop_pad_size:
                raise ValueError(f"{key('gt_size')}: {self.gt_size} is larger than the dataset's HR crop "
                                 f"(crop_pad_size {crop_pad_size})")
            # The second blur filters the image after the first round, whose smallest size is the crop
            # times resize_range[0]; the final sinc (21) filters the LR.
            smallest = int(crop_pad_size * self.resize_range[0])
            if blur_kernel_size2 is not None and blur_kernel_size2 // 2 >= smallest:
                raise ValueError(
                    f"datasets.train.blur_kernel_size2: {blur_kernel_size2} is too large for the patch: after "
                    f"the first resize (resize_range {self.resize_range}) a {crop_pad_size}-pixel crop can be "
                    f"{smallest} pixels, and reflected borders need more than half the kernel"
                )
            lr = crop_pad_size // scale
            if lr <= 21 // 2:
                raise ValueError(f"{key('gt_size')}: the LR of a {crop_pad_size}-pixel crop ({lr} pixels) is too "
                                 "small for the final 21-pixel sinc filter; raise crop_pad_size")

    def settings(self, scale: int) -> DegradationSettings:
        def round_(s: str) -> NoiseRound:
            return NoiseRound(*(tuple(v) if isinstance(v, list) else v for v in (
                getattr(self, f"resize_prob{s}"), getattr(self, f"resize_range{s}"),
                getattr(self, f"gaussian_noise_prob{s}"), getattr(self, f"noise_range{s}"),
                getattr(self, f"poisson_scale_range{s}"), getattr(self, f"gray_noise_prob{s}"),
                getattr(self, f"jpeg_range{s}"))))

        return DegradationSettings(scale, round_(""), round_("2"), self.second_blur_prob)


def _probability(value: Any, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{key}: expected a probability in [0, 1], got {value!r}")


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
        self.settings = real.settings(scale)
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


def _degrader(model: SRModel, opt: Any, *, gan: bool) -> RealDegrader:
    real = RealESRGANOptions.from_options(opt)
    train = [d for d in dict(opt.datasets).values() if getattr(d, "phase", "train") == "train"]
    ds = train[0] if train else None
    real.check(scale=int(opt.scale), batch_size=getattr(ds, "batch_size_per_gpu", None),
               crop_pad_size=getattr(ds, "crop_pad_size", None),
               blur_kernel_size2=getattr(ds, "blur_kernel_size2", None))
    seed = int(getattr(opt, "manual_seed", 0) or 0) + model.dist_info.rank
    if gan:
        return RealDegrader(real, int(opt.scale), model.device, seed, sharpen_input=True, sharpened_target=False)
    return RealDegrader(real, int(opt.scale), model.device, seed, sharpen_input=real.gt_usm,
                        sharpened_target=real.gt_usm)


class RealESRNetModel(SRModel):
    """PSNR stage of Real-ESRGAN: L1 towards the (``gt_usm``: sharpened) GT of degraded LR."""

    def __init__(self, opt: Any, device: torch.device, dist_info: dist_utils.DistInfo | None = None) -> None:
        super().__init__(opt, device, dist_info)
        self.degrader = _degrader(self, opt, gan=False)

    def prepare_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        lq, gt, _ = self.degrader(batch)
        return self.to_input(lq), self.to_input(gt)

    def rank_state(self) -> dict[str, Any]:
        return {"degradation": self.degrader.state_dict()}

    def load_rank_state(self, state: Mapping[str, Any] | None) -> None:
        _load_degradation(self.degrader, state)


class RealESRGANModel(ESRGANModel):
    """GAN stage of Real-ESRGAN; ``l1_gt_usm`` / ``percep_gt_usm`` / ``gan_gt_usm`` pick sharpened targets."""

    def __init__(self, opt: Any, device: torch.device, dist_info: dist_utils.DistInfo | None = None) -> None:
        super().__init__(opt, device, dist_info)
        self.degrader = _degrader(self, opt, gan=True)
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


REAL_MODELS: dict[str, type[SRModel]] = {"RealESRNetModel": RealESRNetModel, "RealESRGANModel": RealESRGANModel}
