"""The layers of docs/architecture.md, enforced by import-linter (the contracts are in setup.cfg)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports() -> str | None:
    beside = Path(sys.executable).with_name("lint-imports")
    return str(beside) if beside.is_file() else shutil.which("lint-imports")


def test_import_contracts_are_kept() -> None:
    exe = _lint_imports()
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]' installs it)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([exe, "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    # Every contract ran and was kept (a contract that is misconfigured or skipped is not a pass).
    assert "Contracts: 3 kept, 0 broken." in report, report
