"""Checks before the experiment folder is touched: the device to train on and its kernels, and every input path."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from esrgan.training import dist as dist_utils

if TYPE_CHECKING:
    from esrgan.options import Options

logger = logging.getLogger("esrgan.training")


def pick_device(num_gpu: int, dist_info: dist_utils.DistInfo) -> torch.device:
    """This rank's GPU for ``num_gpu >= 1``, the CPU for 0.

    A GPU asked for on a machine without one trains on the CPU, with a warning at the start (so that
    BasicSR's files, which say ``num_gpu: 1``, run unchanged wherever they are tried).
    """
    if num_gpu == 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        logger.warning("num_gpu: %d asks for a GPU, but torch sees no CUDA device on this machine: training on the "
                       "CPU (set num_gpu: 0 to say so, or num_gpu: auto)", num_gpu)
        return torch.device("cpu")
    if not dist_info.distributed:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cuda", dist_utils.check_gpu_for_rank(dist_info.local_rank))


# cuBLAS needs a fixed workspace per handle for reproducible matrix products (CUDA >= 10.2); read by cuBLAS when
# its first handle is made, so set before the networks are built. A value already in the environment is kept.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def set_kernels(device: torch.device, deterministic: bool) -> dict[str, Any]:
    """Choose the GPU kernels for training on ``device``; returns the settings it replaced (for
    :func:`restore_kernels`).

    By default ``cudnn.benchmark`` on CUDA (training crops have one size: cuDNN times its algorithms once per
    shape and keeps the fastest, as BasicSR does). ``deterministic`` (``train.deterministic``): deterministic
    algorithms, no benchmark, a fixed cuBLAS workspace, so a resumed run repeats the GPU's results bit for bit.
    Operations without a deterministic CUDA kernel (the backward of bilinear upsampling, in Real-ESRGAN's UNet
    discriminator) still run, with PyTorch's warning, rather than stopping the run.
    """
    previous = {
        "benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
    }
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        logger.info("train.deterministic: deterministic algorithms, cudnn.benchmark off, CUBLAS_WORKSPACE_CONFIG=%s",
                    os.environ["CUBLAS_WORKSPACE_CONFIG"])
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return previous


def restore_kernels(previous: dict[str, Any]) -> None:
    """Put back what :func:`set_kernels` changed (a run in a notebook or a test leaves the process as it was)."""
    torch.backends.cudnn.benchmark = previous["benchmark"]
    torch.backends.cudnn.deterministic = previous["cudnn_deterministic"]
    torch.use_deterministic_algorithms(previous["algorithms"], warn_only=previous["warn_only"])


def check_inputs_exist(opt: Options) -> None:
    """Every file and folder the option file names must exist and be of the right kind (folder or file).

    The error names each wrong path with its key. Runs before the experiment folder is touched.
    """
    problems: list[str] = []

    def check(key: str, value: str | None, want_dir: bool) -> None:
        if not value:
            return
        path = Path(value)
        if not path.exists():
            problems.append(f"{key}: {value} not found")
        elif want_dir and not path.is_dir():
            problems.append(f"{key}: {value} is a file, expected a folder")
        elif not want_dir and path.is_dir():
            problems.append(f"{key}: {value} is a folder, expected a file")

    for phase, ds in opt.datasets.items():
        # Image folders and LMDBs (a folder holding data.mdb) alike are folders; lists are files.
        for key, value in ds.input_paths().items():
            check(f"datasets.{phase}.{key}", value, key.startswith("dataroot"))
    p = opt.path
    for key, value in (("pretrain_network_g", p.pretrain_network_g), ("pretrain_network_d", p.pretrain_network_d),
                       ("resume_state", p.resume_state)):
        check(f"path.{key}", value, False)
    if problems:
        hint = "see datasets/README.md for the data layout and the 'esrgan prepare' commands that build it"
        raise FileNotFoundError("; ".join(problems) + f" ({hint})")
