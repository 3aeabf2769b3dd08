"""Distributed set-up on PyTorch's own stack: torchrun (env://) and SLURM (srun).

No home-made launcher: ``torchrun`` (or ``srun``) starts one process per device and this
module only turns the environment those tools set into an initialised process group.
NCCL is used when the process owns a GPU, gloo otherwise (CPU runs, tests).
"""

from __future__ import annotations

import builtins
import datetime
import logging
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from esrgan.utils.atomic import DiskFullError

logger = logging.getLogger("esrgan.training.dist")

LAUNCHERS = ("none", "pytorch", "slurm")
T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job. ``world_size == 1`` and ``rank == 0`` when not distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _require_env(env: Mapping[str, str], key: str, launcher: str) -> str:
    if key not in env:
        hint = (
            "start the job with `torchrun --nproc_per_node N train.py ... --launcher pytorch`"
            if launcher == "pytorch"
            else "start the job with `srun python train.py ... --launcher slurm`"
        )
        raise RuntimeError(f"--launcher {launcher}: environment variable {key} is not set; {hint}")
    return env[key]


def _slurm_master_addr(nodelist: str) -> str:
    """First host name of a SLURM node list (``node[01-04]`` -> ``node01``), via scontrol when present."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], check=True, capture_output=True, text=True, timeout=30
        ).stdout
        first = out.split()[0] if out.split() else ""
        if first:
            return first
    except (OSError, subprocess.SubprocessError):
        pass
    # Without scontrol, expand the simple forms ourselves: "a,b" and "prefix[01-04,07]".
    head = nodelist.split(",")[0]
    if "[" in nodelist:
        prefix, rest = nodelist.split("[", 1)
        first_range = rest.split(",")[0].split("]")[0]
        head = prefix + first_range.split("-")[0]
    return head


def env_for_slurm(env: Mapping[str, str], default_port: int = 29500) -> dict[str, str]:
    """Translate SLURM's variables into the env:// variables torch.distributed reads."""
    rank = _require_env(env, "SLURM_PROCID", "slurm")
    world_size = _require_env(env, "SLURM_NTASKS", "slurm")
    nodelist = env.get("SLURM_JOB_NODELIST") or _require_env(env, "SLURM_NODELIST", "slurm")
    local_rank = env.get("SLURM_LOCALID", "0")
    return {
        "RANK": rank,
        "WORLD_SIZE": world_size,
        "LOCAL_RANK": local_rank,
        "MASTER_ADDR": env.get("MASTER_ADDR", _slurm_master_addr(nodelist)),
        "MASTER_PORT": env.get("MASTER_PORT", str(default_port)),
    }


def check_gpu_for_rank(local_rank: int, launcher: str = "pytorch") -> int:
    """This process's GPU index (its local rank); more processes on a node than GPUs is one clear error.

    Two ranks on one GPU would make NCCL fail at DDP's set-up with a message about duplicate GPUs.
    """
    count = torch.cuda.device_count()
    if local_rank >= count:
        start = "torchrun --nproc_per_node" if launcher == "pytorch" else "srun --ntasks-per-node"
        raise RuntimeError(
            f"--launcher {launcher}: local rank {local_rank} needs GPU {local_rank}, but this node has {count} "
            f"GPU{'s' if count != 1 else ''}: start at most {count} process{'es' if count != 1 else ''} per node "
            f"({start} {count}), or set num_gpu: 0 to train on the CPU"
        )
    return local_rank


def init_dist(launcher: str, backend: str | None = None, timeout_s: float = 1800.0,
              use_gpu: bool | None = None) -> DistInfo:
    """Initialise the default process group for ``launcher`` and pick this process's device.

    ``launcher="none"`` returns a single-process :class:`DistInfo` and touches nothing. ``use_gpu``: whether
    each process trains on its own GPU (default: when CUDA is available; ``num_gpu: 0`` says no).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; expected one of {', '.join(LAUNCHERS)}")
    if launcher == "none":
        return DistInfo()
    if launcher == "slurm":
        os.environ.update(env_for_slurm(os.environ, int(os.environ.get("MASTER_PORT", "29500"))))
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        _require_env(os.environ, key, launcher)
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if use_gpu is None else use_gpu and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(check_gpu_for_rank(local_rank, launcher))
    backend = backend or ("nccl" if use_cuda else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend, init_method="env://", timeout=datetime.timedelta(seconds=timeout_s)
        )
    logger.info("process group ready: rank %d / %d (local rank %d, backend %s)", rank, world_size, local_rank, backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, distributed=True)


def get_dist_info() -> DistInfo:
    """The current process's place, read from the initialised process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            distributed=True,
        )
    return DistInfo()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if is_dist():
        dist.barrier()


def destroy() -> None:
    if is_dist():
        dist.destroy_process_group()


def all_reduce_mean(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Average scalar tensors over all ranks (one collective for all of them); plain floats back."""
    if not values:
        return {}
    names = list(values)
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in names])
    if is_dist():
        stacked = stacked.to(_collective_device())
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        stacked /= dist.get_world_size()
    return dict(zip(names, stacked.cpu().tolist(), strict=True))


def any_true(flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank."""
    if not is_dist():
        return flag
    return any_of(flag)[0]


def any_of(*flags: bool | torch.Tensor) -> list[bool]:
    """For each flag (a bool, or a one-element tensor on a device), whether it is true on any rank.

    One collective and one read for all of them: the trainer asks "was a loss non-finite, did a stop signal
    come" once per iteration with this, so every rank takes the same branch.
    """
    device = _collective_device() if is_dist() else next(
        (f.device for f in flags if isinstance(f, torch.Tensor)), torch.device("cpu"))
    t = torch.stack([torch.as_tensor(f).to(device=device, dtype=torch.int32).reshape(()) for f in flags])
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order, on every rank (``[obj]`` when not distributed)."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def on_main(fn: Callable[[], T], is_main: bool | None = None) -> T | None:
    """``fn()`` on rank 0 only (writing files), then every rank learns whether it worked.

    If it raised, every rank raises the same error: a full disk while rank 0 saves stops the whole job with
    one message, instead of leaving the other ranks waiting in the next collective until its timeout (under
    ``srun`` nothing else brings them down). The other ranks return None. Costs one broadcast.
    ``is_main``: whether this process is rank 0 (default: the process group's rank; a job's
    :class:`DistInfo` says it where no group is made).
    """
    main = (not is_dist() or dist.get_rank() == 0) if is_main is None else is_main
    if not is_dist():
        return fn() if main else None
    result, failure = None, None
    if main:
        try:
            result = fn()
        except Exception as exc:
            failure = exc
    shared = broadcast_object(None if failure is None else _describe(failure))
    if failure is not None:
        raise failure
    if shared is not None:
        raise _rebuild(shared)
    return result


def _describe(exc: Exception) -> tuple[str, ...]:
    if isinstance(exc, DiskFullError):
        return ("DiskFullError", str(exc.folder), exc.file)
    return (type(exc).__name__, str(exc), "builtin" if type(exc).__module__ == "builtins" else "")


def _rebuild(described: tuple[str, ...]) -> Exception:
    name, detail, extra = described
    if name == "DiskFullError":
        return DiskFullError(Path(detail), extra)
    cls = getattr(builtins, name, None) if extra == "builtin" else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls(detail)
    return RuntimeError(f"rank 0 failed: {name}: {detail}")


def _collective_device() -> torch.device:
    # NCCL only reduces CUDA tensors; gloo reduces CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
