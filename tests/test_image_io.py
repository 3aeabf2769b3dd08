"""Image I/O (esrgan/data/image.py) and MATLAB YCbCr (esrgan/imageops/color.py), checked against PIL and OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from esrgan.data.image import (
    ImageReadError,
    imdecode,
    imencode,
    img2tensor,
    imread,
    imwrite,
    list_images,
    mod_crop,
    tensor2img,
    to_rgb,
)
from esrgan.imageops.color import rgb2ycbcr, rgb2ycbcr_torch


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:48, :40])


# ---------------------------------------------------------------- PNG round trips


def test_png_8bit_rgb_round_trip_and_rgb_order_on_disk(tmp_path: Path, rgb: np.ndarray) -> None:
    path = tmp_path / "a.png"
    imwrite(path, rgb)
    back = imread(path)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, rgb)
    # Independent decoder: PIL stores RGB, so the file itself must be in RGB order.
    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgb)


def test_png_16bit_rgb_and_grey_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img16 = rng.integers(0, 65536, size=(17, 23, 3), dtype=np.uint16)
    imwrite(tmp_path / "c16.png", img16)
    back = imread(tmp_path / "c16.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, img16)
    # OpenCV reads BGR: reversing its channels gives what we wrote.
    raw = cv2.imread(str(tmp_path / "c16.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(raw[:, :, ::-1], img16)

    grey16 = rng.integers(0, 65536, size=(9, 11), dtype=np.uint16)
    imwrite(tmp_path / "g16.png", grey16)
    back = imread(tmp_path / "g16.png")
    assert back.shape == (9, 11) and back.dtype == np.uint16
    np.testing.assert_array_equal(back, grey16)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "g16.png")).astype(np.uint16), grey16)


def test_grey_stays_two_dimensional(tmp_path: Path, rgb: np.ndarray) -> None:
    grey = rgb[:, :, 1].copy()
    for ext in (".png", ".jpg", ".bmp"):
        imwrite(tmp_path / f"g{ext}", grey)
        back = imread(tmp_path / f"g{ext}")
        assert back.shape == grey.shape, ext
    np.testing.assert_array_equal(imread(tmp_path / "g.png"), grey)
    # A grey PNG written by PIL (mode L), like Set14's bridge.png.
    Image.fromarray(grey, mode="L").save(tmp_path / "pil_l.png")
    np.testing.assert_array_equal(imread(tmp_path / "pil_l.png"), grey)


def test_rgba_keeps_alpha_and_channel_order(tmp_path: Path) -> None:
    img = np.zeros((4, 5, 4), dtype=np.uint8)
    img[..., 3] = 255
    img[1, 2] = (255, 0, 0, 128)  # a half-transparent red pixel
    imwrite(tmp_path / "rgba.png", img)
    pil = np.asarray(Image.open(tmp_path / "rgba.png"))
    assert Image.open(tmp_path / "rgba.png").mode == "RGBA"
    assert tuple(pil[1, 2]) == (255, 0, 0, 128)
    back = imread(tmp_path / "rgba.png")
    assert back.shape == (4, 5, 4)
    assert tuple(back[1, 2]) == (255, 0, 0, 128)
    np.testing.assert_array_equal(back, img)
    # And the other way: PIL writes, we read.
    Image.fromarray(img, mode="RGBA").save(tmp_path / "pil_rgba.png")
    np.testing.assert_array_equal(imread(tmp_path / "pil_rgba.png"), img)


def test_red_pixel_written_by_pil_reads_as_red(tmp_path: Path) -> None:
    img = np.zeros((3, 3, 3), dtype=np.uint8)
    img[0, 0] = (255, 0, 0)
    img[2, 2] = (0, 0, 255)
    Image.fromarray(img).save(tmp_path / "red.png")
    back = imread(tmp_path / "red.png")
    assert tuple(back[0, 0]) == (255, 0, 0)
    assert tuple(back[2, 2]) == (0, 0, 255)


# ---------------------------------------------------------------- JPEG


def test_jpeg_read_matches_pil_decoder(tmp_path: Path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    ours = imread(tmp_path / "a.jpg")
    theirs = np.asarray(Image.open(tmp_path / "a.jpg"))
    assert ours.shape == rgb.shape and ours.dtype == np.uint8
    # Two libjpeg builds may differ by an IDCT rounding step; channel order must be the same.
    assert np.abs(ours.astype(int) - theirs).max() <= 2
    assert np.abs(ours.astype(float) - rgb).mean() < 3  # and it is the image we saved


def test_jpeg_quality_parameter_is_honoured(tmp_path: Path, rgb: np.ndarray) -> None:
    imwrite(tmp_path / "lo.jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 10])
    imwrite(tmp_path / "hi.jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 100])
    err_lo = np.abs(imread(tmp_path / "lo.jpg").astype(float) - rgb).mean()
    err_hi = np.abs(imread(tmp_path / "hi.jpg").astype(float) - rgb).mean()
    assert err_hi < 1.5 < err_lo
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


# ---------------------------------------------------------------- errors and atomic writes


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_truncated_file_is_an_error_naming_the_file(tmp_path: Path, rgb: np.ndarray, ext: str) -> None:
    data = imencode(rgb, ext)
    path = tmp_path / f"cut{ext}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=rf"cut\{ext}: cannot decode image data .*truncated"):
        imread(path)


def test_missing_empty_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match=r"nope\.png: image file not found"):
        imread(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.png: cannot decode image data \(0 bytes\)"):
        imread(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageReadError, match=r"text\.png"):
        imread(tmp_path / "text.png")
    with pytest.raises(ImageReadError, match="lmdb-key-7"):
        imdecode(b"\x89PNG\r\n", name="lmdb-key-7")
    assert issubclass(ImageReadError, ValueError)


def test_imwrite_is_atomic_and_creates_folders(tmp_path: Path, rgb: np.ndarray) -> None:
    target = tmp_path / "deep" / "er" / "out.png"
    imwrite(target, rgb)
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.png"]  # no temporary left behind
    # A failing encode leaves an existing file untouched and no temporary file.
    with pytest.raises(ValueError, match=r"cannot encode image of shape \(48, 40, 3\) and dtype float64"):
        imwrite(target, rgb.astype(np.float64) + 0.5)
    np.testing.assert_array_equal(imread(target), rgb)
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.png"]


def test_list_images_sorted_and_filtered(tmp_path: Path, rgb: np.ndarray) -> None:
    for name in ("b.png", "a.JPG", "c.txt", "d.webp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.png").write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png", "d.webp"]
    assert [p.name for p in list_images(tmp_path, recursive=True)] == ["a.JPG", "b.png", "d.webp", "e.png"]
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        list_images(tmp_path / "missing")


def test_list_images_names_a_broken_link_instead_of_dropping_it_silently(tmp_path: Path, caplog) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "gone.png").symlink_to(tmp_path / "moved_away.png")
    with caplog.at_level("WARNING", logger="esrgan.data.image"):
        assert [p.name for p in list_images(tmp_path)] == ["a.png"]
    assert "gone.png: a link to" in caplog.text and "moved_away.png, which does not exist; skipped" in caplog.text


# ---------------------------------------------------------------- tensors


def test_img2tensor_values_and_layout(rgb: np.ndarray) -> None:
    t = img2tensor(rgb)
    assert t.shape == (3, 48, 40) and t.dtype == torch.float32
    assert t[0, 5, 7].item() == pytest.approx(rgb[5, 7, 0] / 255, abs=1e-7)
    assert t[2, 47, 39].item() == pytest.approx(rgb[47, 39, 2] / 255, abs=1e-7)
    u16 = np.array([[0, 65535], [32768, 1]], dtype=np.uint16)
    t16 = img2tensor(u16)
    assert t16.shape == (1, 2, 2)
    assert t16[0, 1, 0].item() == pytest.approx(32768 / 65535, abs=1e-7)
    with pytest.raises(TypeError, match="expected a uint8 or uint16 image, got dtype float32"):
        img2tensor(rgb.astype(np.float32))


def test_tensor_image_round_trip_uint8_and_uint16(rgb: np.ndarray) -> None:
    np.testing.assert_array_equal(tensor2img(img2tensor(rgb)), rgb)
    np.testing.assert_array_equal(tensor2img(img2tensor(rgb)[None]), rgb)
    grey = rgb[:, :, 0].copy()
    back = tensor2img(img2tensor(grey))
    assert back.shape == grey.shape
    np.testing.assert_array_equal(back, grey)
    u16 = np.random.default_rng(0).integers(0, 65536, size=(6, 7, 3), dtype=np.uint16)
    np.testing.assert_array_equal(tensor2img(img2tensor(u16), dtype=np.uint16), u16)


def test_tensor2img_clips_rounds_and_leaves_input_alone() -> None:
    t = torch.tensor([[[-0.2, 0.5 / 255, 1.4 / 255], [2.6 / 255, 1.0, 1.3]]])
    before = t.clone()
    out = tensor2img(t)
    np.testing.assert_array_equal(out, np.array([[0, 0, 1], [3, 255, 255]], dtype=np.uint8))  # 0.5 -> 0: half-even
    assert torch.equal(t, before)  # the caller's tensor is not clamped in place
    with pytest.raises(ValueError, match="takes one image, got a batch of 2"):
        tensor2img(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"expected a CHW tensor, got shape \(4, 4\)"):
        tensor2img(torch.zeros(4, 4))


def test_to_rgb() -> None:
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    rgb = to_rgb(grey)
    assert rgb.shape == (2, 3, 3)
    assert all(np.array_equal(rgb[:, :, c], grey) for c in range(3))
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 9
    assert to_rgb(rgba).shape == (2, 3, 3) and np.all(to_rgb(rgba)[..., 0] == 9)


# ---------------------------------------------------------------- mod_crop


@pytest.mark.parametrize(
    ("shape", "scale", "expected"), [((361, 250, 3), 4, (360, 248, 3)), ((391, 586), 4, (388, 584))]
)
def test_mod_crop_crops_bottom_right(shape: tuple[int, ...], scale: int, expected: tuple[int, ...]) -> None:
    img = np.arange(np.prod(shape), dtype=np.int64).reshape(shape)
    out = mod_crop(img, scale)
    assert out.shape == expected
    np.testing.assert_array_equal(out, img[: expected[0], : expected[1]])


def test_mod_crop_keeps_multiples_unchanged() -> None:
    img = np.zeros((12, 24, 3), dtype=np.uint8)
    assert mod_crop(img, 4).shape == (12, 24, 3)
    assert mod_crop(img, 5).shape == (10, 20, 3)


# ---------------------------------------------------------------- MATLAB rgb2ycbcr


def test_rgb2ycbcr_matches_matlab_formula() -> None:
    # MATLAB rgb2ycbcr on doubles in [0, 1]: [16; 128; 128] + T * rgb with T in units of 1/255.
    colors = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [12, 200, 97]]], np.uint8)
    ycc = rgb2ycbcr(colors)
    r, g, b = (colors[0].astype(float) / 255).T
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    np.testing.assert_allclose(ycc[0], np.stack([y, cb, cr], axis=1), atol=1e-10)
    # Known corners: black -> (16, 128, 128), white -> (235, 128, 128), red -> Y 81.481, Cr 240.
    np.testing.assert_allclose(ycc[0, 0], [16, 128, 128], atol=1e-10)
    np.testing.assert_allclose(ycc[0, 1], [235, 128, 128], atol=1e-10)
    np.testing.assert_allclose(ycc[0, 2], [81.481, 90.203, 240.0], atol=1e-10)
    np.testing.assert_allclose(rgb2ycbcr(colors, y_only=True), ycc[..., 0], atol=1e-12)


def test_rgb2ycbcr_torch_agrees_with_numpy(rgb: np.ndarray) -> None:
    t = img2tensor(rgb)[None].double()
    np.testing.assert_allclose(rgb2ycbcr_torch(t)[0].permute(1, 2, 0).numpy() * 255, rgb2ycbcr(rgb), atol=1e-9)
    np.testing.assert_allclose(rgb2ycbcr_torch(t, y_only=True)[0, 0].numpy() * 255, rgb2ycbcr(rgb, True), atol=1e-9)
    with pytest.raises(ValueError, match=r"N3HW RGB tensor, got shape \(3, 4, 4\)"):
        rgb2ycbcr_torch(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match=r"HWC RGB image, got shape \(4, 4\)"):
        rgb2ycbcr(np.zeros((4, 4)))


def test_atomic_outputs_get_normal_file_permissions(tmp_path):
    """Finished files are readable like any other (mkstemp's temporaries are owner-only)."""
    import os

    from esrgan.utils.atomic import atomic_write_bytes

    mask = os.umask(0o022)
    os.umask(mask)
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"x")
    assert (target.stat().st_mode & 0o777) == (0o666 & ~mask)
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_dir_replaces_only_when_complete_and_gets_normal_permissions(tmp_path):
    import os

    from esrgan.utils.atomic import atomic_dir

    mask = os.umask(0o022)
    os.umask(mask)
    target = tmp_path / "set"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"] and (target / "old.txt").exists()
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    assert (target.stat().st_mode & 0o777) == (0o777 & ~mask)
