"""What this machine can do: CPU bf16 support, CPU model, free memory per device.

Defaults that depend on the machine (precision, tile size, frames per pass) are decided from
these facts, never from one machine's timings.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from typing import Any

import torch

# CPU features that give native bf16 matrix arithmetic (oneDNN uses them for bf16 convolutions).
# Without them bf16 is emulated and many times slower than fp32.
NATIVE_BF16_FEATURES = ("amx_bf16", "avx512_bf16")
# Free memory assumed when a device does not report it.
_FALLBACK_FREE_BYTES = 4 << 30


@functools.cache
def cpu_features() -> dict[str, Any]:
    """torch's view of the CPU (``torch._C._cpu._get_cpu_capability()``: flags such as ``amx_bf16``).

    An empty dict when this torch build does not expose it (then no native bf16 is assumed).
    """
    probe = getattr(getattr(torch._C, "_cpu", None), "_get_cpu_capability", None)
    try:
        caps = probe() if probe is not None else {}
    except Exception:  # a private API: any failure means "unknown", never a crash
        caps = {}
    return dict(caps) if isinstance(caps, dict) else {}


def cpu_native_bf16() -> list[str]:
    """The native bf16 features this CPU has (e.g. ``['amx_bf16', 'avx512_bf16']``); empty if none."""
    caps = cpu_features()
    return [f for f in NATIVE_BF16_FEATURES if caps.get(f)]


def fast_dtype(device: torch.device) -> tuple[torch.dtype, str]:
    """The one decision behind every ``auto`` precision (inference ``--precision auto``, training ``use_amp: auto``):
    the dtype ``device`` computes fastest at a quality users accept, and why, as ``(dtype, reason)``.

    fp16 on CUDA and MPS; on the CPU bf16 where it has native bf16 matrix instructions (AMX-BF16 or
    AVX512-BF16, as torch reports them), else fp32: bf16 is emulated there and several times slower than fp32.
    """
    if device.type in ("cuda", "mps"):
        return torch.float16, f"fp16 on {device.type}"
    native = cpu_native_bf16()
    if native:
        return torch.bfloat16, f"this CPU has native bf16: {', '.join(native)}"
    return torch.float32, "this CPU has no native bf16 instructions: AMX-BF16 / AVX512-BF16"


def cuda_native_bf16(device: torch.device) -> bool:
    """Whether the CUDA GPU ``device`` does bf16 arithmetic natively: compute capability 8.0 (Ampere) or later.

    ``torch.cuda.is_bf16_supported()`` also says yes on a V100 or T4, where bf16 is emulated and convolutions
    take a slow path, and it asks about the current device rather than ``device``.
    """
    index = device.index if device.index is not None else torch.cuda.current_device()
    return tuple(torch.cuda.get_device_capability(index)) >= (8, 0)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a GPU runs asynchronously: a time read without this counts only
    the queueing). Nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or str(cpu_features().get("cpu_name", "unknown CPU"))


def cpu_summary() -> str:
    """One line for logs and benchmarks: model, threads, vector ISA torch uses, native bf16/AMX."""
    bf16 = cpu_native_bf16()
    return (
        f"{cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"ISA {torch.backends.cpu.get_cpu_capability()}; native bf16: {', '.join(bf16) if bf16 else 'no'}"
    )


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_limit_left() -> int | None:
    """Bytes left under a cgroup v2 memory limit (containers), if there is one."""
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            used = int(f.read().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def check_device(device: str | None) -> None:
    """Refuse a ``--device`` value torch does not know, or a GPU this machine does not have (ValueError, one line).
    None (automatic) is always fine."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {device}: not a device name; expected cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine (torch sees no GPU)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"--device {device}: Apple MPS is not available on this machine")


def free_memory(device: torch.device) -> int:
    """Bytes a new allocation on ``device`` can use now (GPU: free device memory; CPU: available RAM)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        # Memory torch's caching allocator holds but does not use is free for us too.
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type == "mps":
        mps = getattr(torch, "mps", None)
        try:
            return int(mps.recommended_max_memory() - mps.driver_allocated_memory())
        except Exception:
            return _FALLBACK_FREE_BYTES
    candidates = [v for v in (_meminfo_available(), _cgroup_limit_left()) if v is not None]
    if not candidates and hasattr(os, "sysconf"):
        with contextlib.suppress(ValueError, OSError):
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return min(candidates) if candidates else _FALLBACK_FREE_BYTES
