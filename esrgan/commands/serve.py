"""``esrgan serve``: run the web app (uvicorn) on localhost; say loudly when it is reachable from elsewhere."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from esrgan.utils.folders import EXPERIMENTS_ROOT

logger = logging.getLogger("esrgan.serve")

INSTALL_HINT = "esrgan serve needs the web extra: pip install 'esrgan[serve]' (starlette, uvicorn, python-multipart)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="esrgan serve",
        description="A local web app: upload images, pick a model (or two and an alpha to interpolate them), "
        "watch the progress, compare with bicubic and download the results. Works offline.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes the app "
                   "to the network, with no login)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--model", "-m", action="append", default=[], metavar="M",
                   help="zoo name or checkpoint file to offer first (allowed wherever it is); repeatable")
    p.add_argument("--model-dir", action="append", default=[], metavar="DIR",
                   help="folder whose checkpoints may be loaded (besides the zoo cache and experiments/); repeatable")
    p.add_argument("--experiments-root", default=EXPERIMENTS_ROOT, metavar="DIR",
                   help="experiments folder whose checkpoints are offered (default: experiments)")
    p.add_argument("--device", choices=("cpu", "cuda", "mps"), help="default: cuda, else mps, else cpu")
    p.add_argument("--tile", type=int, default=0, help="default tile size in input pixels, 0 = automatic "
                   "(whole image when it fits in half the free memory, else the largest tiles that do) (default: 0)")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest file accepted, MB (default: 50)")
    p.add_argument("--max-pixels", type=int, default=4096 * 4096,
                   help="largest input image, in pixels (default: 16777216 = 4096 x 4096)")
    p.add_argument("--max-files", type=int, default=64, help="most files in one upload (default: 64)")
    p.add_argument("--work-dir", metavar="DIR", help="where results are kept (default: a temporary folder, "
                   "removed when the server stops)")
    p.add_argument("--batch-dir", action="append", default=[], metavar="DIR",
                   help="folder whose subfolders the page may upscale in place of uploads (folder in, folder out; "
                   "outputs never replace a file); repeatable; only with a server on this machine (--host 127.0.0.1)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def exposure_warning(host: str, port: int) -> str:
    line = "!" * 78
    return (f"{line}\n! WARNING: esrgan serve is listening on {host}:{port}, not on localhost.\n"
            "! Anyone who can reach this address can upload images and run models on this machine;\n"
            "! there is no login. Use --host 127.0.0.1 (the default) unless that is what you want.\n"
            f"{line}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        print(f"esrgan serve: {INSTALL_HINT}", file=sys.stderr)
        return 2
    try:
        import multipart  # noqa: F401  (python-multipart: Starlette's form parser)
    except ImportError:
        print(f"esrgan serve: {INSTALL_HINT}", file=sys.stderr)
        return 2
    for flag, value in (("--max-upload-mb", args.max_upload_mb), ("--max-pixels", args.max_pixels),
                        ("--max-files", args.max_files)):
        if value <= 0:
            parser.error(f"{flag} must be > 0, got {value}")
    if args.tile < 0:
        parser.error(f"--tile must be >= 0, got {args.tile}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {args.port}")
    try:
        socket.getaddrinfo(args.host, args.port)
    except (socket.gaierror, UnicodeError) as exc:
        parser.error(f"--host {args.host}: not an address of this machine or a name that resolves ({exc})")
    if args.work_dir is not None and Path(args.work_dir).exists() and not Path(args.work_dir).is_dir():
        parser.error(f"--work-dir {args.work_dir}: is a file, expected a folder")
    for flag, folders in (("--model-dir", args.model_dir), ("--batch-dir", args.batch_dir)):
        for folder in folders:
            if not Path(folder).expanduser().is_dir():
                parser.error(f"{flag} {folder}: no such folder")

    from esrgan.commands.common import check_device, setup_cli_logging
    from esrgan.serve.app import ServeConfig, create_app

    check_device(parser, args.device)
    setup_cli_logging()
    config = ServeConfig(host=args.host, port=args.port, models=args.model, model_dirs=args.model_dir,
                         experiments_root=args.experiments_root, device=args.device, tile=args.tile,
                         max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels, max_files=args.max_files,
                         work_dir=args.work_dir, batch_dirs=args.batch_dir)
    if config.exposed and config.batch_dirs:
        parser.error(f"--batch-dir lets the page read and write folders of this machine: only with a server bound "
                     f"to this machine (--host 127.0.0.1), not --host {args.host}")
    try:
        app = create_app(config)
    except (FileNotFoundError, ValueError) as exc:
        print(f"esrgan serve: error: {exc}", file=sys.stderr)
        return 2
    if config.exposed:
        print(exposure_warning(args.host, args.port), file=sys.stderr)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"esrgan serve: open http://{shown}:{args.port}/ (Ctrl-C to stop)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
