"""Checkpoints of architectures we do not implement load through spandrel (optional); ours never need it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from esrgan import load_model
from esrgan.archs import RRDBNet
from esrgan.checkpoint import CheckpointError, save_network
from esrgan.evaluation.tested_models import load_network
from esrgan.inference import Upscaler


def _span_checkpoint(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    spandrel_span = pytest.importorskip("spandrel.architectures.SPAN", reason="spandrel is not installed")
    net = spandrel_span.SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2).eval()
    path = tmp_path / "span_x2.pth"
    save_network(path, {"params_ema": net.state_dict()})  # a BasicSR-style release file of a SPAN model
    return path, net


def test_foreign_architecture_loads_through_spandrel(tmp_path: Path, natural_image: np.ndarray) -> None:
    path, net = _span_checkpoint(tmp_path)
    model = load_model(path)
    assert type(model).__name__ == "SPAN"
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x))
    # upscale / video go through the Upscaler, test through load_network: the same model, its scale found
    up = Upscaler(str(path), device="cpu", precision="fp32")
    assert up.scale == 2 and up.upscale(natural_image[:24, :32]).shape == (48, 64, 3)
    tested, scale = load_network(str(path))
    assert scale == 2 and type(tested).__name__ == "SPAN"


def test_missing_spandrel_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = _span_checkpoint(tmp_path)
    monkeypatch.setitem(sys.modules, "spandrel", None)  # import spandrel -> ImportError
    with pytest.raises(CheckpointError, match=r"span_x2\.pth: not a generator state dict we recognise.*"
                       r"pip install 'esrgan\[spandrel\]'"):  # fmt: skip
        load_model(path)
    with pytest.raises(CheckpointError, match=r"pip install 'esrgan\[spandrel\]'"):
        load_network(str(path))
    # our own architectures never need it
    ours = tmp_path / "rrdb.pth"
    save_network(ours, {"params": RRDBNet(3, 3, 8, 1, 4, 4).state_dict()})
    assert isinstance(load_model(ours), RRDBNet)


def test_state_dict_nobody_knows_is_named(tmp_path: Path) -> None:
    pytest.importorskip("spandrel", reason="spandrel is not installed")
    path = tmp_path / "mystery.pth"
    save_network(path, {"params": {"foo.weight": torch.zeros(4, 3, 3, 3)}})
    with pytest.raises(CheckpointError, match=r"mystery\.pth: not a generator .* spandrel .* does not recognise it"):
        load_model(path)
