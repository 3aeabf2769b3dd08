"""spandrel networks in option files and checkpoints: typos, no spandrel, foreign shapes, crops that do not fit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml
from harness import REPO, Arena

sys.path.insert(0, str(REPO / "tests"))

from tiny_spandrel import TINY_SPANDREL
from tiny_training import make_tiny_data, tiny_options_dict

pytestmark = pytest.mark.slow


def _option_file(arena: Arena, name: str, gt_size: int = 32, **network: object) -> Path:
    data = make_tiny_data(arena.work / "data", n_train=2, n_val=1, size=64, scale=2)
    opt = tiny_options_dict(data, arena.work / "experiments", total_iter=2, gt_size=gt_size, name="hostile")
    opt["scale"] = 2
    opt["val"]["metrics"] = {"psnr": {"type": "psnr"}}
    opt["network_g"] = {"type": name, **TINY_SPANDREL.get(name, {}), **network}
    path = arena.work / "train.yml"
    path.write_text(yaml.safe_dump(opt))
    arena.input(path)
    return path


def _without_spandrel(arena: Arena) -> dict[str, str]:
    """An environment where ``import spandrel`` fails, as when the extra is not installed."""
    shadow = arena.home / ".cache" / "no_spandrel" / "spandrel"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('spandrel is not installed here')\n")
    return {"PYTHONPATH": f"{shadow.parent}:{REPO}"}


def _span_checkpoint(path: Path) -> Path:
    from esrgan.archs import build_network
    from esrgan.checkpoint import save_network

    net = build_network({"type": "SPAN", **TINY_SPANDREL["SPAN"], "upscale": 2})
    save_network(path, {"params": net.state_dict()})
    return path


@pytest.mark.hostile("refused")
def test_unknown_network_type_names_the_close_one(arena: Arena) -> None:
    pytest.importorskip("spandrel")
    opt = _option_file(arena, "SwinIRR")
    arena.run("train", "-opt", str(opt)).assert_refused("network_g.type", "SwinIRR", "did you mean 'SwinIR'")
    assert not (arena.work / "experiments").exists()


@pytest.mark.hostile("refused")
def test_mistyped_argument_names_the_key_and_the_accepted_ones(arena: Arena) -> None:
    pytest.importorskip("spandrel")
    opt = _option_file(arena, "SwinIR", embed_dims=60)
    arena.run("train", "-opt", str(opt)).assert_refused("network_g.embed_dims", "embed_dim", "accepted")


@pytest.mark.hostile("refused")
def test_spandrel_network_without_spandrel_names_the_install_command(arena: Arena) -> None:
    opt = _option_file(arena, "SPAN")
    result = arena.run("train", "-opt", str(opt), env=_without_spandrel(arena))
    result.assert_refused("network_g.type", "SPAN", "pip install 'esrgan[spandrel]'")


@pytest.mark.hostile("refused")
def test_spandrel_checkpoint_without_spandrel_names_the_install_command(arena: Arena, natural_image) -> None:
    pytest.importorskip("spandrel")
    from esrgan.data.image import imwrite

    ckpt = arena.input(_span_checkpoint(arena.work / "span.pth"))
    imwrite(arena.work / "in.png", natural_image[:16, :16])
    result = arena.run("upscale", "in.png", "-o", "out", "--model", str(ckpt), env=_without_spandrel(arena))
    result.assert_refused("span.pth", "pip install 'esrgan[spandrel]'")
    assert not (arena.work / "out").exists() or not any((arena.work / "out").iterdir())


@pytest.mark.hostile("refused")
def test_spandrel_checkpoint_with_wrong_shapes_is_refused(arena: Arena, natural_image) -> None:
    pytest.importorskip("spandrel")
    from esrgan.checkpoint import load_checkpoint_file, save_network
    from esrgan.data.image import imwrite

    path = _span_checkpoint(arena.work / "span.pth")
    sd = load_checkpoint_file(path)["params"]
    sd["conv_cat.weight"] = torch.zeros(3, 3, 1, 1)  # SPAN's keys, one tensor of another width
    save_network(path, {"params": sd})
    arena.input(path)
    imwrite(arena.work / "in.png", natural_image[:16, :16])
    arena.run("upscale", "in.png", "-o", "out", "--model", str(path)).assert_refused("span.pth", "conv_cat.weight")


@pytest.mark.hostile("refused")
def test_pretrained_spandrel_weights_of_another_width_are_refused(arena: Arena) -> None:
    pytest.importorskip("spandrel")
    ckpt = arena.input(_span_checkpoint(arena.work / "span8.pth"))  # feature_channels 8
    opt = _option_file(arena, "SPAN", feature_channels=16)
    raw = yaml.safe_load(opt.read_text())
    raw["path"]["pretrain_network_g"] = str(ckpt)
    wider = arena.work / "wider.yml"
    wider.write_text(yaml.safe_dump(raw))
    arena.run("train", "-opt", str(wider)).assert_refused("span8.pth", "network_g", "shapes differ")


@pytest.mark.hostile("refused")
def test_gt_size_the_network_cannot_take_names_both(arena: Arena) -> None:
    pytest.importorskip("spandrel")
    opt = _option_file(arena, "SAFMN", gt_size=36)
    arena.run("train", "-opt", str(opt)).assert_refused("datasets.train.gt_size", "36", "SAFMN", "multiple of 8")
    assert not (arena.work / "experiments").exists()


@pytest.mark.hostile("refused")
def test_argument_spandrel_cannot_read_back_is_refused_before_training(arena: Arena) -> None:
    pytest.importorskip("spandrel")
    opt = _option_file(arena, "SPAN", img_range=1.0)
    arena.run("train", "-opt", str(opt)).assert_refused("network_g.img_range", "img_range=255.0")
    assert not (arena.work / "experiments").exists()


@pytest.mark.hostile("correct")
def test_odd_sized_image_through_a_windowed_network(arena: Arena, natural_image) -> None:
    """A 13x9 image into a network that needs 16-pixel multiples (DRCT): padded, cropped back, right size."""
    pytest.importorskip("spandrel")
    from esrgan.archs import build_network
    from esrgan.checkpoint import save_network
    from esrgan.data.image import imread, imwrite

    net = build_network({"type": "DRCT", **TINY_SPANDREL["DRCT"], "upscale": 2})
    ckpt = arena.work / "drct.pth"
    save_network(ckpt, {"params": net.state_dict()})
    arena.input(ckpt)
    imwrite(arena.work / "in.png", natural_image[:13, :9])
    arena.run("upscale", "in.png", "-o", "out.png", "--model", str(ckpt), "--device", "cpu").assert_ok()
    assert imread(arena.work / "out.png").shape == (26, 18, 3)
