"""Checks before the experiment folder is touched: the device to train on, and every input path."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

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
    return torch.device("cuda", dist_info.local_rank % torch.cuda.device_count())


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
