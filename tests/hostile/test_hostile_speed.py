"""Issue 24's surfaces: the BSDS400 download, ``use_amp: auto`` and ``--precision int8``."""

from __future__ import annotations

import sys

import pytest
import yaml
from harness import REPO, Arena

from esrgan.data.download import DATASETS

sys.path.insert(0, str(REPO / "tests"))
from tiny_training import make_tiny_data, tiny_options_dict

pytestmark = pytest.mark.slow

# The first image of the BSDS400 table (the download fetches in table order, so the scenarios need only it).
_FIRST = DATASETS["BSDS400"][0]


@pytest.mark.hostile("refused")
def test_bsds400_tampered_image_is_refused_and_removed(arena: Arena) -> None:
    mirror = arena.work / "mirror"
    tampered = mirror / _FIRST.rel
    tampered.parent.mkdir(parents=True)
    tampered.write_bytes(b"\xff\xd8\xff\xe0 a JPEG someone changed on the way")
    arena.input(tampered)
    result = arena.run("prepare", "download", "BSDS400", "--source", str(mirror), "--root", "datasets")
    result.assert_refused(_FIRST.rel, _FIRST.sha256, "removed")
    landed = arena.work / "datasets" / _FIRST.dest
    assert not landed.exists() and not landed.with_name(landed.name + ".part").exists()


@pytest.mark.hostile("refused")
def test_bsds400_hand_placed_wrong_image_is_refused_and_kept(arena: Arena) -> None:
    placed = arena.work / "datasets" / _FIRST.dest
    placed.parent.mkdir(parents=True)
    placed.write_bytes(b"the user's own picture")
    arena.input(placed)
    result = arena.run("prepare", "download", "BSDS400", "--root", "datasets", env={"ESRGAN_OFFLINE": "1"})
    result.assert_refused(_FIRST.dest, _FIRST.sha256, "remove it and run again")
    assert placed.read_bytes() == b"the user's own picture"


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("use_amp", "fast", "true or false or one of auto"), ("amp_dtype", "fp8", "auto, bf16, fp16")],
)
def test_precision_key_with_a_wrong_value_names_it_before_training(arena: Arena, key, value, expected) -> None:
    data = make_tiny_data(arena.work / "data", n_train=2, n_val=1, size=32, scale=2)
    opt = tiny_options_dict(data, arena.work / "experiments", total_iter=1, name="hostile")
    opt["train"][key] = value
    path = arena.work / "train.yml"
    path.write_text(yaml.safe_dump(opt))
    arena.input(path)
    arena.run("train", "-opt", str(path)).assert_refused(f"train.{key}", value, expected)
    assert not (arena.work / "experiments").exists()
