"""The ``esrgan`` console command: one sub-command per tool.

Each sub-command ``NAME`` is the module ``esrgan.commands.NAME`` exposing
``main(argv: list[str] | None) -> int``; this file only dispatches, so
``esrgan upscale`` never imports the trainer.
"""

from __future__ import annotations

import importlib
import sys

# sub-command -> one-line help. Each command is the module ``esrgan.commands.<name>`` with
# ``main(argv) -> int`` (argument parsing and exit codes only; the work is in the library modules).
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
    # OMP_WAIT_POLICY is left to the user and the OpenMP runtime (libgomp spins briefly, then sleeps, and
    # spins less when threads outnumber cores): forcing PASSIVE cost 17% per GAN iteration on an idle
    # machine (benchmarks/bench_omp.py). On a machine shared with other jobs, OMP_WAIT_POLICY=PASSIVE helps.
    if name not in COMMANDS:
        print(f"esrgan: unknown command {name!r}; known commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"esrgan.commands.{name}")
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:
        # Ctrl-C: outputs are written atomically, so nothing half-written is left; one line, no traceback.
        print(f"esrgan {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
