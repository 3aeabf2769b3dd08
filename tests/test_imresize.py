"""MATLAB bicubic imresize: bit-exact against MATLAB's own LR images, hand-computed weights, properties."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from esrgan.data.image import imread, mod_crop
from esrgan.imageops import imresize as imresize_lazy
from esrgan.imageops.imresize import _resize_axis_np, _resize_axis_torch, imresize, imresize_torch, output_size


def _keys(x: float) -> float:
    """Keys' cubic convolution kernel, a = -0.5, written out independently of the module."""
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


def _pairs(root: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for name in ("Set5", "Set14"):
        for hr in sorted((root / name / "HR").glob("*.png")):
            pairs.append((hr, root / name / "LR_bicubic" / "X4" / f"{hr.stem}x4.png"))
    return pairs


# ---------------------------------------------------------------- MATLAB's own output


def test_reproduces_matlab_lr_images_bit_exactly(shared_data: Path) -> None:
    pairs = _pairs(shared_data)
    assert len(pairs) == 19
    for hr_path, lr_path in pairs:
        hr = mod_crop(imread(hr_path), 4)
        expected = imread(lr_path)
        got = imresize(hr, 1 / 4)
        assert got.dtype == np.uint8
        assert got.shape == expected.shape, hr_path.name
        mismatches = int(np.count_nonzero(got != expected))
        assert mismatches == 0, f"{hr_path.name}: {mismatches} pixels differ from MATLAB's LR image"


def test_reference_detects_wrong_rounding_or_pass_order(shared_data: Path) -> None:
    # The bit-exact test is only worth something if near-misses fail it: rounding once at the
    # end, or resizing columns before rows, each change thousands of pixels of MATLAB's output.
    hr = mod_crop(imread(shared_data / "Set5" / "HR" / "butterfly.png"), 4)
    expected = imread(shared_data / "Set5" / "LR_bicubic" / "X4" / "butterflyx4.png")
    float_then_round = np.clip(np.floor(imresize(hr.astype(np.float64), 0.25) + 0.5), 0, 255).astype(np.uint8)
    cols_first = _resize_axis_np(hr.astype(np.float64), 1, 0.25, True, np.dtype(np.uint8))
    cols_first = _resize_axis_np(cols_first, 0, 0.25, True, np.dtype(np.uint8))
    assert np.count_nonzero(float_then_round != expected) > 1000
    assert np.count_nonzero(cols_first != expected) > 1000


# ---------------------------------------------------------------- hand-computed weights


def test_upscale_x2_interior_weights_are_keys_kernel() -> None:
    # x2: output pixel x (1-based) sits at u = x/2 + 1/4; for an interior impulse at input j the
    # output is keys(u - j). Known weights: -0.0234375, 0.2265625, 0.8671875, -0.0703125.
    n, j = 16, 8
    row = np.zeros((1, n))
    row[0, j - 1] = 1.0
    out = imresize(row, 2.0)[0]
    assert out.shape == (32,)
    for x in range(5, 28):  # away from the mirrored borders
        assert out[x - 1] == pytest.approx(_keys(x / 2 + 0.25 - j), abs=1e-15)
    assert sorted(out[out != 0].round(7).tolist()) == sorted(
        [-0.0234375, -0.0703125, 0.2265625, 0.8671875, 0.8671875, 0.2265625, -0.0703125, -0.0234375]
    )


def test_downscale_x4_uses_antialiased_kernel() -> None:
    # 1/4 with antialiasing: u = 4x - 1.5 and the weight of input j is keys((u - j) / 4) / 4
    # (the 16 taps already sum to one, so MATLAB's normalisation changes nothing here).
    n, j = 64, 30
    col = np.zeros((n, 1))
    col[j - 1] = 1.0
    out = imresize(col, 0.25)[:, 0]
    assert out.shape == (16,)
    for x in range(1, 17):
        u = 4 * x - 1.5
        assert out[x - 1] == pytest.approx(_keys((u - j) / 4) / 4, abs=1e-15)
    # Without antialiasing the plain kernel is sampled: only 4 taps, at distances 0.5 and 1.5.
    plain = imresize(col, 0.25, antialiasing=False)[:, 0]
    for x in range(1, 17):
        assert plain[x - 1] == pytest.approx(_keys(4 * x - 1.5 - j), abs=1e-15)


def test_borders_mirror_including_the_edge_pixel() -> None:
    # x2 of [a, b, c, ...]: the first output pixel (u = 0.75) reads indices -1, 0, 1, 2 which MATLAB
    # mirrors to 2, 1, 1, 2 (1-based): weights keys(1.75) on b, keys(0.75)+keys(0.25) on a, keys(1.25) on b.
    row = np.array([[10.0, 50.0, 0.0, 0.0, 0.0, 0.0]])
    out = imresize(row, 2.0)[0]
    a, b = 10.0, 50.0
    expected = _keys(1.75) * b + (_keys(0.75) + _keys(0.25)) * a + _keys(1.25) * b
    assert out[0] == pytest.approx(expected, abs=1e-12)


def test_uint8_rounds_halves_away_from_zero() -> None:
    # 1/2 with antialiasing has dyadic weights 111/256, 29/256, -9/256, -3/256 at distances
    # 0.5, 1.5, 2.5, 3.5: pixels 7, 8 = 1 and 6, 9 = 69 give exactly (2*111 + 138*29)/256 = 16.5
    # at output 4 (1-based). MATLAB rounds that to 17; numpy's round-half-even would give 16.
    row = np.zeros((2, 16), dtype=np.uint8)
    row[:, 6] = row[:, 7] = 1
    row[:, 5] = row[:, 8] = 69
    assert imresize(row.astype(np.float64), 0.5)[0, 3] == 16.5
    assert imresize(row, 0.5)[0, 3] == 17


# ---------------------------------------------------------------- properties


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 0.7, 1.0, 2.0, 3.0, 4.0])
def test_constant_image_stays_constant(scale: float) -> None:
    img = np.full((19, 23, 3), 137, dtype=np.uint8)
    out = imresize(img, scale)
    assert out.dtype == np.uint8
    assert out.shape == (math.ceil(19 * scale), math.ceil(23 * scale), 3)
    assert np.all(out == 137)
    flt = imresize(np.full((19, 23), 0.3), scale)
    np.testing.assert_allclose(flt, 0.3, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "scale", "expected"),
    [
        ((512, 512, 3), 0.25, (128, 128, 3)),
        ((361, 250, 3), 0.25, (91, 63, 3)),  # ceil, as MATLAB: comic before mod-crop
        ((30, 31), 1 / 3, (10, 11)),
        ((16, 16, 4), 4.0, (64, 64, 4)),
        ((5, 7, 1), 2.0, (10, 14, 1)),
        ((3, 3), 0.1, (1, 1)),
    ],
)
def test_output_shapes(shape: tuple[int, ...], scale: float, expected: tuple[int, ...]) -> None:
    out = imresize(np.zeros(shape, dtype=np.uint8), scale)
    assert out.shape == expected
    assert (output_size(shape[0], scale), output_size(shape[1], scale)) == expected[:2]


def test_flip_and_transpose_symmetry(natural_image: np.ndarray) -> None:
    img = natural_image[:64, :80].astype(np.float64) / 255
    for scale in (0.25, 0.5, 3.0):
        out = imresize(img, scale)
        np.testing.assert_allclose(imresize(img[:, ::-1], scale), out[:, ::-1], atol=1e-12)
        np.testing.assert_allclose(imresize(img[::-1], scale), out[::-1], atol=1e-12)
    # Square and float: no rounding between passes, so the pass order cannot matter.
    sq = img[:64, :64]
    np.testing.assert_allclose(imresize(sq.transpose(1, 0, 2), 0.5), imresize(sq, 0.5).transpose(1, 0, 2), atol=1e-12)


def test_channels_are_independent(natural_image: np.ndarray) -> None:
    img = natural_image[:40, :48]
    out = imresize(img, 0.5)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], imresize(np.ascontiguousarray(img[:, :, c]), 0.5))


def test_float_dtype_and_range_preserved() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((20, 24, 3), dtype=np.float32)
    out = imresize(img, 2.0)
    assert out.dtype == np.float32
    # Bicubic overshoots at edges: float output is not clipped (MATLAB does not clip doubles).
    step = np.zeros((8, 8))
    step[:, 4:] = 1.0
    up = imresize(step, 4.0)
    assert up.min() < 0 and up.max() > 1


def test_uint16_round_trip_close_to_float_path() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 65536, size=(32, 24, 3), dtype=np.uint16)
    out = imresize(img, 0.5)
    assert out.dtype == np.uint16
    ref = np.clip(imresize(img.astype(np.float64), 0.5), 0, 65535)
    # Rounding after the first pass moves a pixel by at most 0.5 * sum|w| (< 1) plus the final 0.5.
    assert np.abs(out.astype(np.float64) - ref).max() < 2


def test_downscale_then_known_psnr_against_bicubic_upscale(natural_image: np.ndarray) -> None:
    # Round trip x1/2 then x2 on a natural image loses detail but must stay close (sanity of both paths).
    img = natural_image[:128, :128].astype(np.float64)
    back = imresize(imresize(img, 0.5), 2.0)
    mse = np.mean((back - img) ** 2)
    assert 20 < 10 * np.log10(255**2 / mse) < 40


# ---------------------------------------------------------------- torch


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 2.0, 4.0])
def test_torch_matches_numpy_float_path(scale: float) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 24, 20, generator=gen)
    out = imresize_torch(x, scale)
    assert out.shape == (2, 3, math.ceil(24 * scale), math.ceil(20 * scale))
    assert out.dtype == torch.float32
    for n in range(2):
        ref = imresize(x[n].permute(1, 2, 0).double().numpy(), scale)
        np.testing.assert_allclose(out[n].permute(1, 2, 0).numpy(), ref, rtol=0, atol=1e-5)
    # CHW input and float64 (exact to rounding).
    chw = imresize_torch(x[0].double(), scale)
    assert chw.dtype == torch.float64
    np.testing.assert_allclose(
        chw.permute(1, 2, 0).numpy(), imresize(x[0].permute(1, 2, 0).double().numpy(), scale), atol=1e-12
    )


@pytest.mark.parametrize("scale", [0.25, 0.5, 3.0])
def test_torch_gather_path_matches_matmul_path(scale: float) -> None:
    # The GPU path (gathered taps, immune to TF32) checked on the CPU against the matmul path.
    x = torch.rand(2, 3, 21, 18, dtype=torch.float64)
    for dim in (-2, -1):
        a = _resize_axis_torch(x, dim, scale, True, gather=True)
        b = _resize_axis_torch(x, dim, scale, True, gather=False)
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_on_cuda_matches_numpy() -> None:
    x = torch.rand(2, 3, 40, 36)
    out = imresize_torch(x.cuda(), 0.25).cpu()
    for n in range(2):
        ref = imresize(x[n].permute(1, 2, 0).double().numpy(), 0.25)
        np.testing.assert_allclose(out[n].permute(1, 2, 0).numpy(), ref, rtol=0, atol=1e-5)


def test_torch_is_differentiable_and_half_input_works() -> None:
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda t: imresize_torch(t, 0.5), (x,))
    half = imresize_torch(torch.full((1, 3, 8, 8), 0.5, dtype=torch.float16), 0.5)
    assert half.dtype == torch.float16
    assert torch.all(half == 0.5)


def test_exported_from_esrgan_imageops_as_the_function() -> None:
    import esrgan.imageops
    import esrgan.imageops.imresize  # importing the submodule must not shadow the function

    assert imresize_lazy is imresize
    assert esrgan.imageops.imresize is imresize
    assert esrgan.imageops.imresize_torch is imresize_torch


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("scale", [0, -0.5, float("nan"), float("inf")])
def test_bad_scale_is_a_clear_error(scale: float) -> None:
    with pytest.raises(ValueError, match="scale must be a positive finite number"):
        imresize(np.zeros((4, 4), dtype=np.uint8), scale)
    with pytest.raises(ValueError, match="scale must be a positive finite number"):
        imresize_torch(torch.zeros(1, 1, 4, 4), scale)


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"HW or HWC image, got shape \(4,\)"):
        imresize(np.zeros(4), 0.5)
    with pytest.raises(TypeError, match="numpy array"):
        imresize([[1, 2], [3, 4]], 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dtype bool"):
        imresize(np.zeros((4, 4), dtype=bool), 0.5)
    with pytest.raises(ValueError, match="empty image"):
        imresize(np.zeros((0, 4)), 0.5)
    with pytest.raises(TypeError, match=r"float tensor, got dtype torch\.uint8"):
        imresize_torch(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), 0.5)
    with pytest.raises(ValueError, match=r"CHW or NCHW tensor, got shape \(4, 4\)"):
        imresize_torch(torch.zeros(4, 4), 0.5)
