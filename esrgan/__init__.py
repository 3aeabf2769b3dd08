"""esrgan: training and research framework for ESRGAN super-resolution.

Importing this package is cheap: the trainer, TensorBoard and the data
pipelines are imported only by the code paths that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    import torch


def load_model(path_or_zoo_name: str, device: str = "cpu") -> torch.nn.Module:
    """Load any supported generator checkpoint (or model-zoo name) in eval mode.

    The architecture and its hyper-parameters are detected from the weights.
    """
    from esrgan.loading import load_model as _load_model

    return _load_model(path_or_zoo_name, device=device)


__all__ = ["__version__", "load_model"]
