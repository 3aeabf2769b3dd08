"""The web app behind ``esrgan serve``: a Starlette (ASGI) application with one page and a small JSON API.

    GET  /                              the page (styles and scripts inline, no network needed)
    GET  /api/info                      models, defaults, limits, device, whether folder batches are on
    GET  /api/model?id=M                what M is (network, size) and which models it can be blended with
    GET  /api/jobs                      the jobs of this server (a reloaded page finds its job again)
    POST /api/jobs                      multipart upload (files + settings) or ``from_job`` to rerun; -> job id
    POST /api/batch                     a folder of this machine in, a folder out (``--batch-dir``, localhost)
    GET  /api/jobs/{id}                 state, queue position, progress, time left, each file's results
    POST /api/jobs/{id}/cancel
    GET  /api/jobs/{id}/files/{i}/{a|b|blend|input|bicubic}[?download=1]
    GET  /api/jobs/{id}/zip             every output in one zip, named after the inputs

Uploads are streamed to the job's folder with their bytes counted (``uploads``), then decoded and checked
(size, pixels: the one pixel-limit check of ``esrgan.data.image``) before a job is made; a bad file is named
in the answer and the other files still run. Errors come back as ``{"error": line, "detail": text}``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from esrgan.data.image import ImageReadError, ImageTooLargeError, imdecode, imwrite
from esrgan.inference.color_fix import COLOR_FIXES, DEFAULT_COLOR_FIX
from esrgan.inference.files import DEFAULT_QUALITY
from esrgan.inference.upscaler import PRECISIONS
from esrgan.serve.batch import BatchFolders, BatchNotAllowed
from esrgan.serve.catalog import ModelCatalog, ModelNotAllowed, UpscalerCache
from esrgan.serve.errors import BlendError, explain
from esrgan.serve.jobs import FORMATS, MODES, Item, Job, JobQueue, Output, Settings, Variant, bicubic_preview
from esrgan.serve.uploads import UploadError, over_limit, read_upload, safe_name, size_text
from esrgan.utils.folders import EXPERIMENTS_ROOT

logger = logging.getLogger("esrgan.serve")

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    models: list[str] = field(default_factory=list)  # --model: preselected and allowed
    model_dirs: list[str] = field(default_factory=list)
    experiments_root: str = EXPERIMENTS_ROOT
    zoo_cache: str | None = None  # default: esrgan.zoo.cache_dir()
    device: str | None = None
    max_upload_mb: float = 50.0
    max_pixels: int = 4096 * 4096  # input pixels per image
    max_files: int = 64
    tile: int = 0  # automatic (whole image when it fits in memory), as `esrgan upscale`
    work_dir: str | None = None  # results; default a temporary folder removed at exit
    batch_dirs: list[str] = field(default_factory=list)  # --batch-dir: folders a batch may read and write

    @property
    def exposed(self) -> bool:
        return self.host not in LOCAL_HOSTS

    @property
    def upload_limit(self) -> int:
        return int(self.max_upload_mb * 2**20)


class BadRequest(ValueError):
    pass


class LoadFailed(RuntimeError):
    """A model of a job did not load; carries the line and detail for the page."""

    def __init__(self, line: str, detail: str) -> None:
        super().__init__(line)
        self.line, self.detail = line, detail


def render_index(config: ServeConfig) -> str:
    """The page: the report's shared styles and comparison viewer, and the app's own, inlined."""
    from esrgan.report.pages import asset

    style = asset("common.css") + asset("app.css", "esrgan.serve")
    script = asset("compare.js") + "\n" + asset("app.js", "esrgan.serve")
    page = asset("index.html", "esrgan.serve")
    parts = {"STYLE": style, "SCRIPT": script}
    return re.sub(r"\{\{(STYLE|SCRIPT)\}\}", lambda m: parts[m.group(1)], page)


def plan_text(upscaler: Any, height: int, width: int) -> str:
    """What 'auto' chose for an image: precision, device, whole image or N tiles of T px."""
    from esrgan.evaluation.provenance import precision_name

    passes = upscaler.forward_passes(1, height, width)
    head = f"{precision_name(upscaler.dtype)} on {upscaler.device.type}"
    if passes <= 1:
        return f"{head} \u00b7 whole image"
    tile = upscaler.tile or upscaler.auto_tile(height, width)
    return f"{head} \u00b7 {passes} tiles of {tile} px"


class ServeState:
    """Everything the routes share: configuration, model catalog and cache, the job queue."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.catalog = ModelCatalog(config.model_dirs, config.models, config.experiments_root, config.zoo_cache)
        self.batch = BatchFolders.create(config.batch_dirs, config.exposed)
        self._tmp = None
        if config.work_dir:
            work = Path(config.work_dir)
            work.mkdir(parents=True, exist_ok=True)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="esrgan-serve-")
            work = Path(self._tmp.name)
        self.queue = JobQueue(self.load, self.run_item, work, self.explain)
        self.cache = UpscalerCache(self.catalog, config.device, cancelled=self.queue.cancelling)
        self.page = render_index(config)
        self._decoded: tuple[Path, Any] | None = None  # the worker's last decoded input (shared by variants)

    def close(self) -> None:
        self.queue.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    # -------------------------------------------------------------- work (on the queue's thread)

    def explain(self, exc: BaseException, job: Job) -> tuple[str, str]:
        if isinstance(exc, LoadFailed):
            return exc.line, exc.detail
        return explain(exc)

    def load(self, job: Job, variant: Variant) -> Any:
        s = job.settings
        try:
            return self.cache.upscaler(variant.model, tile=s.tile, precision=s.precision, model_b=variant.model_b,
                                       alpha=variant.alpha, color_fix=s.color_fix)
        except BlendError as exc:
            raise LoadFailed(str(exc), str(exc)) from exc
        except Exception as exc:
            specs = [m for m in (variant.model, variant.model_b) if m]
            missing = next((m for m in specs if m in self.catalog.zoo and not self.catalog.cached(m)), None)
            label = missing or (variant.label if variant.model_b else self.catalog.label(variant.model))
            raise LoadFailed(*explain(exc, label)) from exc

    def _image(self, item: Item) -> Any:
        if self._decoded is None or self._decoded[0] != item.input_path:
            self._decoded = None  # free the previous one first
            self._decoded = (item.input_path, self.decode(item.input_path.read_bytes(), item.name))
        return self._decoded[1]

    def run_item(self, job: Job, item: Item, variant: Variant, upscaler: Any, progress: Any) -> None:
        if variant.key in item.outputs:  # reused from the job this one reruns (a blend's end points)
            return
        if item.kind == "video":
            self.run_video(job, item, variant, upscaler, progress)
            return
        from esrgan.serve.outputs import OutputClashError, output_target

        img = self._image(item)
        h, w = img.shape[:2]
        item.input_size = (int(w), int(h))
        plan = plan_text(upscaler, h, w)
        start = time.time()
        out = upscaler.upscale(img, job.settings.outscale, progress=progress)
        final_scale = job.settings.outscale if job.settings.outscale is not None else upscaler.scale
        assert job.out_dir is not None
        dst, params = output_target(item.output_stem, item.name, job.out_dir, variant, self.catalog.tag, out,
                                    final_scale, job.settings)
        if job.batch:  # the user's folder: never replace a file
            try:
                job.guard.check(dst, item.input_path)
            except OutputClashError as exc:
                item.note = f"{dst.name} exists from before: left as it is ({exc})"
                return
        imwrite(dst, out, params)
        if job.batch:
            job.guard.written(dst)
        seconds = time.time() - start
        item.outputs[variant.key] = Output(dst, (int(out.shape[1]), int(out.shape[0])), plan, seconds,
                                           upscaler.color_fix)
        if h * w >= 256 * 256:  # what the page says of its speed (smaller images measure the overheads)
            self.catalog.speeds[variant.model] = seconds / (h * w / 1e6)

    def run_video(self, job: Job, item: Item, variant: Variant, upscaler: Any, progress: Any) -> None:
        """Through the video pipeline at `esrgan video`'s defaults (frames per pass from the device and free
        memory: one on a CPU); audio is copied."""
        from esrgan.inference.video import upscale_video
        from esrgan.serve.outputs import variant_tag

        name = Path(item.name)
        assert job.out_dir is not None
        tag = variant_tag(variant, self.catalog.tag)
        dst = job.out_dir / f"{item.output_stem}_{tag}_x{upscaler.scale}{name.suffix}"  # as `esrgan video` names
        if job.batch and dst.exists():  # the user's folder: never replace a file
            item.note = f"{dst.name} exists from before: left as it is"
            return
        dst.parent.mkdir(parents=True, exist_ok=True)
        start = time.time()
        stats = upscale_video(upscaler, item.input_path, dst, show_progress=False,
                              progress=lambda done, total: progress(done, max(total or 0, done)))
        item.outputs[variant.key] = Output(dst, (int(stats.size[0]), int(stats.size[1])),
                                           plan_text(upscaler, int(stats.size[1]) // upscaler.scale,
                                                     int(stats.size[0]) // upscaler.scale), time.time() - start,
                                           upscaler.color_fix)

    # -------------------------------------------------------------- requests

    def settings_from(self, form: dict[str, str]) -> Settings:
        model = self.catalog.resolve(form.get("model", ""))
        mode = form.get("mode") or ("blend" if form.get("model_b") else "single")
        if mode not in MODES:
            raise BadRequest(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        model_b, alpha = None, None
        if mode != "single":
            if not form.get("model_b"):
                raise BadRequest(f"{mode} needs a second model (model_b)")
            model_b = self.catalog.resolve(form["model_b"])
            if model_b == model:
                raise BadRequest("choose two different models (the second model is the first one)")
        if mode == "blend":
            try:
                alpha = float(form.get("alpha", ""))
            except ValueError:
                raise BadRequest(f"alpha must be a number in [0, 1], got {form.get('alpha')!r}") from None
            if not 0.0 <= alpha <= 1.0:
                raise BadRequest(f"alpha must be in [0, 1] (0 = first model, 1 = second), got {alpha:g}")
        outscale = None
        if form.get("outscale", "").strip():
            try:
                outscale = float(form["outscale"])
            except ValueError:
                raise BadRequest(f"outscale must be a number, got {form['outscale']!r}") from None
            if not 0 < outscale <= 16:
                raise BadRequest(f"outscale must be in (0, 16], got {outscale:g}")
        try:
            tile = int(form.get("tile", "") or self.config.tile)
        except ValueError:
            raise BadRequest(f"tile must be a whole number of pixels (0 = automatic), got {form.get('tile')!r}") \
                from None
        if tile < 0:
            raise BadRequest(f"tile must be >= 0, got {tile}")
        precision = form.get("precision") or "auto"
        if precision not in PRECISIONS:
            raise BadRequest(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        fmt = form.get("format") or "auto"
        if fmt not in FORMATS:
            raise BadRequest(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        try:
            quality = int(form.get("quality") or DEFAULT_QUALITY)
        except ValueError:
            raise BadRequest(f"quality must be a whole number in 1..100, got {form.get('quality')!r}") from None
        if not 1 <= quality <= 100:
            raise BadRequest(f"quality must be in 1..100, got {quality}")
        color_fix = form.get("color_fix") or DEFAULT_COLOR_FIX
        if color_fix not in COLOR_FIXES:
            raise BadRequest(f"color_fix must be one of {', '.join(COLOR_FIXES)} (the colour fix of esrgan upscale "
                             f"--color-fix), got {color_fix[:40]!r}")
        endpoints = form.get("endpoints", "") in ("1", "true", "on")
        return Settings(model, model_b, alpha, mode, endpoints, outscale, tile, precision, fmt, quality, color_fix)

    def check_upload(self, name: str, path: Path) -> str:
        """'image' or 'video' when the file is one that may run; BadRequest naming the file otherwise."""
        if path.stat().st_size == 0:
            raise BadRequest(f"{name}: empty file")
        if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
            self.check_video(name, path)
            return "video"
        self.check_image(name, path.read_bytes())
        return "image"

    def check_video(self, name: str, path: Path) -> None:
        try:
            import av
        except ImportError:
            raise BadRequest(f"{name}: videos need PyAV on the server: pip install 'esrgan[video]'") from None
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise BadRequest(f"{name}: no video stream")
                ctx = container.streams.video[0].codec_context
                w, h = ctx.width, ctx.height
        except BadRequest:
            raise
        except Exception as exc:  # PyAV raises many kinds for files that are not videos
            raise BadRequest(f"{name}: cannot open as a video ({exc})") from None
        if w * h > self.config.max_pixels:
            raise BadRequest(f"{name}: {w}x{h} frames are over the limit of {self.config.max_pixels / 1e6:.3g} MP "
                             "(esrgan serve --max-pixels)")

    def decode(self, data: bytes, name: str) -> Any:
        """``data`` decoded as a job does: ``esrgan.data.image.imdecode`` checks ``--max-pixels`` from the header
        (its one probe, for every format) before decoding, so a small file declaring a huge image is never
        decoded; its refusal is worded for this server."""
        try:
            img = imdecode(data, name, max_pixels=self.config.max_pixels)
        except ImageTooLargeError as exc:
            size = re.search(r"(\d+)x(\d+)", str(exc).removeprefix(name))
            w, h = (int(size.group(1)), int(size.group(2))) if size else (0, 0)
            raise BadRequest(self._pixels_message(name, w, h)) from None
        h, w = img.shape[:2]
        if h * w > self.config.max_pixels:  # a format the probe does not know: refused after decoding, at least
            raise BadRequest(self._pixels_message(name, w, h))
        return img

    def check_image(self, name: str, data: bytes) -> tuple[int, int]:
        try:
            img = self.decode(data, name)
        except (ValueError, OSError) as exc:
            msg = str(exc)
            raise BadRequest(msg if name in msg else f"{name}: {msg}") from None
        h, w = img.shape[:2]
        return w, h

    def _pixels_message(self, name: str, w: int, h: int) -> str:
        size = f"{w}x{h} = {h * w / 1e6:.3g} MP" if w and h else "the image"
        return (f"{name}: {size} is over the limit of {self.config.max_pixels / 1e6:.3g} MP per image "
                "(esrgan serve --max-pixels)")

    def new_job(self, job_id: str, folder: Path, settings: Settings, items: list[Item], **kw: Any) -> Job:
        variants = settings.variants(self.catalog.label)
        job = Job(job_id, folder, settings, items, variants=variants, **kw)
        from esrgan.serve.outputs import longest_suffix, output_stems

        scales = [settings.outscale] if settings.outscale else [16]  # room for '_x16'
        stems = output_stems([it.name for it in items], longest_suffix(variants, self.catalog.tag, scales))
        for it, stem in zip(items, stems):
            it.output_stem = stem
        return job

    def item_status(self, job: Job, i: int, it: Item) -> dict[str, Any]:
        base = f"/api/jobs/{job.id}/files/{i}"
        labels = {v.key: v.label for v in job.variants}
        return {
            "index": i,
            "name": it.name,
            "kind": it.kind,
            "state": it.state,
            "error": it.error,
            "detail": it.detail if it.detail and it.detail != it.error else None,
            "note": it.note,
            "input_size": it.input_size,
            "input": f"{base}/input" if it.kind == "image" and it.input_size else None,
            "bicubic": f"{base}/bicubic" if it.kind == "image" and it.outputs else None,
            "outputs": [
                {"key": k, "label": labels.get(k, k), "name": o.path.name, "url": f"{base}/{k}", "size": o.size,
                 "plan": o.plan, "seconds": round(o.seconds, 2), "color_fix": o.color_fix}
                for k, o in sorted(it.outputs.items(), key=lambda kv: list(labels).index(kv[0]))
            ],
        }

    def status(self, job: Job) -> dict[str, Any]:
        from esrgan.serve.outputs import zip_name

        running = job.current < len(job.items) and job.state == "running"
        kind = job.items[job.current].kind if running else "image"
        return {
            "id": job.id,
            "state": job.state,
            "cancelling": job.cancel_requested is not None and job.state == "running",
            # seconds from the click to the stop, for the page to say (and the tests to check)
            "cancelled_in": round(job.finished - job.cancel_requested, 3)
            if job.state == "cancelled" and job.cancel_requested and job.finished else None,
            "phase": job.phase,
            "message": job.message,
            "detail": job.detail if job.detail and job.detail != job.message else None,
            "settings": job.settings.describe(self.catalog.label),
            "request": asdict(job.settings),  # for a reloaded page to show the settings its job runs with
            "variants": [{"key": v.key, "label": v.label} for v in job.variants],
            "position": self.queue.position(job),
            "fraction": job.fraction(),
            "image": min(job.current + 1, len(job.items)),
            "images": len(job.items),
            "variant": job.current_variant + 1,
            "steps_done": job.steps_done,
            "steps_total": job.steps_total,
            "eta": job.eta(),
            "elapsed": (job.finished or time.time()) - job.started if job.started else 0.0,
            "unit": "frame" if kind == "video" else "tile",
            "counts": job.counts(),
            "batch": {"output": str(job.out_dir)} if job.batch else None,
            "results": [self.item_status(job, i, it) for i, it in enumerate(job.items)],
            "zip": f"/api/jobs/{job.id}/zip" if any(it.outputs for it in job.items) else None,
            "zip_name": zip_name([it.name for it in job.items]),
        }

    def summary(self, job: Job) -> dict[str, Any]:
        return {"id": job.id, "state": job.state, "created": job.created, "images": len(job.items),
                "names": [it.name for it in job.items[:3]], "settings": job.settings.describe(self.catalog.label),
                "position": self.queue.position(job), "fraction": job.fraction(), "batch": job.batch,
                "cancelling": job.cancel_requested is not None and job.state == "running"}

    def preview(self, job: Job, i: int, kind: str) -> Path | None:
        """The viewer's 'input' (the decoded input as PNG, drawn with square pixels) and 'bicubic' pictures,
        made when first asked for (a batch of hundreds makes none it does not show)."""
        item = job.items[i]
        first = next(iter(item.outputs.values()), None)
        if item.kind != "image" or (kind == "bicubic" and first is None):
            return None
        path = job.folder / "preview" / f"{i}_{kind}.png"
        if not path.is_file():
            img = self.decode(item.input_path.read_bytes(), item.name)
            imwrite(path, img if kind == "input" else bicubic_preview(img, *first.size))  # type: ignore[union-attr]
        return path


def request_problem(config: ServeConfig, headers: dict[str, str], method: str) -> str | None:
    """Why a request must be refused (see ``create_app``'s guard), or None."""
    from urllib.parse import urlsplit

    host = headers.get("host", "")
    name = urlsplit(f"//{host}").hostname or ""
    if not config.exposed and name not in ("localhost", "127.0.0.1", "::1"):
        return f"refused: Host {host!r} is not this machine (esrgan serve listens on {config.host} only)"
    origin = headers.get("origin")
    if method not in ("GET", "HEAD") and origin is not None and urlsplit(origin).netloc != host:
        return f"refused: a page of {origin} may not send requests to esrgan serve"
    return None


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def create_app(config: ServeConfig) -> Any:
    """The ASGI application (Starlette)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    state = ServeState(config)

    def error(message: str, status: int = 400, **extra: Any) -> JSONResponse:
        return JSONResponse({"error": message, **extra}, status_code=status)

    def get_job(request: Request) -> Job | None:
        return state.queue.jobs.get(request.path_params["job_id"])

    def no_job(request: Request) -> JSONResponse:
        job_id = request.path_params["job_id"][:40]
        return error(f"no job {job_id!r} on this server (finished jobs are kept for a while; the server may have "
                     "restarted): upload again", 404)

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(state.page, headers={"Cache-Control": "no-store"})

    async def info(request: Request) -> JSONResponse:
        import torch

        from esrgan.inference.upscaler import default_device
        from esrgan.utils.fetch import offline

        device = config.device or default_device()
        name = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else device
        return JSONResponse({
            "models": [c.to_dict() for c in state.catalog.choices()],
            "allowed_folders": [str(r) for r in state.catalog.roots],
            "defaults": {"tile": config.tile, "precision": "auto", "model": (state.catalog.preferred or [""])[0],
                         "format": "auto", "quality": DEFAULT_QUALITY, "color_fix": DEFAULT_COLOR_FIX},
            "limits": {"max_upload_mb": config.max_upload_mb, "max_pixels": config.max_pixels,
                       "max_files": config.max_files},
            "precisions": list(PRECISIONS),
            "color_fixes": list(COLOR_FIXES),
            "formats": list(FORMATS),
            "device": name,
            "exposed": config.exposed,
            "host": config.host,
            "offline": offline(),
            "batch": {"enabled": state.batch.why_not() is None, "why": state.batch.why_not(),
                      "folders": [str(r) for r in state.batch.roots]},
        })

    async def model_info(request: Request) -> JSONResponse:
        try:
            spec = state.catalog.resolve(request.query_params.get("id", ""))
        except ModelNotAllowed as exc:
            return error(str(exc), 403)
        choices = state.catalog.choices()
        network = await run_in_threadpool(state.catalog.network, spec)
        compatible = await run_in_threadpool(state.catalog.compatible, spec, choices)
        speed = state.catalog.speeds.get(spec)
        said = None
        if speed:
            said = f"about {speed:.0f} s" if speed >= 10 else f"about {speed:.2g} s"
            said += " per input megapixel here (last run)"
        return JSONResponse({"id": spec, "label": state.catalog.label(spec), "network": network.describe(),
                             "scale": network.scale or None, "loads": not network.error, "compatible": compatible,
                             "speed": said})

    async def jobs(request: Request) -> JSONResponse:
        listed = sorted(state.queue.jobs.values(), key=lambda j: j.created, reverse=True)
        return JSONResponse({"jobs": [state.summary(j) for j in listed]})

    async def submit(request: Request) -> JSONResponse:
        limit = config.upload_limit
        total_limit = limit * config.max_files + 2**20
        # A declared size is refused before the body is read; the body itself is counted as it arrives.
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > total_limit:
            return error(f"upload of {size_text(int(declared))} is over {config.max_files} files of "
                         f"{config.max_upload_mb:g} MB (esrgan serve --max-upload-mb, --max-files)", 413)
        job_id, folder = state.queue.new_folder()
        try:
            answer = await _submit(request, job_id, folder, limit, total_limit)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # the job's own folder, made above: no orphan stays
            raise
        if answer.status_code != 200:
            shutil.rmtree(folder, ignore_errors=True)
        return answer

    async def _submit(request: Request, job_id: str, folder: Path, limit: int, total_limit: int) -> JSONResponse:
        try:
            upload = await read_upload(request.headers.get("content-type", ""), request.stream(), folder / "in",
                                       file_limit=limit, max_files=config.max_files, total_limit=total_limit)
        except UploadError as exc:
            return error(str(exc), exc.status)
        try:
            settings = state.settings_from(upload.fields)
        except (ModelNotAllowed, BadRequest) as exc:
            return error(str(exc), 403 if isinstance(exc, ModelNotAllowed) else 400)

        from_job = upload.fields.get("from_job")
        source = state.queue.jobs.get(from_job or "") if from_job else None
        if from_job and source is None:
            return error(f"job {from_job[:40]!r} is gone (finished jobs are kept for a while); upload again", 404)
        if source is not None and source.batch:
            return error("a folder batch is rerun from its folder, not from the job", 400)
        rejected: list[dict[str, str]] = []
        items: list[Item] = []
        taken: set[str] = set()
        if source is not None:
            for it in source.items:
                if it.error is None and it.input_path.is_file():
                    path = folder / "in" / safe_name(it.name, taken)
                    _link_or_copy(it.input_path, path)
                    items.append(Item(path.name, path, kind=it.kind, input_size=it.input_size))
        else:
            for received in upload.files:
                try:
                    if received.over:
                        raise BadRequest(over_limit(received.name, received.size, limit))
                    kind = await run_in_threadpool(state.check_upload, received.name, received.path)
                except BadRequest as exc:
                    rejected.append({"name": received.name, "error": str(exc)})
                    received.path.unlink(missing_ok=True)
                    continue
                path = received.path.with_name(safe_name(received.name, taken))
                received.path.rename(path)
                items.append(Item(path.name, path, kind=kind))
        if not items:
            msg = "; ".join(r["error"] for r in rejected) or "no files uploaded: choose one or more images"
            return error(msg, 400, rejected=rejected)
        job = state.new_job(job_id, folder, settings, items)
        if source is not None:
            _reuse_end_points(source, job)
        state.queue.submit(job)
        logger.info("job %s: %d file(s), %s", job_id, len(items), job.settings.describe(state.catalog.label))
        return JSONResponse({"job": job_id, "rejected": rejected, "status": state.status(job)})

    def _reuse_end_points(source: Job, job: Job) -> None:
        """A blend rerun at another alpha: the end points (models alone) are the same pictures: linked, not rerun."""
        same = replace(source.settings, alpha=job.settings.alpha) == job.settings
        if not same:
            return
        assert job.out_dir is not None
        for old, new in zip(source.items, job.items):
            for key in ("a", "b"):
                out = old.outputs.get(key)
                if out is not None and out.path.is_file():
                    dst = job.out_dir / out.path.name
                    _link_or_copy(out.path, dst)
                    new.outputs[key] = Output(dst, out.size, out.plan, 0.0, out.color_fix)

    async def batch(request: Request) -> JSONResponse:
        why = state.batch.why_not()
        if why:
            return error(why, 403)
        job_id, folder = state.queue.new_folder()
        try:
            upload = await read_upload(request.headers.get("content-type", ""), request.stream(), folder,
                                       file_limit=0, max_files=0, total_limit=2**20)
            settings = state.settings_from(upload.fields)
            source, files = await run_in_threadpool(state.batch.input_files, upload.fields.get("input"))
            out_dir = await run_in_threadpool(state.batch.output_folder, upload.fields.get("output"))
        except (UploadError, BatchNotAllowed, ModelNotAllowed, BadRequest) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            status = getattr(exc, "status", 403 if isinstance(exc, BatchNotAllowed | ModelNotAllowed) else 400)
            return error(str(exc), status)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        from esrgan.serve.outputs import OutputGuard

        items = [Item(p.name, p, kind="video" if p.suffix.lower() in VIDEO_EXTENSIONS else "image") for p in files]
        job = state.new_job(job_id, folder, settings, items, out_dir=out_dir, batch=True,
                            guard=OutputGuard(files, overwrite=False))
        state.queue.submit(job)
        logger.info("job %s: folder %s (%d files) -> %s", job_id, source, len(items), out_dir)
        return JSONResponse({"job": job_id, "rejected": [], "status": state.status(job)})

    async def status(request: Request) -> JSONResponse:
        job = get_job(request)
        if job is None:
            return no_job(request)
        return JSONResponse(state.status(job))

    async def cancel(request: Request) -> JSONResponse:
        job = get_job(request)
        if job is None:
            return no_job(request)
        state.queue.cancel(job)
        return JSONResponse(state.status(job))

    async def file(request: Request) -> Response:
        job = get_job(request)
        if job is None:
            return no_job(request)
        index, kind = request.path_params["index"], request.path_params["kind"]
        if not 0 <= index < len(job.items):
            return error("no such file", 404)
        item = job.items[index]
        if kind in ("input", "bicubic"):
            try:
                path = await run_in_threadpool(state.preview, job, index, kind)
            except (ImageReadError, ValueError, OSError) as exc:
                return error(f"{item.name}: no {kind} picture ({exc})", 404)
        else:
            out = item.outputs.get(kind)
            path = out.path if out is not None else None
        if path is None or not path.is_file():
            return error(f"{item.name}: no {kind} picture yet", 404)
        download = request.query_params.get("download") == "1"
        return FileResponse(path, filename=path.name if download else None,
                            content_disposition_type="attachment" if download else "inline",
                            headers={"Cache-Control": "no-store"})

    async def zip_all(request: Request) -> Response:
        from esrgan.serve.outputs import zip_name
        from esrgan.utils.atomic import atomic_path

        job = get_job(request)
        if job is None:
            return no_job(request)
        outputs = [o.path for it in job.items for o in it.outputs.values() if o.path.is_file()]
        if not outputs:
            return error("no outputs to download yet", 404)
        name = zip_name([it.name for it in job.items])
        target = job.folder / "zip" / f"{len(outputs)}" / name  # one per number of outputs: a later one has more

        def build() -> None:
            if target.is_file():
                return
            with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
                seen: set[str] = set()
                for p in outputs:  # images are compressed already: stored
                    zf.write(p, safe_name(p.name, seen))

        await run_in_threadpool(build)
        return FileResponse(target, filename=name, media_type="application/zip")

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/model", model_info),
        Route("/api/jobs", jobs, methods=["GET"]),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/batch", batch, methods=["POST"]),
        Route("/api/jobs/{job_id}", status),
        Route("/api/jobs/{job_id}/cancel", cancel, methods=["POST"]),
        Route("/api/jobs/{job_id}/files/{index:int}/{kind}", file),
        Route("/api/jobs/{job_id}/zip", zip_all),
    ]

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return error(f"no such page or API call: {request.url.path[:80]!r}", getattr(exc, "status_code", 404))

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("request %s failed", request.url.path)
        line, detail = explain(exc)
        return error(f"server error: {line}", 500, detail=detail)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any):  # type: ignore[no-untyped-def]
        yield
        state.close()

    class Guard:
        """Refuses requests another web site makes through the user's browser: a Host that is not this
        machine while bound to localhost (DNS rebinding), and a POST from a page of another origin (a
        cross-site form can post to localhost without asking)."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                problem = request_problem(config, dict(Request(scope).headers), scope["method"])
                if problem:
                    await error(problem, 403)(scope, receive, send)
                    return
            await self.app(scope, receive, send)

    from starlette.middleware import Middleware

    app = Starlette(routes=routes, exception_handlers={Exception: on_error, 404: not_found, 405: not_found},
                    lifespan=lifespan,
                    middleware=[Middleware(Guard)])
    app.state.serve = state
    return app
