"""Upscaling jobs of the web app: one worker thread per device runs them in order; the rest wait in a queue.

A job is one upload (or one folder of the user's machine) with its settings, run as one or more *variants*:
one model, two models side by side (A vs B), or a blend of two (network interpolation) with, on request, its
two end points. Each file's results appear as soon as that file is done. Progress is counted in network
forward passes (``Upscaler``'s progress callback), so the bar and the time left move with the real work.

Cancelling lands within one layer of the network: :func:`add_cancel_hooks` puts a forward pre-hook on every
layer that raises :class:`Cancelled` once the running job is cancelled (a whole-image pass on a CPU can take
many seconds; waiting for its end, or for the next tile, would leave the button without effect). Files that
finished keep their results; the others are marked cancelled, not failed.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import nn

from esrgan.inference.color_fix import DEFAULT_COLOR_FIX
from esrgan.inference.files import DEFAULT_QUALITY

logger = logging.getLogger("esrgan.serve")

KEEP_JOBS = 30  # finished jobs kept (with their files) before the oldest are deleted
MODES = ("single", "compare", "blend")
FORMATS = ("auto", "png", "jpg", "webp")


class Cancelled(Exception):
    """Raised inside the network (a forward pre-hook) or between files when the user cancels a running job."""


def add_cancel_hooks(net: nn.Module, cancelled: Callable[[], bool]) -> None:
    """Make every layer of ``net`` raise :class:`Cancelled` before it runs once ``cancelled()`` is true."""

    def hook(_module: nn.Module, _inputs: Any) -> None:
        if cancelled():
            raise Cancelled

    for module in net.modules():
        if not any(True for _ in module.children()):  # the leaves: convolutions, activations, ...
            module.register_forward_pre_hook(hook)


@dataclass(frozen=True)
class Variant:
    """One picture made of each file: a model, or the blend of two at ``alpha``."""

    key: str  # "a", "b" or "blend": the file's URL (/files/<i>/<key>) and the output name's part
    label: str  # shown in the page
    model: str
    model_b: str | None = None
    alpha: float | None = None


@dataclass
class Settings:
    model: str  # a resolved spec (zoo name or allowed absolute path)
    model_b: str | None = None  # compare: the second model; blend: the model at alpha = 1
    alpha: float | None = None  # blend: (1 - alpha) * model + alpha * model_b, weight by weight
    mode: str = "single"  # single, compare (A and B side by side) or blend
    endpoints: bool = False  # blend: also run the two models alone (alpha 0 and 1), to compare with
    outscale: float | None = None  # None: the model's scale
    tile: int = 0  # automatic, as everywhere
    precision: str = "auto"
    format: str = "auto"  # of the outputs: auto (the input's), png, jpg, webp
    quality: int = DEFAULT_QUALITY  # jpg and webp
    color_fix: str = DEFAULT_COLOR_FIX  # esrgan.inference.color_fix: the input's colours put back, as the CLI does

    def variants(self, label: Callable[[str], str]) -> list[Variant]:
        """What each file is run through; ``label`` names a model spec for people."""
        a = Variant("a", label(self.model), self.model)
        if self.mode == "single" or self.model_b is None:
            return [a]
        b = Variant("b", label(self.model_b), self.model_b)
        if self.mode == "compare":
            return [a, b]
        blend = Variant("blend", f"blend \u03b1 = {self.alpha:g}", self.model, self.model_b, self.alpha)
        return [blend, a, b] if self.endpoints else [blend]

    def describe(self, label: Callable[[str], str] = lambda s: Path(s).stem if "/" in s else s) -> str:
        name = label(self.model)
        if self.model_b is not None and self.mode == "blend":
            name = f"{name} \u2192 {label(self.model_b)} at \u03b1 {self.alpha:g}"
        elif self.model_b is not None and self.mode == "compare":
            name = f"{name} vs {label(self.model_b)}"
        return name


@dataclass
class Output:
    path: Path
    size: tuple[int, int]  # width, height
    plan: str  # what "auto" chose: "fp32 · whole image", "bf16 · 12 tiles of 256 px"
    seconds: float
    color_fix: str  # the colour fix it was made with (none, wavelet, histogram)


@dataclass
class Item:
    name: str  # the file's name as shown (an upload's sanitised name, or the file's name in a batch folder)
    input_path: Path
    kind: str = "image"  # or "video" (progress in frames instead of tiles)
    state: str = "waiting"  # waiting, running, done, error, cancelled, skipped, not_run (the job failed first)
    outputs: dict[str, Output] = field(default_factory=dict)  # variant key -> result
    error: str | None = None  # one line for people
    detail: str | None = None  # the whole story (folded in the page)
    note: str | None = None  # not an error: why a file was skipped (its output exists from before)
    input_size: tuple[int, int] | None = None  # width, height
    output_stem: str = ""  # the outputs' names start with it (unique in the job, short enough for any suffix)


@dataclass
class Job:
    id: str
    folder: Path  # the job's own files (uploads, previews, zip)
    settings: Settings
    items: list[Item]
    variants: list[Variant] = field(default_factory=list)
    out_dir: Path | None = None  # where the outputs go (default: folder / "out"; a batch: the user's folder)
    batch: bool = False  # a folder of the user's machine: outputs never overwrite a file there
    state: str = "queued"  # queued, running, done, error, cancelled
    phase: str = ""  # while running: "loading <model>", "upscaling"
    message: str = ""
    detail: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    current: int = 0  # index of the file being upscaled
    current_variant: int = 0
    steps_done: int = 0  # forward passes of the current file and variant
    steps_total: int = 0
    cancel_requested: float | None = None  # when the user asked
    guard: Any = None  # a batch's OutputGuard (esrgan.serve.outputs): nothing of the user's is replaced

    def __post_init__(self) -> None:
        if self.out_dir is None:
            self.out_dir = self.folder / "out"

    @property
    def units(self) -> int:
        return len(self.items) * max(1, len(self.variants))

    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        per = max(1, len(self.variants))
        done = self.current * per + self.current_variant
        part = self.steps_done / self.steps_total if self.steps_total else 0.0
        return min(1.0, (done + part) / self.units) if self.items else 0.0

    def eta(self) -> float | None:
        f = self.fraction()
        if self.state != "running" or self.cancel_requested or self.started is None or f <= 0.02:
            return None
        elapsed = time.time() - self.started
        return elapsed * (1 - f) / f

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for it in self.items:
            out[it.state] = out.get(it.state, 0) + 1
        return out


class JobQueue:
    """FIFO of jobs for one device, run by one worker thread (one job at a time on the device)."""

    def __init__(self, load: Any, run_item: Any, work_dir: Path, explain: Any = None) -> None:
        self.load = load  # (job, variant) -> model: loads (or takes from a cache) what a variant runs
        self.run_item = run_item  # (job, item, variant, model, progress) -> None: one file through one variant
        self.explain = explain or (lambda exc, job: (str(exc) or type(exc).__name__, ""))
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

    def cancelling(self) -> bool:
        """Whether the job on the device was asked to stop (read by the network's hooks, on the worker)."""
        job = self.jobs.get(self.running) if self.running else None
        return job is not None and job.cancel_requested is not None

    def cancel(self, job: Job) -> None:
        with self.cond:
            if job.id in self.pending:
                self.pending.remove(job.id)
                job.cancel_requested = time.time()
                for it in job.items:
                    it.state = "cancelled"
                job.state, job.message, job.finished = "cancelled", "Cancelled before it started.", time.time()
            elif job.state == "running" and job.cancel_requested is None:
                job.cancel_requested = time.time()

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel what waits and what runs, and wait for the worker (a network stops at its next layer)."""
        with self.cond:
            self.stopped = True
            for job_id in self.pending:
                self.jobs[job_id].state = "cancelled"
            self.pending.clear()
            running = self.jobs.get(self.running) if self.running else None
            if running is not None:
                running.cancel_requested = time.time()
            self.cond.notify_all()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _prune(self) -> None:
        done = [j for j in self.jobs.values() if j.state in ("done", "error", "cancelled")]
        for job in sorted(done, key=lambda j: j.created)[: max(0, len(done) - KEEP_JOBS)]:
            del self.jobs[job.id]
            shutil.rmtree(job.folder, ignore_errors=True)  # the job's own folder (a batch's outputs stay)

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
                self._cancelled(job)
            except Exception as exc:  # a failing job (model that does not load, ...) must not stop the server
                logger.warning("job %s failed: %s", job.id, exc, exc_info=logger.isEnabledFor(logging.DEBUG))
                job.message, job.detail = self.explain(exc, job)
                job.state = "error"
                for it in job.items:
                    if it.state in ("waiting", "running"):
                        it.state = "not_run"  # the job could not start them (its model did not load)
            finally:
                job.finished = time.time()
                job.phase = ""
                with self.cond:
                    self.running = None

    def _cancelled(self, job: Job) -> None:
        for it in job.items:
            if it.state in ("waiting", "running"):
                it.state = "cancelled"
        done = sum(1 for it in job.items if it.state == "done")
        job.state = "cancelled"
        job.message = f"Cancelled: {done} of {len(job.items)} file(s) done, the rest not run."

    def _run(self, job: Job) -> None:
        def progress(done: int, total: int) -> None:
            job.steps_done, job.steps_total = done, total
            if job.cancel_requested:
                raise Cancelled

        models = []
        for variant in job.variants:
            if job.cancel_requested:
                raise Cancelled
            job.phase = f"loading {variant.label}"
            models.append(self.load(job, variant))
        job.phase = "upscaling"
        for i, item in enumerate(job.items):
            job.current = i
            if item.state != "waiting":  # refused before (a batch file over the limits, an existing output)
                continue
            item.state = "running"
            for v, (variant, model) in enumerate(zip(job.variants, models)):
                if job.cancel_requested:
                    raise Cancelled
                job.current_variant, job.steps_done, job.steps_total = v, 0, 0
                try:
                    self.run_item(job, item, variant, model, progress)
                except Cancelled:
                    raise
                except Exception as exc:  # this file is bad (or its output may not be written): say so, go on
                    item.error, item.detail = self.explain(exc, job)
                    if item.name not in item.error:
                        item.error = f"{item.name}: {item.error}"
                    logger.warning("job %s: %s", job.id, item.detail or item.error)
                    break
            item.state = "error" if item.error else ("skipped" if item.note and not item.outputs else "done")
            job.current_variant = 0
        job.current = len(job.items)
        counts = job.counts()
        failed = counts.get("error", 0)
        if failed and failed == len(job.items):
            job.state = "error"
            job.message = f"No file could be upscaled: {job.items[0].error}" if len(job.items) > 1 else \
                (job.items[0].error or "failed")
        else:
            job.state = "done"
            parts = [f"{counts.get('done', 0)} of {len(job.items)} file(s) done"]
            parts += [f"{counts[k]} {k}" for k in ("skipped", "error") if counts.get(k)]
            job.message = ", ".join(parts).replace(" error", " failed")


def bicubic_preview(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """The input enlarged by OpenCV's bicubic to the output's size: the viewer's 'before' picture."""
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)
    return out[:, :, None] if img.ndim == 3 and out.ndim == 2 else out
