"""Training files and earlier runs for the hostile scenarios of option files and training."""

from __future__ import annotations

from pathlib import Path

import yaml
from harness import Arena
from tiny_training import make_tiny_data, tiny_options_dict


def train_file(arena: Arena, *sets: tuple[str, object], total_iter: int = 2, **kw: object) -> str:
    """A tiny training file (CPU, tiny nets, 8 training images) in the arena, with ``(dotted key, value)`` set."""
    data = make_tiny_data(arena.work / "data", n_train=8, n_val=1)
    opt = tiny_options_dict(data, arena.work / "experiments", total_iter=total_iter, **kw)
    for key, value in sets:
        *parents, last = key.split(".")
        node = opt
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    (arena.work / "train.yml").write_text(yaml.safe_dump(opt))
    arena.input("data")
    return "train.yml"


def earlier_run(arena: Arena, name: str = "tiny") -> Path:
    """A finished run of the same name: a refused start must neither archive nor touch it."""
    run = arena.work / "experiments" / name
    (run / "models").mkdir(parents=True)
    (run / "models" / "net_g_latest.pth").write_bytes(b"an earlier run's weights")
    arena.input(run)
    return run
