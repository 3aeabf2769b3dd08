"""The degradation's own random generators, whose state is saved with the training state.

Real-ESRGAN draws from three kinds of generator (Python ``random`` for choices, NumPy for
uniforms, torch for per-image values and noise); BasicSR uses the global ones. Here they are
private instances, so the degradation's stream does not depend on anything else drawing
random numbers, and ``state_dict()`` holds only tensors, ints and lists
(``torch.load(weights_only=True)`` reads it).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch

logger = logging.getLogger("esrgan.data.degradations")


def python_state(rng: random.Random) -> dict[str, Any]:
    version, internal, gauss = rng.getstate()
    return {"version": int(version), "internal": [int(v) for v in internal], "gauss": gauss}


def set_python_state(rng: random.Random, state: dict[str, Any]) -> None:
    rng.setstate((state["version"], tuple(state["internal"]), state["gauss"]))


def numpy_state(rng: np.random.RandomState) -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = rng.get_state()
    return {
        "kind": str(kind),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def set_numpy_state(rng: np.random.RandomState, state: dict[str, Any]) -> None:
    rng.set_state(
        (state["kind"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
         state["cached_gaussian"])
    )


class DegradationRNG:
    """``py`` (random.Random), ``np`` (RandomState) and ``torch`` (a generator on ``device``), seeded together.

    With ``seed`` s they draw what ``random.seed(s); np.random.seed(s); torch.manual_seed(s)``
    makes the global generators draw (on the CPU), which is how the tests compare with BasicSR.
    """

    def __init__(self, seed: int, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.py = random.Random(seed)
        self.np = np.random.RandomState(seed % 2**32)
        self.torch = torch.Generator(device=self.device)
        self.torch.manual_seed(seed)

    def state_dict(self) -> dict[str, Any]:
        return {"python": python_state(self.py), "numpy": numpy_state(self.np),
                "torch": self.torch.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the three generators. A torch state saved on another device type (a CPU generator's state
        is 5,056 bytes, a CUDA one's 16) cannot be put into this one: that generator is reseeded from the
        restored Python state instead, with a warning (the run continues, but not bit-exactly)."""
        set_python_state(self.py, state["python"])
        set_numpy_state(self.np, state["numpy"])
        saved = state["torch"].cpu()
        if saved.numel() == self.torch.get_state().numel():
            self.torch.set_state(saved)
            return
        copy = random.Random()  # a seed drawn from a copy: a function of the saved state, the stream not moved
        set_python_state(copy, state["python"])
        self.torch.manual_seed(copy.getrandbits(63))
        logger.warning(
            "the degradation's torch generator state was saved on another device type (%d bytes; this %s "
            "generator's holds %d): reseeding it (the run continues, but not bit-exactly)",
            saved.numel(), self.device.type, self.torch.get_state().numel(),
        )
