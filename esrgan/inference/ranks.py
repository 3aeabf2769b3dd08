"""The processes of a ``torchrun`` job as inference sees them: which share of the work is this one's, and the
few collectives that put one output together (torch.distributed over gloo; the trainer's set-up in
``esrgan.training.dist`` starts the group). A single process is ``Ranks()``: every call is a no-op."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

# Bytes per message when a part file travels between ranks that share no file system.
_CHUNK = 16 * 2**20


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> Ranks:
        """This process's place in the initialised process group (``Ranks()`` without one)."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def describe(self) -> str:
        """`` across N processes (torchrun)`` or nothing."""
        return f" across {self.world_size} processes (torchrun)" if self.distributed else ""

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def sum(self, *values: int) -> tuple[int, ...]:
        """Each value summed over the ranks."""
        totals = [sum(column) for column in zip(*self.gather(values), strict=True)]
        return tuple(int(v) for v in totals)

    def any(self, flag: bool) -> bool:
        return any(self.gather(bool(flag)))

    def send_file(self, path: Path, dst: int) -> None:
        """Send ``path``'s bytes to rank ``dst`` (which calls :meth:`recv_file`)."""
        size = path.stat().st_size
        dist.send(torch.tensor([size], dtype=torch.int64), dst)
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                dist.send(torch.frombuffer(bytearray(chunk), dtype=torch.uint8), dst)

    def recv_file(self, path: Path, src: int) -> None:
        """Receive the bytes rank ``src`` sends with :meth:`send_file` into ``path`` (written as they come)."""
        size = torch.empty(1, dtype=torch.int64)
        dist.recv(size, src)
        left = int(size.item())
        with open(path, "wb") as f:
            while left:
                buf = torch.empty(min(left, _CHUNK), dtype=torch.uint8)
                dist.recv(buf, src)
                f.write(buf.numpy().tobytes())
                left -= buf.numel()
            f.flush()
            os.fsync(f.fileno())
