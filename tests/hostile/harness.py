"""The hostile suite's harness: an arena per scenario, commands run as real processes under limits, and the
checks every scenario shares.

A scenario is a test marked ``@pytest.mark.hostile("<verdict>")`` that states what must happen:

- ``correct``: the command does the right thing, and the scenario checks the result;
- ``refused``: one clear line naming the file, key or value and what was expected, a non-zero exit, no
  traceback (:meth:`Result.assert_refused`).

Whatever the verdict, the arena checks at the end that nothing was written outside its work folder, that no
registered input changed, and the run was bounded in memory (``RLIMIT_AS``) and time (a timeout). The counts
per verdict are printed at the end of ``make test`` (``tests/conftest.py``).
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERDICTS = ("correct", "refused")
# Enough for torch's import (about 3.3 GB of address space) and a small job; a run that decodes a bomb or
# allocates without bound hits it and fails instead of taking the machine.
DEFAULT_MEMORY_GB = 8.0


def _tree_digest(root: Path) -> dict[str, str]:
    """Path (relative) -> SHA-256 of every file under ``root`` ('<dir>' for folders)."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "<link>" + os.readlink(path)
        elif path.is_dir():
            out[rel] = "<dir>"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass
class Result:
    """What a command did: exit code, standard output and error, and the command line (for messages)."""

    args: list[str]
    code: int
    out: str
    err: str

    def _show(self) -> str:
        return (f"$ esrgan {' '.join(self.args)}\nexit {self.code}\n"
                f"--- stdout\n{self.out[-3000:]}\n--- stderr\n{self.err[-3000:]}")

    @property
    def last_line(self) -> str:
        lines = [line for line in self.err.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def assert_refused(self, *mentions: str, code: int | None = None) -> None:
        """Non-zero exit, no traceback, and the last line of stderr names each of ``mentions`` (case-insensitive)."""
        assert self.code != 0, f"expected a refusal (non-zero exit)\n{self._show()}"
        if code is not None:
            assert self.code == code, f"expected exit {code}\n{self._show()}"
        assert "Traceback" not in self.err + self.out, f"traceback instead of one line\n{self._show()}"
        assert self.code not in (-9, -11, 137, 139), f"killed (memory or crash)\n{self._show()}"
        line = self.last_line.lower()
        for m in mentions:
            assert m.lower() in line, f"the last line should name {m!r}\n{self._show()}"

    def assert_ok(self) -> None:
        assert self.code == 0, f"expected success\n{self._show()}"
        assert "Traceback" not in self.err + self.out, self._show()


@dataclass
class Arena:
    """A scenario's playground under ``tmp_path``.

    ``work``: the command's working directory (everything it may write goes under it, unless a scenario
    names another allowed folder with :meth:`allow`); ``outside``: a victim tree that traversal names point
    at, which must stay byte-identical; ``home``: HOME and the caches of the process (so a scenario never
    touches the user's real cache).
    """

    root: Path
    work: Path = field(init=False)
    outside: Path = field(init=False)
    home: Path = field(init=False)
    _inputs: dict[Path, str] = field(default_factory=dict)
    _allowed: list[Path] = field(default_factory=list)
    _outside_before: dict[str, str] = field(default_factory=dict)
    _root_before: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.work = self.root / "work"
        self.outside = self.root / "outside"
        self.home = self.root / "home"
        for d in (self.work, self.outside, self.home):
            d.mkdir(parents=True, exist_ok=True)
        (self.outside / "victim.txt").write_text("a file nobody may touch\n")
        (self.outside / "victim.png").write_bytes(b"not really a png, and it must stay this way\n")
        self._outside_before = _tree_digest(self.outside)
        self._root_before = {p.name for p in self.root.iterdir()}

    def input(self, path: str | Path) -> Path:
        """Register ``path`` (relative to ``work`` or absolute) as an input that must not change."""
        p = Path(path) if Path(path).is_absolute() else self.work / path
        self._inputs[p] = _tree_digest(p) if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        return p

    def allow(self, path: Path) -> Path:
        """A folder outside ``work`` the scenario lets the command write to (e.g. a zoo cache under home)."""
        self._allowed.append(path)
        return path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "1",
            "HOME": str(self.home),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "TORCH_HOME": str(self.home / ".cache" / "torch"),
            "WANDB_MODE": "disabled",
            "NO_COLOR": "1",
        }
        env.pop("PYTEST_XDIST_WORKER", None)
        env.update(extra or {})
        return env

    def run(
        self,
        *args: str,
        timeout: float = 180,
        memory_gb: float = DEFAULT_MEMORY_GB,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        module: Sequence[str] = ("-m", "esrgan"),
        preexec: Callable[[], None] | None = None,
    ) -> Result:
        """``python -m esrgan *args`` in ``work`` under an address-space limit and a timeout."""
        limit = int(memory_gb * 2**30)

        def limits() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if preexec is not None:
                preexec()

        try:
            proc = subprocess.run(
                [sys.executable, *module, *args], cwd=self.work, env=self.env(env), input=stdin,
                capture_output=True, text=True, timeout=timeout, preexec_fn=limits,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"esrgan {' '.join(args)}: still running after {timeout} s (unbounded time)") from exc
        return Result(list(args), proc.returncode, proc.stdout, proc.stderr)

    def check(self) -> None:
        """Nothing outside ``work`` (and the allowed folders) was written; no input changed."""
        after = _tree_digest(self.outside)
        changed = sorted(set(after.items()) ^ set(self._outside_before.items()))
        assert not changed, f"the victim folder changed: {changed}"
        new = {p.name for p in self.root.iterdir()} - self._root_before
        assert not new, f"written beside the work folder: {sorted(new)}"
        allowed = [self.home / ".cache", *self._allowed]
        for path in self.home.rglob("*"):
            if path.is_file() and not any(path.is_relative_to(a) for a in allowed):
                raise AssertionError(f"written outside the run's folders: {path}")
        for path, digest in self._inputs.items():
            now = _tree_digest(path) if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            assert now == digest, f"an input changed: {path}"
