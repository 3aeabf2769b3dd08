"""Real-ESRGAN's top-level option keys (``RealESRNetModel`` / ``RealESRGANModel``), typed and checked.

BasicSR keeps the degradation settings at the top level of the option file (``resize_prob``,
``noise_range2``, ``queue_size``...); :class:`RealESRGANOptions` holds them, with the published
x4plus recipe as defaults, and checks them (each value at load; against the scale and the training
set in :meth:`RealESRGANOptions.check_fit`); errors name the key. Plain values only:
``esrgan.data.degradations.degradation_settings`` turns them into the degradation's settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from esrgan.options.datasets import DatasetOptions, RealESRGANDatasetOptions, check_distribution, check_range
from esrgan.options.errors import OptionsError


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

    def check(self, path: str = "") -> None:
        """Every value on its own (the loader calls it); errors name the key."""

        def key(name: str) -> str:
            return f"{path}.{name}" if path else name

        for s in ("", "2"):
            check_distribution(getattr(self, f"resize_prob{s}"), key(f"resize_prob{s}"), length=3)
            check_range(getattr(self, f"resize_range{s}"), key(f"resize_range{s}"), low=0.0, strict_low=True)
            lo, hi = getattr(self, f"resize_range{s}")
            if lo > 1 or hi < 1:
                raise OptionsError(key=key(f'resize_range{s}'), reason=f"expected [down, up] around 1, got {[lo, hi]}")
            check_range(getattr(self, f"noise_range{s}"), key(f"noise_range{s}"), low=0.0)
            check_range(getattr(self, f"poisson_scale_range{s}"), key(f"poisson_scale_range{s}"), low=0.0)
            check_range(getattr(self, f"jpeg_range{s}"), key(f"jpeg_range{s}"), low=1.0, high=100.0)
            for p in ("gaussian_noise_prob", "gray_noise_prob"):
                _probability(getattr(self, f"{p}{s}"), key(f"{p}{s}"))
        _probability(self.second_blur_prob, key("second_blur_prob"))
        for name in ("gt_size", "queue_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionsError(key=key(name), reason=f"expected an integer >= 1, got {value!r}")

    def check_fit(self, *, scale: int, train: DatasetOptions | None) -> None:
        """How the keys fit the scale and the training set (batch, crop and kernel sizes); errors name the key."""
        if self.gt_size % scale:
            raise OptionsError(key="gt_size", reason=f"{self.gt_size} is not divisible by scale {scale}")
        if train is not None and self.queue_size % train.batch_size_per_gpu:
            raise OptionsError(
                key="queue_size", reason=f"{self.queue_size} is not divisible by the batch size "
                f"{train.batch_size_per_gpu} (datasets.train.batch_size_per_gpu); the queue swaps whole batches"
            )
        if isinstance(train, RealESRGANDatasetOptions):
            crop_pad_size, blur_kernel_size2 = train.crop_pad_size, train.blur_kernel_size2
            if self.gt_size > crop_pad_size:
                raise OptionsError(key="gt_size", reason=f"{self.gt_size} is larger than the dataset's HR crop "
                                 f"(crop_pad_size {crop_pad_size})")
            # The second blur filters the image after the first round, whose smallest size is the crop
            # times resize_range[0]; the final sinc (21) filters the LR.
            smallest = int(crop_pad_size * self.resize_range[0])
            if blur_kernel_size2 // 2 >= smallest:
                raise OptionsError(
                    key="datasets.train.blur_kernel_size2",
                    reason=f"{blur_kernel_size2} is too large for the patch: after "
                    f"the first resize (resize_range {self.resize_range}) a {crop_pad_size}-pixel crop can be "
                    f"{smallest} pixels, and reflected borders need more than half the kernel"
                )
            lr = crop_pad_size // scale
            if lr <= 21 // 2:
                raise OptionsError(
                    key="gt_size",
                    reason=f"the LR of a {crop_pad_size}-pixel crop ({lr} pixels) is too small for the final "
                    "21-pixel sinc filter; raise crop_pad_size",
                )


def _probability(value: Any, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise OptionsError(f"expected a probability in [0, 1], got {value!r}", key=key)


REAL_KEYS = frozenset(f.name for f in fields(RealESRGANOptions))
