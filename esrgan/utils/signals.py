"""SIGTERM as Ctrl-C: a ``kill``, a scheduler's time limit or ``docker stop`` runs the same clean-ups."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's time limit, ``docker stop``), raised where the program is, as Ctrl-C is: every
    ``except KeyboardInterrupt`` clean-up runs (atomic writes drop their temporaries, video keeps its finished parts)
    instead of the process vanishing mid-write. The trainer installs its own handler while it trains."""

    exit_code = 128 + signal.SIGTERM


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` (main thread only: elsewhere signals are left to the
    embedding application); the previous handler comes back on the way out."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
