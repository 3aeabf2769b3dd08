"""Package metadata: the supported torch range starts at the version the test suite runs on."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = [ln.strip() for ln in cfg["options"]["install_requires"].splitlines()]
    reqs = {}
    for line in lines:
        if line and not line.startswith("#"):
            name = re.match(r"[A-Za-z0-9_.-]+", line).group(0)
            reqs[name] = line[len(name):]
    return reqs


def test_torch_is_a_range_whose_lower_bound_is_what_make_installs_and_the_readme_states() -> None:
    reqs = _requirements()
    makefile = (REPO / "Makefile").read_text()
    readme = (REPO / "README.md").read_text()
    for name in ("torch", "torchvision"):
        spec = reqs[name]
        assert "==" not in spec, f"{name} is pinned in install_requires: users get one build only"
        lower = re.search(r">=\s*([\d.]+)", spec).group(1)
        assert "<" in spec  # a declared range, not an open end
        # `make setup` (what CI runs) installs exactly the lower bound: the oldest version is the tested one
        assert f"{name}=={lower}" in makefile
        assert f"{'PyTorch' if name == 'torch' else 'torchvision'} {lower}" in readme
