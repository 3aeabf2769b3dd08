from esrgan.cli import run

run()
