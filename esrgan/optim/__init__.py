"""Optimizers that torch does not ship, as plain ``torch.optim.Optimizer`` classes (``Adan``), and the
train/eval switch of schedule-free optimizers (:func:`evaluation_point`).

The option files name them through ``esrgan.options.OPTIMIZERS``.
"""

from esrgan.optim.adan import Adan
from esrgan.optim.schedule_free import evaluation_point, is_schedule_free, start_training

__all__ = ["Adan", "evaluation_point", "is_schedule_free", "start_training"]
