"""In-process runs of ``esrgan`` for scenarios where a fresh process is not the point.

A subprocess costs about 3 s of CPU (Python and torch start-up); most scenarios only check what a command says
and writes, which the same ``esrgan.cli.main`` does in the test's own process in milliseconds. Use
:meth:`harness.Arena.run` when the scenario needs what only a process gives: a memory or file-size limit, a
signal, a timeout, a concurrent run, or an exit status set by the interpreter.
"""

from __future__ import annotations

import contextlib
import io
import os
import traceback

from harness import Arena, Result

from esrgan.utils.logger import close_logger


def call(arena: Arena, *args: str, env: dict[str, str] | None = None) -> Result:
    """``esrgan *args`` through ``esrgan.cli.main`` in ``arena.work`` with the arena's environment.

    An exception escaping the command is a traceback in ``err`` (and exit 1), as the console would show it, so
    :meth:`Result.assert_refused` catches it.
    """
    from esrgan.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update({k: v for k, v in arena.env(env).items() if k != "PYTHONPATH"})
    os.chdir(arena.work)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = int(main(list(args)) or 0)
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if not isinstance(exc.code, int | None):
                    print(exc.code, file=err)
            except BaseException:
                err.write(traceback.format_exc())
                code = 1
    finally:
        # a command that stops early can leave the 'esrgan' logger set up (its handlers, no propagation); the
        # next test in this process must find logging as it was
        close_logger("esrgan")
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(list(args), code, out.getvalue(), err.getvalue())


def assert_names(result: Result, *mentions: str) -> None:
    """One line of stderr names all of ``mentions`` (commands that go on after a bad input, as ``upscale`` does
    over a folder, give one line per bad file and a summary as their last line)."""
    lines = [ln for ln in result.err.splitlines() if all(m.lower() in ln.lower() for m in mentions)]
    assert lines, f"no line names all of {mentions}\n{result._show()}"
