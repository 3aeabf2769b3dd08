"""Pure image operations below every other layer: MATLAB's ``rgb2ycbcr`` (BT.601) and bicubic ``imresize``.

Used by the metrics (Y channel, NIQE), the datasets (LR made from HR) and the tester (bicubic
baseline); numpy and torch only, nothing of the package above.
"""

from __future__ import annotations

from esrgan.imageops.color import rgb2ycbcr, rgb2ycbcr_torch

# Eager on purpose: the submodule ``imresize`` shares the function's name, and importing the
# submodule (from anywhere) sets ``esrgan.imageops.imresize`` to the module, shadowing a lazy lookup.
from esrgan.imageops.imresize import imresize, imresize_torch

__all__ = ["imresize", "imresize_torch", "rgb2ycbcr", "rgb2ycbcr_torch"]
