"""Train a model: ``python train.py -opt configs/rrdb_psnr_x4.yml`` (see ``esrgan train --help``)."""

from esrgan.cli import exit_with
from esrgan.commands.train import main

if __name__ == "__main__":
    exit_with(main())
