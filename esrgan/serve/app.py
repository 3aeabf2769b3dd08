"""The web app behind ``esrgan serve``: a Starlette (ASGI) application with one page and a small JSON API.

    GET  /                            the page (styles and scripts inline, no network needed)
    GET  /api/info                    models, defaults, limits, device
    POST /api/jobs                    multipart upload (files + settings) or ``from_job`` to rerun; -> job id
    GET  /api/jobs/{id}               state, queue position, progress, time left, results
    POST /api/jobs/{id}/cancel
    GET  /api/jobs/{id}/files/{i}/{output|bicubic}[?download=1]
    GET  /api/jobs/{id}/zip           every output in one zip

Uploads (images, or videos with PyAV) are decoded and checked (size, pixels) before a job is made; a
bad file is named in the answer and the other files still run. Errors come back as ``{"error": message}``
for the page to show.
"""

from __future__ import annotations

import io
import logging
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esrgan.data.image import imdecode, imwrite, probe_image
from esrgan.serve.catalog import ModelCatalog, ModelNotAllowed, UpscalerCache
from esrgan.serve.jobs import Item, Job, JobQueue, Settings, bicubic_preview

logger = logging.getLogger("esrgan.serve")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    models: list[str] = field(default_factory=list)  # --model: preselected and allowed
    model_dirs: list[str] = field(default_factory=list)
    experiments_root: str = "experiments"
    zoo_cache: str | None = None  # default: esrgan.zoo.cache_dir()
    device: str | None = None
    max_upload_mb: float = 50.0
    max_pixels: int = 4096 * 4096  # input pixels per image
    max_files: int = 64
    tile: int = 0  # automatic (whole image when it fits in memory), as `esrgan upscale`
    work_dir: str | None = None  # results; default a temporary folder removed at exit

    @property
    def exposed(self) -> bool:
        return self.host not in LOCAL_HOSTS


class BadRequest(ValueError):
    pass


def _safe_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._ -]+", "_", Path(name or "image").name).strip(" .") or "image"
    stem, suffix = Path(base).stem or "image", Path(base).suffix
    candidate, k = base, 2
    while candidate.lower() in taken:
        candidate, k = f"{stem}_{k}{suffix}", k + 1
    taken.add(candidate.lower())
    return candidate


def render_index(config: ServeConfig) -> str:
    """The page: the report's shared styles and comparison viewer, and the app's own, inlined."""
    from esrgan.report.pages import asset

    style = asset("common.css") + asset("app.css", "esrgan.serve")
    script = asset("compare.js") + "\n" + asset("app.js", "esrgan.serve")
    page = asset("index.html", "esrgan.serve")
    parts = {"STYLE": style, "SCRIPT": script}
    return re.sub(r"\{\{(STYLE|SCRIPT)\}\}", lambda m: parts[m.group(1)], page)


class ServeState:
    """Everything the routes share: configuration, model catalog and cache, the job queue."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.catalog = ModelCatalog(config.model_dirs, config.models, config.experiments_root, config.zoo_cache)
        self.cache = UpscalerCache(self.catalog, config.device)
        self._tmp = None
        if config.work_dir:
            work = Path(config.work_dir)
            work.mkdir(parents=True, exist_ok=True)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="esrgan-serve-")
            work = Path(self._tmp.name)
        self.queue = JobQueue(self.load, self.run_item, work)
        self.page = render_index(config)

    def close(self) -> None:
        self.queue.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    # -------------------------------------------------------------- work (on the queue's thread)

    def load(self, job: Job) -> Any:
        s = job.settings
        return self.cache.upscaler(s.model, tile=s.tile, precision=s.precision, model_b=s.model_b, alpha=s.alpha)

    def run_item(self, job: Job, item: Item, upscaler: Any, progress: Any) -> None:
        if item.kind == "video":
            self.run_video(job, item, upscaler, progress)
            return
        from esrgan.inference.files import output_file

        img = imdecode(item.input_path.read_bytes(), item.name)
        out = upscaler.upscale(img, job.settings.outscale, progress=progress)
        final_scale = job.settings.outscale if job.settings.outscale is not None else upscaler.scale
        # Named and encoded as `esrgan upscale` would: the same bytes for the same input and model.
        item.output_path, params = output_file(Path(item.name), job.folder / "out", out, final_scale)
        imwrite(item.output_path, out, params)
        item.bicubic_path = job.folder / "bicubic" / f"{Path(item.name).stem}.png"
        imwrite(item.bicubic_path, bicubic_preview(img, out.shape[1], out.shape[0]))
        item.size = (int(out.shape[1]), int(out.shape[0]))

    def run_video(self, job: Job, item: Item, upscaler: Any, progress: Any) -> None:
        """Through the video pipeline at `esrgan video`'s defaults (frames per pass from the device and free
        memory: one on a CPU); audio is copied."""
        from esrgan.inference.video import upscale_video

        name = Path(item.name)
        dst = job.folder / "out" / f"{name.stem}_x{upscaler.scale}{name.suffix}"  # as `esrgan video IN -o DIR`
        dst.parent.mkdir(parents=True, exist_ok=True)
        stats = upscale_video(upscaler, item.input_path, dst, show_progress=False,
                              progress=lambda done, total: progress(done, max(total or 0, done)))
        item.output_path, item.size = dst, (int(stats.size[0]), int(stats.size[1]))

    # -------------------------------------------------------------- requests

    def settings_from(self, form: dict[str, str]) -> Settings:
        model = self.catalog.resolve(form.get("model", ""))
        model_b = form.get("model_b") or None
        alpha = None
        if model_b is not None:
            model_b = self.catalog.resolve(model_b)
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
        return Settings(model, model_b, alpha, outscale, tile, precision)

    def check_upload(self, name: str, data: bytes) -> str:
        """'image' or 'video' when the file is one that may run; BadRequest naming the file otherwise."""
        limit = int(self.config.max_upload_mb * 1024 * 1024)
        if len(data) > limit:
            raise BadRequest(f"{name}: {len(data) / 2**20:.1f} MB is over the upload limit of "
                             f"{self.config.max_upload_mb:g} MB (esrgan serve --max-upload-mb)")
        if not data:
            raise BadRequest(f"{name}: empty file")
        if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
            self.check_video(name, data)
            return "video"
        self.check_image(name, data)
        return "image"

    def check_video(self, name: str, data: bytes) -> None:
        try:
            import av
        except ImportError:
            raise BadRequest(f"{name}: videos need PyAV on the server: pip install 'esrgan[video]'") from None
        try:
            with av.open(io.BytesIO(data)) as container:
                if not container.streams.video:
                    raise BadRequest(f"{name}: no video stream")
                ctx = container.streams.video[0].codec_context
                w, h = ctx.width, ctx.height
        except BadRequest:
            raise
        except Exception as exc:  # PyAV raises many kinds for files that are not videos
            raise BadRequest(f"{name}: cannot open as a video ({exc})") from None
        if w * h > self.config.max_pixels:
            raise BadRequest(f"{name}: {w}x{h} frames are over the limit of {self.config.max_pixels / 1e6:.1f} MP "
                             "(esrgan serve --max-pixels)")

    def check_image(self, name: str, data: bytes) -> tuple[int, int]:
        probe = probe_image(data)  # the header's size: a small file can declare a huge image
        if probe is not None:
            self._check_pixels(name, *probe[:2])
        try:
            img = imdecode(data, name)
        except (ValueError, OSError) as exc:
            msg = str(exc)
            raise BadRequest(msg if name in msg else f"{name}: {msg}") from None
        h, w = img.shape[:2]
        self._check_pixels(name, w, h)
        return w, h

    def _check_pixels(self, name: str, w: int, h: int) -> None:
        if h * w > self.config.max_pixels:
            raise BadRequest(f"{name}: {w}x{h} = {h * w / 1e6:.1f} MP is over the limit of "
                             f"{self.config.max_pixels / 1e6:.1f} MP per image (esrgan serve --max-pixels)")

    def status(self, job: Job) -> dict[str, Any]:
        base = f"/api/jobs/{job.id}"
        return {
            "id": job.id,
            "state": job.state,
            "message": job.message,
            "settings": job.settings.describe(),
            "position": self.queue.position(job),
            "fraction": job.fraction(),
            "image": min(job.current + 1, len(job.items)),
            "images": len(job.items),
            "steps_done": job.steps_done,
            "steps_total": job.steps_total,
            "eta": job.eta(),
            "elapsed": (job.finished or time.time()) - job.started if job.started else 0.0,
            "unit": "frame" if job.current < len(job.items) and job.items[job.current].kind == "video" else "tile",
            "results": [
                {
                    "index": i,
                    "name": it.name,
                    "kind": it.kind,
                    "error": it.error,
                    "output_name": it.output_path.name if it.output_path else None,
                    "output": f"{base}/files/{i}/output" if it.output_path else None,
                    "bicubic": f"{base}/files/{i}/bicubic" if it.bicubic_path else None,
                    "size": it.size,
                }
                for i, it in enumerate(job.items)
            ],
            "zip": f"{base}/zip" if any(it.output_path for it in job.items) else None,
        }


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

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(state.page, headers={"Cache-Control": "no-store"})

    async def info(request: Request) -> JSONResponse:
        import torch

        from esrgan.inference.upscaler import default_device

        device = config.device or default_device()
        name = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else device
        return JSONResponse({
            "models": [c.to_dict() for c in state.catalog.choices()],
            "allowed_folders": [str(r) for r in state.catalog.roots],
            "defaults": {"tile": config.tile, "precision": "auto", "model": (state.catalog.preferred or [""])[0]},
            "limits": {"max_upload_mb": config.max_upload_mb, "max_pixels": config.max_pixels,
                       "max_files": config.max_files},
            "precisions": list(PRECISIONS),
            "device": name,
            "exposed": config.exposed,
            "host": config.host,
        })

    async def submit(request: Request) -> JSONResponse:
        limit = int(config.max_upload_mb * 1024 * 1024)
        # Refuse an oversized request before its body is read (and spooled to disk) at all.
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit * config.max_files + 2**20:
            return error(f"upload of {int(declared) / 2**20:.0f} MB is over {config.max_files} files of "
                         f"{config.max_upload_mb:g} MB (esrgan serve --max-upload-mb, --max-files)", 413)
        try:
            async with request.form(max_files=config.max_files, max_fields=50) as form:
                fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
                uploads = [v for k, v in form.multi_items() if k == "files" and not isinstance(v, str)]
                blobs = []
                for up in uploads:
                    data = await up.read(limit + 1)
                    blobs.append((up.filename or "image", data))
        except Exception as exc:  # malformed multipart, too many files
            return error(f"could not read the upload: {exc}")
        try:
            settings = state.settings_from(fields)
        except (ModelNotAllowed, BadRequest) as exc:
            return error(str(exc), 403 if isinstance(exc, ModelNotAllowed) else 400)

        source = state.queue.jobs.get(fields.get("from_job", "")) if fields.get("from_job") else None
        if fields.get("from_job") and source is None:
            return error(f"job {fields['from_job']} is gone (finished jobs are kept for a while); upload again", 404)
        rejected: list[dict[str, str]] = []
        accepted: list[tuple[str, bytes, str]] = []
        if source is not None:
            accepted = [(it.name, it.input_path.read_bytes(), it.kind) for it in source.items if it.error is None]
        else:
            for name, data in blobs:
                try:
                    kind = await run_in_threadpool(state.check_upload, name, data)
                    accepted.append((name, data, kind))
                except BadRequest as exc:
                    rejected.append({"name": name, "error": str(exc)})
        if not accepted:
            msg = "; ".join(r["error"] for r in rejected) or "no files uploaded: choose one or more images"
            return error(msg, 400, rejected=rejected)
        job_id, folder = state.queue.new_folder()
        taken: set[str] = set()
        items = []
        for name, data, kind in accepted:
            safe = _safe_name(name, taken)
            path = folder / "in" / safe
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            items.append(Item(safe, path, kind=kind))
        job = Job(job_id, folder, settings, items)
        state.queue.submit(job)
        logger.info("job %s: %d image(s), %s", job_id, len(items), settings.describe())
        return JSONResponse({"job": job_id, "rejected": rejected, "status": state.status(job)})

    async def status(request: Request) -> JSONResponse:
        job = get_job(request)
        if job is None:
            return error(f"no job {request.path_params['job_id']}", 404)
        return JSONResponse(state.status(job))

    async def cancel(request: Request) -> JSONResponse:
        job = get_job(request)
        if job is None:
            return error(f"no job {request.path_params['job_id']}", 404)
        state.queue.cancel(job)
        return JSONResponse(state.status(job))

    async def file(request: Request) -> Response:
        job = get_job(request)
        if job is None:
            return error(f"no job {request.path_params['job_id']}", 404)
        index, kind = request.path_params["index"], request.path_params["kind"]
        if not 0 <= index < len(job.items) or kind not in ("output", "bicubic"):
            return error("no such file", 404)
        item = job.items[index]
        path = item.output_path if kind == "output" else item.bicubic_path
        if path is None or not path.is_file():
            return error(f"{item.name}: no {kind} yet", 404)
        download = request.query_params.get("download") == "1"
        return FileResponse(path, filename=path.name if download else None,
                            content_disposition_type="attachment" if download else "inline")

    async def zip_all(request: Request) -> Response:
        job = get_job(request)
        if job is None:
            return error(f"no job {request.path_params['job_id']}", 404)
        outputs = [it.output_path for it in job.items if it.output_path is not None and it.output_path.is_file()]
        if not outputs:
            return error("no outputs to download yet", 404)

        def build() -> bytes:
            buf = io.BytesIO()
            # Images are already compressed: store them.
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
                for p in outputs:
                    zf.write(p, p.name)
            return buf.getvalue()

        data = await run_in_threadpool(build)
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="esrgan_{job.id}.zip"'})

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs/{job_id}", status),
        Route("/api/jobs/{job_id}/cancel", cancel, methods=["POST"]),
        Route("/api/jobs/{job_id}/files/{index:int}/{kind}", file),
        Route("/api/jobs/{job_id}/zip", zip_all),
    ]

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("request %s failed", request.url.path)
        return error(f"server error: {exc}", 500)

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

    app = Starlette(routes=routes, exception_handlers={Exception: on_error}, lifespan=lifespan,
                    middleware=[Middleware(Guard)])
    app.state.serve = state
    return app


