"""The training precision: ``train.use_amp``, ``amp_dtype`` and ``channels_last`` resolved for one device.

``auto`` (the default) follows the one hardware decision (:func:`esrgan.utils.hardware.fast_dtype`, also behind
the Upscaler's ``--precision auto``): bf16 autocast on CPUs with native bf16 matrix instructions (AMX-BF16,
AVX512-BF16), fp16 autocast with a grad scaler on GPUs, fp32 elsewhere (emulated bf16 is several times slower
than fp32); channels_last goes with autocast. bf16 learns as fp32 does within seed noise (benchmarks/README.md,
"Training precision"). The choice is logged at start with the one line that goes back to fp32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from esrgan.utils.hardware import cuda_native_bf16, fast_dtype

if TYPE_CHECKING:
    from esrgan.options.sections import TrainOptions

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # train.amp_dtype
_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16"}

logger = logging.getLogger("esrgan.training.precision")


@dataclass(frozen=True)
class TrainingPrecision:
    autocast: torch.dtype | None  # None: fp32
    channels_last: bool
    note: str  # what was chosen and why, logged once at start

    @property
    def grad_scaler(self) -> bool:
        """fp16 needs a grad scaler; bf16 has fp32's exponent range and needs none."""
        return self.autocast == torch.float16


def amp_dtype_for(use_amp: bool, amp_dtype: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of an explicit ``train.amp_dtype`` (``bf16`` / ``fp16``) on ``device`` (None: fp32).

    bf16 on a GPU older than Ampere (compute capability < 8.0) is emulated and slow: fp16 with the grad scaler
    there, said once at the start.
    """
    if not use_amp:
        return None
    dtype = AMP_DTYPES[amp_dtype]
    if dtype == torch.bfloat16 and device.type == "cuda" and not cuda_native_bf16(device):
        major, minor = torch.cuda.get_device_capability(device)
        logger.warning("train.amp_dtype: bf16 is emulated on %s (compute capability %d.%d; native from 8.0): "
                       "training in fp16 with a grad scaler instead", device, major, minor)
        return torch.float16
    return dtype


def training_precision(train: TrainOptions, device: torch.device) -> TrainingPrecision:
    """``train``'s precision keys on ``device``."""
    fast, reason = fast_dtype(device)
    if train.use_amp == "auto":
        dtype = None if fast == torch.float32 else fast
        why = f"train.use_amp: auto; {reason}"
    elif train.use_amp:
        if train.amp_dtype != "auto":
            dtype = amp_dtype_for(True, train.amp_dtype, device)
        else:  # asked for autocast where fp32 is the fast choice: the CPU's autocast dtype
            dtype = torch.bfloat16 if fast == torch.float32 else fast
        why = "train.use_amp: true"
        if device.type == "cpu" and dtype == torch.bfloat16 and fast != torch.bfloat16:
            why += f"; {reason}, so bf16 is emulated and several times slower than fp32 here"
    else:
        dtype, why = None, "train.use_amp: false"
    if train.use_amp == "auto" and dtype is not None and train.amp_dtype != "auto":
        dtype = amp_dtype_for(True, train.amp_dtype, device)
    # auto: with autocast, as they were measured together (AMP + channels_last 1.54x the fp32 iteration on a
    # native-bf16 CPU, AMP alone 1.30x: benchmarks/README.md, "Training precision"); fp32 keeps NCHW, as before
    if train.channels_last == "auto":
        channels_last = dtype is not None and device.type != "mps"
    else:
        channels_last = bool(train.channels_last)
    what = "fp32" if dtype is None else f"{_NAMES[dtype]} autocast" + (" with a grad scaler" * (dtype == torch.float16))
    layout = "channels_last" if channels_last else "contiguous (NCHW)"
    note = f"training precision: {what}, {layout} ({why})"
    if dtype is not None:
        note += "; train.use_amp: false trains in fp32"
    return TrainingPrecision(dtype, channels_last, note)
