"""Inference: the ``Upscaler`` (tiling, precision, threads), image and video upscaling, export.

Video (PyAV) and export (ONNX) modules are imported only by the commands that use them.
"""

from esrgan.inference.upscaler import Upscaler, default_device, probe_model, resolve_precision

__all__ = ["Upscaler", "default_device", "probe_model", "resolve_precision"]
