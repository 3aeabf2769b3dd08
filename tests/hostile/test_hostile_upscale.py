"""`esrgan upscale` against hostile flags, signals and leftovers of killed runs."""

from __future__ import annotations

import numpy as np
import pytest
from harness import Arena
from sigterm import sigterm_when

from esrgan.data.image import imread, imwrite

pytestmark = pytest.mark.slow


def _folder(arena: Arena, n: int = 4, size: tuple[int, int] = (24, 32)) -> list[str]:
    from esrgan.archs import MSRResNet
    from esrgan.checkpoint import save_network

    rng = np.random.default_rng(0)
    for i in range(n):
        imwrite(arena.work / "imgs" / f"i{i}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    save_network(arena.work / "m.safetensors", {"params": MSRResNet(3, 3, num_feat=4, num_block=1, upscale=4)
                                                .state_dict()})
    arena.input("imgs")
    arena.input("m.safetensors")
    return ["upscale", "imgs", "-o", "out", "--model", "m.safetensors"]


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("value", ["sepia", "", "WAVELET"])
def test_bad_color_fix_is_one_line(arena: Arena, value: str) -> None:
    args = _folder(arena, n=1)
    arena.run(*args, "--color-fix", value).assert_refused("--color-fix", "wavelet")
    assert not (arena.work / "out").exists()


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("outscale", ["0.001", "0.02"])
def test_tiny_outscale_is_one_line_before_any_work(arena: Arena, outscale: str) -> None:
    args = _folder(arena, n=2)
    result = arena.run(*args, "--outscale", outscale)
    result.assert_refused("--outscale", "i0.png", "smallest outscale")
    assert "height and width" not in result.err and not (arena.work / "out").exists()


@pytest.mark.hostile("correct")
def test_a_small_enough_outscale_works(arena: Arena) -> None:
    args = _folder(arena, n=1)
    arena.run(*args, "--outscale", "0.05").assert_ok()
    assert imread(arena.work / "out" / "i0_x0.05.png").shape == (1, 2, 3)


@pytest.mark.hostile("correct")
def test_sigterm_mid_folder_is_one_line_and_skip_existing_finishes(arena: Arena) -> None:
    args = _folder(arena, n=6)
    patch = ("from esrgan.inference import files\nwrite = files.imwrite\n"
             "def slow(*a, **k):\n    write(*a, **k)\n    time.sleep(30)\nfiles.imwrite = slow")
    err = sigterm_when(arena, args, patch, ready=lambda: (arena.work / "out" / "i0_x4.png").exists())
    assert "--skip-existing" in err
    assert [p.name for p in (arena.work / "out").iterdir()] == ["i0_x4.png"]
    result = arena.run(*args, "--skip-existing")
    result.assert_ok()
    assert "upscaled 5, skipped 1" in result.err and len(list((arena.work / "out").iterdir())) == 6


@pytest.mark.hostile("correct")
def test_stale_temporaries_go_but_look_alikes_stay(arena: Arena) -> None:
    args = _folder(arena, n=2)
    out = arena.work / "out"
    out.mkdir()
    (out / ".i0_x4.tmp-abcd1234.png").write_bytes(b"what a killed run was writing")
    keep = [".i0_x4.tmp-abc.png", ".i0_x4.tmp-abcd1234.jpg", ".other.tmp-abcd1234.png", "i9_x4.png"]
    for name in keep:
        (out / name).write_bytes(b"the user's")
        arena.input(out / name)
    result = arena.run(*args, "--skip-existing")
    result.assert_ok()
    assert "removed 1 temporary file(s)" in result.err
    assert sorted(p.name for p in out.iterdir()) == sorted([*keep, "i0_x4.png", "i1_x4.png"])


@pytest.mark.hostile("correct")
def test_a_cut_output_is_not_taken_as_done_nor_deleted(arena: Arena) -> None:
    args = _folder(arena, n=2)
    imwrite(arena.work / "out" / "i0_x4.png", np.full((96, 128, 3), 9, np.uint8))
    cut = (arena.work / "out" / "i0_x4.png").read_bytes()[:-30]
    (arena.work / "out" / "i0_x4.png").write_bytes(cut)
    result = arena.run(*args, "--skip-existing")
    assert result.code == 1 and "Traceback" not in result.err
    assert "i0_x4.png: truncated" in result.err and "not taken as done and not replaced" in result.err
    assert (arena.work / "out" / "i0_x4.png").read_bytes() == cut and (arena.work / "out" / "i1_x4.png").exists()
