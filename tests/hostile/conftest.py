"""Fixtures of the hostile suite (see harness.py for what a scenario states and what is checked)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Arena


@pytest.fixture
def arena(tmp_path: Path) -> Iterator[Arena]:
    """A fresh arena; its checks (nothing written outside, no input changed) run after the scenario."""
    a = Arena(tmp_path / "arena")
    yield a
    a.check()
