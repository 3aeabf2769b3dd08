"""Names that become paths: test and sweep option files, --hr folders, experiment names, model labels.

Each name is one folder inside the run's folder or it is refused before anything is written
(``esrgan.utils.folders.check_folder_name`` is the one check)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from harness import Arena

from esrgan.data.image import imwrite

pytestmark = pytest.mark.slow


def _images(folder, n: int = 2, size: int = 32) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        imwrite(folder / f"img{i}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _test_file(arena: Arena, **changes) -> str:
    _images(arena.work / "imgs")
    opt = {"name": "probe", "scale": 4, "models": ["bicubic"],
           "datasets": {"test_1": {"name": "set", "dataroot_gt": "imgs"}}}
    for key, value in changes.items():
        if key == "set_name":
            opt["datasets"]["test_1"]["name"] = value
        else:
            opt[key] = value
    (arena.work / "t.yml").write_text(yaml.safe_dump(opt))
    arena.input("imgs")
    return "t.yml"


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("name", ["../../outside/victim.txt", "../../../../x", "..", "", "a/b", "x\x07y", "n" * 300])
def test_test_file_set_name_is_one_folder(arena: Arena, name: str) -> None:
    result = arena.run("test", "-opt", _test_file(arena, set_name=name), "-q")
    result.assert_refused("datasets.test_1", "test set name")
    assert not (arena.work / "experiments").exists()


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("label", ["../../outside", "..", "compare", "_hr"])
def test_test_file_model_label_is_one_folder(arena: Arena, label: str) -> None:
    result = arena.run("test", "-opt", _test_file(arena, models=[{"name": label, "model": "bicubic"}]), "-q")
    result.assert_refused("model name")
    assert not (arena.work / "experiments").exists()


@pytest.mark.hostile("correct")
def test_hr_folder_with_dotdot_names_the_real_folder(arena: Arena) -> None:
    _images(arena.work / "imgs")
    (arena.work / "imgs" / "sub").mkdir()
    arena.input("imgs")
    result = arena.run("test", "--hr", "imgs/sub/..", "--model", "bicubic", "--scale", "4", "--name", "dots", "-q")
    result.assert_ok()
    run = arena.work / "experiments" / "dots"
    assert {"_hr", "bicubic", "compare"} <= {p.name for p in (run / "imgs").iterdir()}
    assert not (arena.work / "experiments" / "_hr").exists()


@pytest.mark.hostile("refused")
def test_sweep_file_set_name_is_one_folder(arena: Arena) -> None:
    _images(arena.work / "imgs")
    opt = {"name": "sweep", "scale": 4, "interp": {"psnr": "a.pth", "gan": "b.pth", "alphas": [0, 1]},
           "datasets": {"test_1": {"name": "../../outside/victim.txt", "dataroot_gt": "imgs"}}}
    (arena.work / "s.yml").write_text(yaml.safe_dump(opt))
    result = arena.run("interp", "-opt", "s.yml")
    result.assert_refused()
    assert "victim" in result.err or "datasets.test_1" in result.err
    assert not (arena.work / "experiments").exists()


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("name", ["n" * 300, "../x", "a\tb"])
def test_experiment_name_flag(arena: Arena, name: str) -> None:
    _images(arena.work / "imgs")
    result = arena.run("test", "--hr", "imgs", "--model", "bicubic", "--scale", "4", "--name", name, "-q")
    result.assert_refused("experiment name")
    assert not (arena.work / "experiments").exists()
