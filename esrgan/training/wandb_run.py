"""Weights & Biases logging (``logger.wandb.project``), an optional dependency as in BasicSR.

The run logs what TensorBoard gets (losses, learning rates, iteration times, validation metrics) at
the same iterations, with the resolved options as its config. ``logger.wandb.resume_id`` continues
an earlier W&B run. ``WANDB_MODE=offline`` writes the run under ``<experiment>/wandb/`` without a
network (``wandb sync`` uploads it later).
"""

from __future__ import annotations

import netrc
import os
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esrgan.options import Options

INSTALL_HINT = "pip install wandb (or pip install 'esrgan[wandb]')"
LOGIN_HINT = ("run 'wandb login' (or set WANDB_API_KEY), or log offline with WANDB_MODE=offline and upload "
              "later with 'wandb sync'")
_NO_NETWORK_MODES = ("offline", "dryrun", "disabled")


def wanted(opt: Options) -> bool:
    return bool(opt.logger.wandb.project)


def _has_api_key() -> bool:
    """An API key wandb would find without asking: WANDB_API_KEY, an identity token file, or a netrc entry."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urllib.parse.urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return netrc.netrc(os.environ.get("NETRC") or None).authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check_ready(opt: Options) -> None:
    """Before the experiment folder is touched: a run asking for W&B without the package, or without a way to
    log in (it would stop at its first line of logging), fails at once with what to do."""
    if not wanted(opt):
        return
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ValueError(
            f"logger.wandb.project is set but the wandb package is not installed: {INSTALL_HINT}, "
            "or remove logger.wandb"
        ) from None
    if os.environ.get("WANDB_MODE", "").lower() in _NO_NETWORK_MODES or _has_api_key():
        return
    raise ValueError(f"logger.wandb.project is set but Weights & Biases has no API key on this machine: {LOGIN_HINT}")


def start(opt: Options, root: Path) -> Any | None:
    """The W&B run of this experiment (None when ``logger.wandb.project`` is not set)."""
    if not wanted(opt):
        return None
    import wandb

    w = opt.logger.wandb
    try:
        return wandb.init(
            project=w.project,
            entity=w.entity,
            name=opt.name,
            id=w.resume_id,
            resume="allow" if w.resume_id else None,
            config=opt.to_dict(),
            dir=str(root),
        )
    except Exception as exc:  # wandb's own errors (no network, a refused key): one line, not its traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"Weights & Biases did not start ({first}); {LOGIN_HINT}, or remove logger.wandb") from None
