"""Weights & Biases logging (``logger.wandb.project``), an optional dependency as in BasicSR.

The run logs what TensorBoard gets (losses, learning rates, iteration times, validation metrics) at
the same iterations, with the resolved options as its config. ``logger.wandb.resume_id`` continues
an earlier W&B run. ``WANDB_MODE=offline`` writes the run under ``<experiment>/wandb/`` without a
network (``wandb sync`` uploads it later).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from esrgan.options import WandbOptions

if TYPE_CHECKING:
    from esrgan.options import Options

INSTALL_HINT = "pip install wandb (or pip install 'esrgan[wandb]')"


def wanted(opt: Options) -> bool:
    return opt.logger.wandb is not None and bool(opt.logger.wandb.project)


def check_installed(opt: Options) -> None:
    """Before the experiment folder is touched: a run asking for W&B without the package fails at once."""
    if not wanted(opt):
        return
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ValueError(
            f"logger.wandb.project is set but the wandb package is not installed: {INSTALL_HINT}, "
            "or remove logger.wandb"
        ) from None


def start(opt: Options, root: Path) -> Any | None:
    """The W&B run of this experiment (None when ``logger.wandb.project`` is not set)."""
    if not wanted(opt):
        return None
    import wandb

    w = opt.logger.wandb or WandbOptions()
    return wandb.init(
        project=w.project,
        entity=w.entity,
        name=opt.name,
        id=w.resume_id,
        resume="allow" if w.resume_id else None,
        config=opt.to_dict(),
        dir=str(root),
    )
