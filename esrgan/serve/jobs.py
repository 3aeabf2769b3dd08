"""Upscaling jobs of the web app: one worker thread per device runs them in order; the rest wait in a queue.

A job is one upload (one or more images) with its settings. Progress is counted in network forward
passes (``Upscaler``'s progress callback), so the bar and the time left move with the real work;
cancelling raises inside that callback, which stops the network between two tiles.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

logger = logging.getLogger("esrgan.serve")

KEEP_JOBS = 30  # finished jobs kept (with their files) before the oldest are deleted


class Cancelled(Exception):
    """Raised in the progress callback when the user cancels a running job."""


@dataclass
class Settings:
    model: str  # a resolved spec (zoo name or allowed absolute path)
    model_b: str | None = None  # with alpha: network interpolation between model and model_b
    alpha: float | None = None
    outscale: float | None = None
    tile: int = 0  # automatic, as everywhere
    precision: str = "auto"

    def describe(self) -> str:
        name = Path(self.model).stem if "/" in self.model else self.model
        if self.model_b is not None:
            other = Path(self.model_b).stem if "/" in self.model_b else self.model_b
            name = f"{name} \u2192 {other} at alpha {self.alpha:g}"
        return name


@dataclass
class Item:
    name: str  # the uploaded file's name (sanitised)
    input_path: Path
    output_path: Path | None = None
    bicubic_path: Path | None = None
    error: str | None = None
    size: tuple[int, int] | None = None  # output width, height
    kind: str = "image"  # or "video" (progress in frames instead of tiles)


@dataclass
class Job:
    id: str
    folder: Path
    settings: Settings
    items: list[Item]
    state: str = "queued"  # queued, running, done, error, cancelled
    message: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    current: int = 0  # index of the image being upscaled
    steps_done: int = 0  # forward passes of the current image
    steps_total: int = 0
    cancel_requested: bool = False

    def fraction(self) -> float:
        n = len(self.items)
        if self.state == "done":
            return 1.0
        part = self.steps_done / self.steps_total if self.steps_total else 0.0
        return min(1.0, (self.current + part) / n) if n else 0.0

    def eta(self) -> float | None:
        f = self.fraction()
        if self.state != "running" or self.started is None or f <= 0.02:
            return None
        elapsed = time.time() - self.started
        return elapsed * (1 - f) / f


class JobQueue:
    """FIFO of jobs for one device, run by one worker thread (one job at a time on the device)."""

    def __init__(self, load: Any, run_item: Any, work_dir: Path) -> None:
        self.load = load  # (job) -> model: loads (or takes from a cache) what the job runs
        self.run_item = run_item  # (job, item, model, progress) -> None: does the upscaling of one image
        self.work_dir = work_dir
        self.jobs: dict[str, Job] = {}
        self.pending: deque[str] = deque()
        self.cond = threading.Condition()
        self.running: str | None = None
        self.stopped = False
        self.thread = threading.Thread(target=self._worker, name="esrgan-serve-worker", daemon=True)
        self.thread.start()

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex[:12]
        folder = self.work_dir / job_id
        folder.mkdir(parents=True)
        return job_id, folder

    def submit(self, job: Job) -> None:
        with self.cond:
            self.jobs[job.id] = job
            self.pending.append(job.id)
            self._prune()
            self.cond.notify_all()

    def position(self, job: Job) -> int:
        """0 while running or finished; n when n - 1 jobs (the running one included) are ahead."""
        with self.cond:
            if job.id not in self.pending:
                return 0
            return list(self.pending).index(job.id) + 1 + (self.running is not None)

    def cancel(self, job: Job) -> None:
        with self.cond:
            if job.id in self.pending:
                self.pending.remove(job.id)
                job.state, job.message, job.finished = "cancelled", "cancelled before it started", time.time()
            elif job.state == "running":
                job.cancel_requested = True

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel what waits and what runs, and wait for the worker (a network stops at its next tile)."""
        with self.cond:
            self.stopped = True
            for job_id in self.pending:
                self.jobs[job_id].state = "cancelled"
            self.pending.clear()
            running = self.jobs.get(self.running) if self.running else None
            if running is not None:
                running.cancel_requested = True
            self.cond.notify_all()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _prune(self) -> None:
        done = [j for j in self.jobs.values() if j.state in ("done", "error", "cancelled")]
        for job in sorted(done, key=lambda j: j.created)[: max(0, len(done) - KEEP_JOBS)]:
            del self.jobs[job.id]
            shutil.rmtree(job.folder, ignore_errors=True)

    def _worker(self) -> None:
        while True:
            with self.cond:
                while not self.pending and not self.stopped:
                    self.cond.wait()
                if self.stopped:
                    return
                job = self.jobs[self.pending.popleft()]
                self.running = job.id
                job.state, job.started = "running", time.time()
            try:
                self._run(job)
            except Cancelled:
                job.state, job.message = "cancelled", "cancelled"
            except Exception as exc:  # a failing job (model that does not load, ...) must not stop the server
                logger.exception("job %s failed", job.id)
                job.state, job.message = "error", str(exc) or type(exc).__name__
            finally:
                job.finished = time.time()
                with self.cond:
                    self.running = None

    def _run(self, job: Job) -> None:
        def progress(done: int, total: int) -> None:
            job.steps_done, job.steps_total = done, total
            if job.cancel_requested:
                raise Cancelled

        try:
            model = self.load(job)
        except Exception as exc:
            raise RuntimeError(f"cannot load model {job.settings.describe()}: {exc}") from exc
        for i, item in enumerate(job.items):
            if job.cancel_requested:
                raise Cancelled
            job.current, job.steps_done, job.steps_total = i, 0, 0
            try:
                self.run_item(job, item, model, progress)
            except Cancelled:
                raise
            except (ValueError, OSError) as exc:  # this image is bad: say so, go on with the others
                item.error = str(exc) if item.name in str(exc) else f"{item.name}: {exc}"
                logger.warning("job %s: %s", job.id, item.error)
        failed = [it for it in job.items if it.error]
        job.current = len(job.items)
        if failed and len(failed) == len(job.items):
            job.state, job.message = "error", "; ".join(it.error or "" for it in failed)
        else:
            job.state = "done"
            job.message = f"{len(job.items) - len(failed)} of {len(job.items)} file(s)"


def bicubic_preview(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """The input enlarged by OpenCV's bicubic to the output's size: the viewer's 'before' picture."""
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)
    return out[:, :, None] if img.ndim == 3 and out.ndim == 2 else out
