"""The one timing helper of the benchmark scripts (they run as ``python benchmarks/<script>.py``, so this
folder is on ``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(fn: Callable[[], object], repeats: int, warmup: int = 1,
              sync: Callable[[], object] | None = None) -> float:
    """Seconds of the fastest of ``repeats`` timed calls of ``fn``, after ``warmup`` untimed ones.

    The fastest run is the one least disturbed by other processes. ``sync`` (e.g. ``torch.cuda.synchronize``)
    runs after every call, so work queued on a device is counted where it is done.
    """
    def done() -> None:
        if sync is not None:
            sync()

    for _ in range(warmup):
        fn()
    done()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        done()
        best = min(best, time.perf_counter() - start)
    return best
