"""The ``esrgan`` sub-commands: ``esrgan.commands.<name>.main(argv) -> int`` for ``esrgan <name>``.

A command module parses arguments, calls the library and turns errors into messages and exit
codes; the work itself lives in ``training/``, ``evaluation/``, ``inference/`` and ``data/``.
The list of commands and their one-line help is ``esrgan.cli.COMMANDS``.
"""
