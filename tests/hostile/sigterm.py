"""A command stopped by SIGTERM at a chosen point: the scenarios of `upscale` and `video` share it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

from harness import Arena


def sigterm_when(arena: Arena, args: list[str], patch: str, ready: Callable[[], bool]) -> str:
    """Run ``esrgan ARGS`` after the Python lines ``patch`` (e.g. a slowed-down step, so the signal lands
    mid-job); send SIGTERM once ``ready()``; return stderr. The command must stop with 143, one line, no
    traceback."""
    code = (f"import runpy, sys, time\n{patch}\n"
            f"sys.argv = ['esrgan', *{args!r}]\nrunpy.run_module('esrgan', run_name='__main__')\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=arena.work, env=arena.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, "the command ended before the signal"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated (SIGTERM)" in err.strip().splitlines()[-1], err
    return err
