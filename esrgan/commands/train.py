"""``esrgan train`` / ``python train.py``: train a model from a YAML option file.

    python train.py -opt configs/rrdb_psnr_x4.yml [--set train.optim_g.lr=1e-4 ...] [--auto-resume] [--debug]
    torchrun --nproc_per_node 4 train.py -opt ... --launcher pytorch
    srun python train.py -opt ... --launcher slurm
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys

from torch.distributed.elastic.multiprocessing.errors import record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="esrgan train", description="Train an ESRGAN-family model from a YAML option file."
    )
    parser.add_argument("-opt", "--opt", dest="opt", required=True, metavar="FILE", help="YAML option file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an option, dotted path, value parsed as YAML (repeatable): --set train.optim_g.lr=1e-4",
    )
    parser.add_argument(
        "--auto-resume", action="store_true", help="resume from the latest training state of this experiment"
    )
    parser.add_argument(
        "--debug", action="store_true", help="name debug_<name>; log every iteration, validate/save every 8"
    )
    parser.add_argument(
        "--launcher",
        choices=("none", "pytorch", "slurm"),
        default="none",
        help="none: one process; pytorch: started by torchrun; slurm: started by srun",
    )
    return parser


@record  # under torchrun, a failing rank's traceback lands in the job's error summary
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from esrgan.options import OptionsError, load_options
    from esrgan.training import dist as dist_utils
    from esrgan.training.trainer import train

    log = logging.getLogger("esrgan.training")
    try:
        opt = load_options(args.opt, args.overrides, debug=args.debug)
    except OptionsError as exc:
        print(f"esrgan train: {exc}", file=sys.stderr)
        return 2

    if args.launcher == "slurm":
        os.environ.setdefault("MASTER_PORT", str(opt.dist_params.port))
    import torch

    use_gpu = torch.cuda.is_available() and opt.num_gpu != 0
    backend = opt.dist_params.backend if use_gpu else "gloo"
    try:
        info = dist_utils.init_dist(args.launcher, backend=backend, use_gpu=use_gpu)
    except (RuntimeError, ValueError) as exc:  # e.g. --launcher pytorch outside torchrun: say so, no traceback
        print(f"esrgan train: {exc}", file=sys.stderr)
        return 2
    if opt.num_gpu > 1 and not info.distributed:
        # BasicSR trains such a file on one device at a fraction of its batch; start one process per GPU.
        print(
            f"esrgan train: num_gpu: {opt.num_gpu} asks for {opt.num_gpu} GPUs, but this is a single process; run "
            f"'torchrun --standalone --nproc_per_node {opt.num_gpu} train.py -opt {args.opt} --launcher pytorch' "
            "(or set num_gpu: 1 to train on one device)",
            file=sys.stderr,
        )
        return 2
    from esrgan.training.trainer import EXIT_NO_SPACE
    from esrgan.utils.atomic import DiskFullError

    try:
        return train(opt, auto_resume=args.auto_resume, dist_info=info)
    except KeyboardInterrupt:
        # A second Ctrl-C (the first one asks for a clean stop): stop at once, one line, no traceback.
        print("esrgan train: interrupted; the last saved training state is kept (resume with --auto-resume)",
              file=sys.stderr)
        return 130
    except DiskFullError as exc:
        print(f"esrgan train: {exc}; earlier checkpoints are intact", file=sys.stderr)
        return EXIT_NO_SPACE
    except (ValueError, FileNotFoundError) as exc:
        # Configuration and data problems: one clear line, no traceback.
        msg = _one_line(exc)
        if not logging.getLogger("esrgan").handlers:
            print(f"esrgan train: {msg}", file=sys.stderr)
        else:
            log.error("%s", msg)
        if info.distributed:
            raise  # let torchrun tear the job down and show the error
        return 2
    finally:
        from esrgan.utils.logger import close_logger

        close_logger("esrgan")
        dist_utils.destroy()


def _one_line(exc: BaseException) -> str:
    """The error's message; for one re-raised from a DataLoader worker (whose message carries the worker's
    whole traceback), its last line without the exception's class name."""
    msg = str(exc)
    if "Original Traceback" in msg:
        last = msg.strip().splitlines()[-1]
        msg = re.sub(r"^[\w.]+: ", "", last)
    return msg


if __name__ == "__main__":
    sys.exit(main())
