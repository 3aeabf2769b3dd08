"""``esrgan upscale``: inputs (files, folders, globs), naming, formats, skip-existing, errors and exit codes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from esrgan.archs import MSRResNet
from esrgan.checkpoint import save_network
from esrgan.cli import main as esrgan_main
from esrgan.data.image import imread, imwrite
from esrgan.inference import Upscaler
from esrgan.inference.color_fix import DEFAULT_COLOR_FIX
from esrgan.inference.files import expand_inputs, scale_suffix
from esrgan.metrics import psnr


@pytest.fixture
def inputs(tmp_path: Path, natural_image: np.ndarray) -> Path:
    src = tmp_path / "in"
    imwrite(src / "a.png", natural_image[:24, :32])
    imwrite(src / "b.jpg", natural_image[100:120, 100:116])
    imwrite(src / "grey.png", natural_image[:20, :20, 1])
    imwrite(src / "rgba.png", np.dstack([natural_image[:16, :16], np.full((16, 16), 200, np.uint8)]))
    imwrite(src / "deep.png", natural_image[:12, :12].astype(np.uint16) * 257)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return src


def run(*argv: str | Path) -> int:
    return esrgan_main(["upscale", *map(str, argv)])


def test_folder_glob_and_bad_inputs(
    inputs: Path, tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = run(inputs, str(inputs / "*.jpg"), tmp_path / "missing.png", "-o", out, "--model", model_file, "--tile", "8")
    err = capsys.readouterr().err
    assert code == 1  # two failures reported, the other images still written
    assert "broken.png: cannot decode image data" in err and "missing.png: no such image file" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "a_x4.png",
        "b_x4.jpg",
        "deep_x4.png",
        "grey_x4.png",
        "rgba_x4.png",
    ]
    a = imread(out / "a_x4.png")
    assert a.shape == (96, 128, 3) and a.dtype == np.uint8
    want = Upscaler(model_file, device="cpu", tile=8, color_fix=DEFAULT_COLOR_FIX).upscale(imread(inputs / "a.png"))
    np.testing.assert_array_equal(a, want)
    assert imread(out / "grey_x4.png").shape == (80, 80)
    assert imread(out / "rgba_x4.png").shape == (64, 64, 4)
    deep = imread(out / "deep_x4.png")
    assert deep.dtype == np.uint16 and deep.shape == (48, 48, 3)
    assert imread(out / "b_x4.jpg").shape == (80, 64, 3)
    assert "upscaled 5, skipped 0 (existing), failed 2" in err


def test_single_output_path_outscale_and_passes(inputs: Path, tmp_path: Path, model_file: Path) -> None:
    assert run(inputs / "a.png", "-o", tmp_path / "x.webp", "--model", model_file, "--outscale", "2.5") == 0
    assert imread(tmp_path / "x.webp").shape == (60, 80, 3)
    assert run(inputs / "a.png", "-o", tmp_path / "o", "--model", model_file, "--passes", "2", "--tile", "16") == 0
    assert imread(tmp_path / "o" / "a_x16.png").shape == (384, 512, 3)


def test_skip_existing_and_format_fallback(inputs: Path, tmp_path: Path, model_file: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    imwrite(out / "a.jpg", np.full((8, 8, 3), 7, np.uint8))
    kept = (out / "a.jpg").read_bytes()
    code = run(
        inputs / "a.png", inputs / "rgba.png", inputs / "deep.png", "-o", out, "--model", model_file,
        "--suffix", "", "--ext", "jpg", "--skip-existing",
    )  # fmt: skip
    assert code == 0
    assert (out / "a.jpg").read_bytes() == kept
    # JPEG holds neither alpha nor 16 bits: those two are written as PNG, mode and depth kept
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "deep.png", "rgba.png"]
    assert imread(out / "rgba.png").shape == (64, 64, 4) and imread(out / "deep.png").dtype == np.uint16


def test_skip_existing_never_takes_a_cut_output_as_done(
    inputs: Path, tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    imwrite(out / "a.png", np.full((64, 64, 3), 7, np.uint8))
    cut = (out / "a.png").read_bytes()[:-20]  # as a power loss leaves a file whose end never reached the disk
    (out / "a.png").write_bytes(cut)
    code = run(inputs / "a.png", "-o", out, "--model", model_file, "--suffix", "", "--skip-existing")
    assert code == 1
    assert "a.png: truncated" in capsys.readouterr().err
    assert (out / "a.png").read_bytes() == cut  # not ours to delete: named, left for the user


def test_refuses_to_overwrite_inputs_or_merge_names(inputs: Path, tmp_path: Path, model_file: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        run(inputs / "a.png", "-o", inputs, "--suffix", "", "--model", model_file)
    assert exc.value.code == 2
    other = tmp_path / "other"
    imwrite(other / "a.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SystemExit):
        run(inputs / "a.png", other / "a.png", "-o", tmp_path / "o", "--model", model_file)
    assert not (tmp_path / "o").exists()


def test_model_errors_and_bad_flags(inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    assert run(inputs / "a.png", "-o", tmp_path / "o", "--model", bad) == 1
    assert "cannot load model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(inputs / "a.png", "-o", tmp_path / "o", "--passes", "0")
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            run(inputs / "a.png", "-o", tmp_path / "o", "--device", "cuda")
        assert "CUDA is not available" in capsys.readouterr().err


def test_expand_inputs_and_suffix(inputs: Path) -> None:
    files, missing = expand_inputs([str(inputs / "*.png"), str(inputs / "a.png"), str(inputs / "nope*.png")])
    assert [p.name for p in files] == ["a.png", "broken.png", "deep.png", "grey.png", "rgba.png"]  # no duplicates
    assert missing == [str(inputs / "nope*.png")]
    assert (scale_suffix(4), scale_suffix(16.0), scale_suffix(2.5)) == ("_x4", "_x16", "_x2.5")


def test_bmp_tiff_webp_inputs_as_they_are(tmp_path: Path, natural_image: np.ndarray, model_file: Path) -> None:
    # The formats, read as stored (no conversion step) and written back in the same format.
    src, out = tmp_path / "fmt", tmp_path / "fmt_out"
    rgb = np.ascontiguousarray(natural_image[40:56, 60:80])
    deep = rgb.astype(np.uint16) * 257 + 3
    imwrite(src / "c.bmp", rgb)
    imwrite(src / "d.tiff", deep)
    imwrite(src / "e.webp", rgb, [cv2.IMWRITE_WEBP_QUALITY, 101])  # OpenCV: WebP quality > 100 is lossless
    assert run(src, "-o", out, "--model", model_file) == 0
    assert sorted(p.name for p in out.iterdir()) == ["c_x4.bmp", "d_x4.tiff", "e_x4.webp"]
    up = Upscaler(model_file, device="cpu", color_fix=DEFAULT_COLOR_FIX)  # as the command runs it
    np.testing.assert_array_equal(imread(out / "c_x4.bmp"), up.upscale(rgb))
    assert imread(out / "c_x4.bmp").std() > 0.5 * rgb.std() > 2  # a picture, not a flat image
    got16 = imread(out / "d_x4.tiff")
    assert got16.dtype == np.uint16  # 16-bit TIFF stays 16-bit
    np.testing.assert_array_equal(got16, up.upscale(deep))
    np.testing.assert_array_equal(imread(src / "e.webp"), rgb)
    webp = imread(out / "e_x4.webp")  # written lossy at --quality 95
    assert webp.shape == (64, 80, 3) and psnr(webp, up.upscale(rgb)) > 35


def test_nan_weights_fail_naming_the_model_instead_of_a_black_image(
    inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = MSRResNet(3, 3, num_feat=8, num_block=1, upscale=4)
    with torch.no_grad():
        net.conv_first.weight[0, 0, 0, 0] = float("nan")
    broken = tmp_path / "diverged.pth"
    save_network(broken, {"params": net.state_dict()})
    out = tmp_path / "out"
    assert run(inputs / "a.png", "-o", out, "--model", broken) == 1
    err = capsys.readouterr().err
    assert "a.png" in err and "diverged.pth produced NaN/Inf values" in err
    assert not (out / "a_x4.png").exists()
