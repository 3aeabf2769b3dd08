"""The ``esrgan`` console command: one sub-command per tool.

Each sub-command ``NAME`` is the module ``esrgan.commands.NAME`` exposing
``main(argv: list[str] | None) -> int``; this file only dispatches, so
``esrgan upscale`` never imports the trainer.
"""

from __future__ import annotations

import importlib
import signal
import sys
from typing import NoReturn

from esrgan.utils.signals import Terminated, sigterm_as_interrupt

# sub-command -> one-line help. Each command is the module ``esrgan.commands.<name>`` with ``main(argv) -> int``:
# it reads its flags (as overrides of the typed options where the command takes an option file), calls the
# library and turns the library's errors into one line and an exit code.
COMMANDS: dict[str, str] = {
    "train": "train a model from a YAML option file",
    "test": "PSNR/SSIM of models on test sets, with tables and pictures",
    "interp": "network interpolation between a PSNR and a GAN model",
    "upscale": "upscale images (files, folders, globs)",
    "video": "upscale a video, keeping fps, timestamps and audio",
    "export": "export a generator to ONNX or TorchScript",
    "zoo": "list or download pretrained models",
    "prepare": "prepare datasets: sub-images, LR images, LMDB, demo data",
    "demo": "the whole recipe on built-in demo data: both stages, test, sweep (what `make demo` runs)",
    "serve": "local web app: upload, upscale, interpolate, compare, download (pip install 'esrgan[serve]')",
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: esrgan <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, help_ in COMMANDS.items()]
    lines += ["", "Run 'esrgan <command> --help' for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from esrgan import __version__

        print(f"esrgan {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"esrgan: unknown command {name!r}; known commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        with sigterm_as_interrupt():
            module = importlib.import_module(f"esrgan.commands.{name}")
            return int(module.main(rest) or 0)
    except KeyboardInterrupt as exc:
        # Ctrl-C or SIGTERM: outputs are written atomically (a temporary is removed as the exception passes), so
        # nothing half-written is left; one line, no traceback.
        if isinstance(exc, Terminated):
            print(f"esrgan {name}: terminated (SIGTERM); nothing half-written was left", file=sys.stderr)
            return exc.exit_code
        print(f"esrgan {name}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # The file system said no (a file where a folder must go, permissions, a full disk, ...): whichever command
        # met it, the user needs the path and the reason, not a traceback.
        from esrgan.utils.oserror import os_error_line

        print(f"esrgan {name}: error: {os_error_line(exc)}", file=sys.stderr)
        return 1


def exit_with(code: int) -> NoReturn:
    """Leave the program with ``code``. The command's outputs are written by now: a Ctrl-C landing while the
    interpreter shuts down (the second of two, after a training saved its state) would only print a traceback
    and turn the exit status into 1, so from here on it is ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def run() -> NoReturn:
    """The ``esrgan`` program (console script and ``python -m esrgan``)."""
    exit_with(main())


if __name__ == "__main__":
    run()
