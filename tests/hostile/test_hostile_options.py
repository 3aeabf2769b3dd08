"""Option files and flags as a hostile user writes them: training, test and sweep files, ``prepare degrade``.

Each bad file is one line naming the file, the key (or flag) and what was expected, before anything is
written: no experiment folder is made, and an earlier run of the same name is not archived."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from harness import Arena
from tiny_training import make_tiny_data, tiny_options_dict
from training_files import earlier_run, train_file

from esrgan.checkpoint import save_network
from esrgan.data.image import imwrite

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _images(folder: Path, n: int = 2, size: int = 32) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        imwrite(folder / f"img{i}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _nan_checkpoint(path: Path) -> Path:
    from esrgan.archs import RRDBNet

    sd = RRDBNet(3, 3, scale=4, num_feat=8, num_block=1, num_grow_ch=4).state_dict()
    sd["conv_first.weight"][0, 0, 0, 0] = float("nan")
    save_network(path, {"params": sd})
    return path


@pytest.mark.hostile("refused")
def test_losses_all_weighing_zero_are_refused(arena: Arena) -> None:
    data = make_tiny_data(arena.work / "data", n_train=4, n_val=1)
    opt = tiny_options_dict(data, arena.work / "experiments", total_iter=2, gan=True)
    t = opt["train"]
    t["pixel_opt"]["loss_weight"] = 0
    t["perceptual_opt"]["perceptual_weight"] = 0
    t["gan_opt"]["loss_weight"] = 0
    (arena.work / "train.yml").write_text(yaml.safe_dump(opt))
    earlier_run(arena)
    result = arena.run("train", "-opt", "train.yml")
    result.assert_refused("train.yml", "no loss has a positive weight", "pixel_opt.loss_weight 0",
                          "perceptual_weight 0", "gan_opt.loss_weight 0", code=2)


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("key", ["dist", "world_size"])
def test_runtime_keys_in_a_training_file_are_refused(arena: Arena, key: str) -> None:
    result = arena.run("train", "-opt", train_file(arena, (key, 1 if key != "dist" else True)))
    result.assert_refused("train.yml", key, "remove it", code=2)
    assert not (arena.work / "experiments").exists()


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("command", "byte"), [("train", b"\x00"), ("test", b"\x07")])
def test_control_bytes_in_an_option_file(arena: Arena, command: str, byte: bytes) -> None:
    text = b"name: probe\nscale: 4\nmodels: [bicubic" + byte + b"]\n"
    (arena.work / "o.yml").write_bytes(text)
    result = arena.run(command, "-opt", "o.yml")
    result.assert_refused("o.yml", f"control character 0x{byte[0]:02x}", "line 3, column 17")
    assert not (arena.work / "experiments").exists()


@pytest.mark.hostile("refused")
def test_prepare_degrade_with_a_psnr_option_file_is_refused(arena: Arena) -> None:
    _images(arena.work / "hr")
    arena.input("hr")
    result = arena.run("prepare", "degrade", "--input", "hr", "--output", "lr", "--seed", "0", "--options",
                       train_file(arena))
    result.assert_refused("train.yml", "model_type", "SRModel makes no degraded LR", "Real-ESRGAN")
    assert not (arena.work / "lr").exists()


@pytest.mark.hostile("refused")
def test_prepare_degrade_refuses_a_misspelt_key_as_training_does(arena: Arena) -> None:
    _images(arena.work / "hr")
    arena.input("hr")
    text = (FIXTURES / "realesrgan" / "train_realesrgan_x4plus.yml").read_text()
    (arena.work / "real.yml").write_text(text.replace("second_blur_prob:", "second_blur_prb:", 1))
    result = arena.run("prepare", "degrade", "--input", "hr", "--output", "lr", "--seed", "0", "--options", "real.yml")
    result.assert_refused("real.yml", "second_blur_prb", "did you mean 'second_blur_prob'")
    assert not (arena.work / "lr").exists()
    trained = arena.run("train", "-opt", "real.yml")  # the same line from the trainer
    assert trained.last_line.endswith(result.last_line.split("error: ", 1)[1])


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("command", ["test", "interp"])
def test_nan_weights_are_one_line_before_anything_is_written(arena: Arena, command: str) -> None:
    _images(arena.work / "imgs")
    arena.input("imgs")
    bad = _nan_checkpoint(arena.work / "nan.pth")
    good = arena.work / "good.pth"
    from esrgan.archs import RRDBNet

    torch.manual_seed(0)
    save_network(good, {"params": RRDBNet(3, 3, scale=4, num_feat=8, num_block=1, num_grow_ch=4).state_dict()})
    arena.input(bad)
    if command == "test":
        result = arena.run("test", "--model", "nan.pth", "--scale", "4", "--hr", "imgs", "--name", "t", "-q")
    else:
        result = arena.run("interp", "--psnr", "good.pth", "--gan", "nan.pth", "--sweep", "0:1:0.5", "--hr", "imgs",
                           "--scale", "4", "--name", "t", "-q")
    result.assert_refused("nan.pth", "NaN/Inf", "conv_first.weight")
    assert not (arena.work / "experiments").exists()


@pytest.mark.hostile("refused")
def test_test_flags_are_checked_as_the_file_is(arena: Arena) -> None:
    _images(arena.work / "imgs")
    arena.input("imgs")
    result = arena.run("test", "--model", "bicubic", "--scale", "4", "--hr", "imgs", "--name", "t", "-q",
                       "--tile", "-1")
    result.assert_refused("--tile", "must be 0 (automatic) or a tile size")
    assert not (arena.work / "experiments").exists()


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("dataset", "named"), [
    ({"type": "SingleHRDataset", "dataroot_lq": "imgs"}, "datasets.test_1.dataroot_lq"),
    ({"phase": "train"}, "datasets.test_1.phase"),
])
def test_test_file_dataset_type_and_phase_are_used_not_ignored(arena: Arena, dataset: dict, named: str) -> None:
    _images(arena.work / "imgs")
    arena.input("imgs")
    opt = {"name": "probe", "scale": 4, "models": ["bicubic"],
           "datasets": {"test_1": {"name": "set", "dataroot_gt": "imgs", **dataset}}}
    (arena.work / "t.yml").write_text(yaml.safe_dump(opt))
    result = arena.run("test", "-opt", "t.yml", "-q")
    result.assert_refused("t.yml", named)
    assert not (arena.work / "experiments").exists()


@pytest.mark.hostile("refused")
def test_test_file_network_g_gets_the_training_parser(arena: Arena) -> None:
    _images(arena.work / "imgs")
    arena.input("imgs")
    opt = {"name": "probe", "scale": 4, "models": ["bicubic"], "network_g": {"type": "RRDBNet", "num_blok": 2},
           "datasets": {"test_1": {"name": "set", "dataroot_gt": "imgs"}}}
    (arena.work / "t.yml").write_text(yaml.safe_dump(opt))
    result = arena.run("test", "-opt", "t.yml", "-q")
    result.assert_refused("t.yml", "network_g.num_blok", "did you mean 'num_block'")
    assert not (arena.work / "experiments").exists()
