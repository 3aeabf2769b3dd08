"""Thin entry point: ``python test.py -opt configs/test_esrgan_x4.yml`` (same as ``esrgan test``)."""

from esrgan.cli import exit_with
from esrgan.commands.test import main

if __name__ == "__main__":
    exit_with(main())
