"""The model zoo's cache: the program deletes only what it downloaded."""

from __future__ import annotations

import hashlib

import pytest
from harness import Arena

from esrgan.zoo import ZOO

pytestmark = pytest.mark.slow


@pytest.mark.hostile("refused")
def test_hand_placed_wrong_file_is_refused_and_kept(arena: Arena) -> None:
    entry = ZOO["RealESRGAN_x4plus"]
    cache = arena.allow(arena.home / "zoo" / "models")
    cache.mkdir(parents=True)
    placed = cache / entry.filename
    placed.write_bytes(b"the user's own file, not the published one")
    arena.input(placed)
    found = hashlib.sha256(placed.read_bytes()).hexdigest()
    result = arena.run("zoo", "download", "RealESRGAN_x4plus",
                       env={"ESRGAN_HOME": str(arena.home / "zoo"), "ESRGAN_OFFLINE": "1"})
    result.assert_refused(found, entry.sha256, "left as it is")
    assert placed.read_bytes() == b"the user's own file, not the published one"


@pytest.mark.hostile("refused")
def test_offline_download_names_the_file_to_place(arena: Arena) -> None:
    result = arena.run("zoo", "download", "RealESRGAN_x4plus",
                       env={"ESRGAN_HOME": str(arena.home / "zoo"), "ESRGAN_OFFLINE": "1"})
    result.assert_refused("offline", "RealESRGAN_x4plus")
    assert not (arena.home / "zoo" / "models" / ZOO["RealESRGAN_x4plus"].filename).exists()
