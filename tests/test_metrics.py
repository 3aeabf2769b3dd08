"""PSNR / SSIM: hand-computed cases, scikit-image, the published bicubic figures, numpy vs batched torch."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import esrgan.metrics
from esrgan.data.image import img2tensor, imread, mod_crop
from esrgan.imageops.imresize import imresize
from esrgan.metrics import METRICS, METRICS_TORCH, get_metric, psnr, psnr_torch, ssim, ssim_torch
from esrgan.metrics.psnr_ssim import _ssim_map, gaussian_window


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A natural 96x80 RGB crop and a degraded copy (blur by down/up-sampling plus noise)."""
    from skimage import data

    ref = np.ascontiguousarray(data.astronaut()[100:196, 160:240])
    rng = np.random.default_rng(3)
    blurred = imresize(imresize(ref, 0.5), 2.0).astype(np.float64)
    img = np.clip(np.round(blurred + rng.normal(0, 4, ref.shape)), 0, 255).astype(np.uint8)
    return img, ref


def _sk_ssim(img: np.ndarray, ref: np.ndarray) -> float:
    return structural_similarity(
        ref,
        img,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=2 if img.ndim == 3 else None,
    )


# ---------------------------------------------------------------- hand-computed cases


def test_identical_images_give_inf_psnr_and_ssim_one(pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, ref = pair
    assert psnr(ref, ref) == math.inf
    assert psnr(ref, ref.copy(), crop_border=4, y_channel=True) == math.inf
    assert ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)
    assert torch.isinf(psnr_torch(img2tensor(ref)[None], img2tensor(ref)[None])).all()


@pytest.mark.parametrize("offset", [1, 5, 17])
def test_constant_offset_gives_known_psnr(pair: tuple[np.ndarray, np.ndarray], offset: int) -> None:
    _, ref = pair
    ref = np.clip(ref, 20, 230)  # no clipping when the offset is added
    img = ref.astype(np.float64) + offset
    assert psnr(img, ref) == pytest.approx(20 * math.log10(255 / offset), abs=1e-12)
    # On Y the offset shrinks by (65.481 + 128.553 + 24.966) / 255 = 219 / 255.
    assert psnr(img, ref, y_channel=True) == pytest.approx(20 * math.log10(255 / (offset * 219 / 255)), abs=1e-10)


def test_psnr_by_hand_on_tiny_arrays() -> None:
    ref = np.zeros((2, 2), dtype=np.uint8)
    img = np.array([[0, 0], [0, 10]], dtype=np.uint8)  # uint8: no wrap-around in the difference
    assert psnr(img, ref) == pytest.approx(10 * math.log10(255**2 / 25.0), abs=1e-12)
    assert psnr(ref, img) == pytest.approx(10 * math.log10(255**2 / 25.0), abs=1e-12)


def test_ssim_of_constant_images_by_hand() -> None:
    # No variance: SSIM reduces to the luminance term (2xy + C1) / (x^2 + y^2 + C1), C1 = (0.01 * 255)^2.
    a = np.full((16, 16), 100.0)
    b = np.full((16, 16), 110.0)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), abs=1e-12)


def test_ssim_of_contrast_scaled_image_by_hand() -> None:
    # b = 2a - m with equal means m: luminance term 1, structure 1, contrast (2*s*2s + C2) / (s^2 + 4s^2 + C2)
    # where s^2 is the local (Gaussian-weighted) variance; check the formula on the map directly.
    rng = np.random.default_rng(0)
    a = rng.normal(128, 10, (24, 24))
    b = 2 * a - a.mean()
    g = np.outer(gaussian_window(), gaussian_window())
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    expected = []
    for i in range(24 - 10):
        for j in range(24 - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (g * pa).sum(), (g * pb).sum()
            va, vb = (g * pa * pa).sum() - ma**2, (g * pb * pb).sum() - mb**2
            cov = (g * pa * pb).sum() - ma * mb
            expected.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    assert ssim(a, b) == pytest.approx(np.mean(expected), abs=1e-12)


def test_gaussian_window_is_fspecial() -> None:
    # MATLAB fspecial('gaussian', 11, 1.5): exp(-(x^2 + y^2) / (2 sigma^2)) normalised to sum 1.
    x = np.arange(-5, 6)
    h = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    np.testing.assert_allclose(np.outer(gaussian_window(), gaussian_window()), h / h.sum(), rtol=1e-14, atol=0)
    assert gaussian_window()[5] == pytest.approx(0.266011724, abs=1e-9)  # centre tap of the 1-D window


def test_crop_border_removes_edge_differences(pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, ref = pair
    img = ref.copy()
    img[:3] = 0
    img[:, -3:] = 255
    assert psnr(img, ref) < 30
    assert psnr(img, ref, crop_border=3) == math.inf
    assert psnr(img, ref, crop_border=2) < 40
    assert ssim(img, ref, crop_border=3) == pytest.approx(1.0, abs=1e-12)
    # Same as cropping by hand.
    noisy = np.clip(ref.astype(int) + np.random.default_rng(1).integers(-9, 10, ref.shape), 0, 255).astype(np.uint8)
    assert psnr(noisy, ref, crop_border=4) == pytest.approx(psnr(noisy[4:-4, 4:-4], ref[4:-4, 4:-4]), abs=1e-12)
    assert ssim(noisy, ref, crop_border=4) == pytest.approx(ssim(noisy[4:-4, 4:-4], ref[4:-4, 4:-4]), abs=1e-12)


def test_single_channel_scored_on_its_own_values(pair: tuple[np.ndarray, np.ndarray]) -> None:
    img, ref = pair
    grey, grey_ref = img[:, :, 1], ref[:, :, 1]
    expected = 10 * math.log10(255**2 / np.mean((grey.astype(float) - grey_ref) ** 2))
    assert psnr(grey, grey_ref) == pytest.approx(expected, abs=1e-12)
    assert psnr(grey, grey_ref, y_channel=True) == psnr(grey, grey_ref)
    assert psnr(grey[:, :, None], grey_ref[:, :, None], y_channel=True) == psnr(grey, grey_ref)
    assert ssim(grey, grey_ref, y_channel=True) == ssim(grey, grey_ref)


def test_rgb_ssim_is_mean_of_channels(pair: tuple[np.ndarray, np.ndarray]) -> None:
    img, ref = pair
    per_channel = [ssim(img[:, :, c], ref[:, :, c]) for c in range(3)]
    assert ssim(img, ref) == pytest.approx(np.mean(per_channel), abs=1e-14)


def test_y_channel_uses_matlab_rgb2ycbcr_unrounded(pair: tuple[np.ndarray, np.ndarray]) -> None:
    img, ref = pair

    def y(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64) / 255
        return 16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]

    assert psnr(img, ref, y_channel=True) == pytest.approx(psnr(y(img), y(ref)), abs=1e-10)
    assert ssim(img, ref, y_channel=True) == pytest.approx(ssim(y(img), y(ref)), abs=1e-12)
    # Rounding Y to integers (as some scripts wrongly do) would change the figure measurably.
    assert abs(psnr(np.round(y(img)), np.round(y(ref))) - psnr(img, ref, y_channel=True)) > 1e-3


def test_uint8_and_float_inputs_agree(pair: tuple[np.ndarray, np.ndarray]) -> None:
    img, ref = pair
    assert psnr(img, ref) == psnr(img.astype(np.float32), ref.astype(np.float64))
    assert ssim(img, ref, y_channel=True) == ssim(img.astype(np.float64), ref.astype(np.float32), y_channel=True)


# ---------------------------------------------------------------- scikit-image


def test_psnr_matches_scikit_image(pair: tuple[np.ndarray, np.ndarray]) -> None:
    img, ref = pair
    assert psnr(img, ref) == pytest.approx(peak_signal_noise_ratio(ref, img, data_range=255), abs=1e-10)
    assert psnr(img[:, :, 0], ref[:, :, 0]) == pytest.approx(
        peak_signal_noise_ratio(ref[:, :, 0], img[:, :, 0], data_range=255), abs=1e-10
    )


def test_ssim_matches_scikit_image(pair: tuple[np.ndarray, np.ndarray]) -> None:
    img, ref = pair
    # scikit-image's mean SSIM is taken over the interior where the 11x11 window fits: our 'valid' region.
    assert ssim(img, ref) == pytest.approx(_sk_ssim(img, ref), abs=1e-10)
    assert ssim(img[:, :, 2], ref[:, :, 2]) == pytest.approx(_sk_ssim(img[:, :, 2], ref[:, :, 2]), abs=1e-10)
    # And map for map, on the region where both are defined.
    _, full = structural_similarity(
        ref[:, :, 0].astype(np.float64),
        img[:, :, 0].astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        full=True,
    )
    ours = _ssim_map(img[:, :, 0].astype(np.float64), ref[:, :, 0].astype(np.float64))
    np.testing.assert_allclose(ours, full[5:-5, 5:-5], rtol=0, atol=1e-10)


# ---------------------------------------------------------------- published figures


def _bicubic_scores(root: Path, name: str) -> tuple[float, float]:
    psnrs, ssims = [], []
    for hr_path in sorted((root / name / "HR").glob("*.png")):
        hr = mod_crop(imread(hr_path), 4)
        sr = imresize(imread(root / name / "LR_bicubic" / "X4" / f"{hr_path.stem}x4.png"), 4)
        assert sr.shape == hr.shape, hr_path.name
        psnrs.append(psnr(sr, hr, crop_border=4, y_channel=True))
        ssims.append(ssim(sr, hr, crop_border=4, y_channel=True))
    return float(np.mean(psnrs)), float(np.mean(ssims))


@pytest.mark.parametrize(
    ("name", "count", "exp_psnr", "exp_ssim"), [("Set5", 5, 28.43, 0.8111), ("Set14", 14, 25.99, 0.7029)]
)
def test_bicubic_x4_known_figures(shared_data: Path, name: str, count: int, exp_psnr: float, exp_ssim: float) -> None:
    # Published: Set5 28.42 dB / 0.8104, Set14 26.00 dB / 0.7027 (bridge.png, grey, scored on its own values).
    assert len(list((shared_data / name / "HR").glob("*.png"))) == count
    mean_psnr, mean_ssim = _bicubic_scores(shared_data, name)
    assert mean_psnr == pytest.approx(exp_psnr, abs=0.02)
    assert mean_ssim == pytest.approx(exp_ssim, abs=0.002)


# ---------------------------------------------------------------- batched torch


def _batch(pair: tuple[np.ndarray, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    img, ref = pair
    rng = np.random.default_rng(7)
    imgs = [img, np.clip(ref.astype(int) + rng.integers(-30, 31, ref.shape), 0, 255).astype(np.uint8), ref[::-1]]
    refs = [ref, ref, ref]
    return imgs, refs


@pytest.mark.parametrize(("crop_border", "y_channel"), [(0, False), (4, True), (3, False), (0, True)])
def test_torch_agrees_with_numpy(pair: tuple[np.ndarray, np.ndarray], crop_border: int, y_channel: bool) -> None:
    imgs, refs = _batch(pair)
    sr = torch.stack([img2tensor(x) for x in imgs])
    hr = torch.stack([img2tensor(x) for x in refs])
    p = psnr_torch(sr, hr, crop_border=crop_border, y_channel=y_channel)
    s = ssim_torch(sr, hr, crop_border=crop_border, y_channel=y_channel)
    assert p.shape == s.shape == (3,)
    for i in range(3):
        assert p[i].item() == pytest.approx(psnr(imgs[i], refs[i], crop_border, y_channel), abs=1e-4)
        assert s[i].item() == pytest.approx(ssim(imgs[i], refs[i], crop_border, y_channel), abs=1e-5)


def test_torch_single_channel_and_chw_input(pair: tuple[np.ndarray, np.ndarray]) -> None:
    img, ref = pair
    sr, hr = img2tensor(img[:, :, 0])[None], img2tensor(ref[:, :, 0])[None]
    assert sr.shape[1] == 1
    assert psnr_torch(sr, hr, y_channel=True).item() == pytest.approx(psnr(img[:, :, 0], ref[:, :, 0]), abs=1e-4)
    assert ssim_torch(sr, hr, 2, True).item() == pytest.approx(ssim(img[:, :, 0], ref[:, :, 0], 2), abs=1e-5)
    chw = ssim_torch(img2tensor(img), img2tensor(ref))
    assert chw.shape == (1,)
    assert chw.item() == pytest.approx(ssim(img, ref), abs=1e-5)


def test_torch_does_not_track_gradients_and_accepts_other_dtypes(pair: tuple[np.ndarray, np.ndarray]) -> None:
    img, ref = pair
    sr = img2tensor(img)[None].requires_grad_(True)
    hr = img2tensor(ref)[None].double()
    out = psnr_torch(sr, hr)
    assert not out.requires_grad
    assert out.dtype == torch.float64
    assert out.item() == pytest.approx(psnr(img, ref), abs=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_on_cuda_agrees_with_numpy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    imgs, refs = _batch(pair)
    sr = torch.stack([img2tensor(x) for x in imgs]).cuda()
    hr = torch.stack([img2tensor(x) for x in refs])  # on the CPU: moved to sr's device
    p, s = psnr_torch(sr, hr, 4, True).cpu(), ssim_torch(sr, hr, 4, True).cpu()
    for i in range(3):
        assert p[i].item() == pytest.approx(psnr(imgs[i], refs[i], 4, True), abs=1e-4)
        assert s[i].item() == pytest.approx(ssim(imgs[i], refs[i], 4, True), abs=1e-5)


# ---------------------------------------------------------------- lookup and errors


def test_metric_lookup_by_option_type() -> None:
    assert get_metric("calculate_psnr") is psnr
    assert get_metric("SSIM") is ssim
    assert get_metric("psnr", batched=True) is psnr_torch
    assert set(METRICS) == set(METRICS_TORCH)
    assert esrgan.metrics.ssim_torch is ssim_torch
    with pytest.raises(ValueError, match=r"unknown metric type 'fid'; known types: psnr, ssim, niqe, lpips, dists, "):
        get_metric("fid")


def test_metric_table_directions_and_references() -> None:
    from esrgan.metrics import METRIC_TABLE, metric_info, parse_metric_list

    assert {k: (m.higher_is_better, m.needs_reference) for k, m in METRIC_TABLE.items() if "_" not in k} == {
        "psnr": (True, True), "ssim": (True, True), "niqe": (False, False), "lpips": (False, True),
        "dists": (False, True)}
    assert metric_info("calculate_niqe") is metric_info("NIQE")
    assert metric_info("calculate_lpips").direction == "lower is better"
    assert parse_metric_list("psnr, SSIM,calculate_niqe,niqe,lpips") == ["psnr", "ssim", "niqe", "lpips"]
    with pytest.raises(ValueError, match="unknown metric type 'brisque'; known types: psnr, ssim, niqe, lpips"):
        parse_metric_list("psnr,brisque")


def test_niqe_torch_scores_the_8bit_image(natural_image) -> None:
    from esrgan.metrics import niqe, niqe_torch

    imgs = [natural_image[:200, :200], natural_image[100:300, 50:250]]
    batch = torch.stack([img2tensor(x) for x in imgs])
    got = niqe_torch(batch, None, crop_border=4)
    assert got.shape == (2,)
    for i, img in enumerate(imgs):
        assert float(got[i]) == pytest.approx(niqe(img, crop_border=4), abs=1e-9)


def test_shape_mismatch_names_both_shapes() -> None:
    a, b = np.zeros((16, 16, 3)), np.zeros((16, 17, 3))
    with pytest.raises(
        ValueError, match=r"psnr: image shape \(16, 16, 3\) does not match reference shape \(16, 17, 3\)"
    ):
        psnr(a, b)
    with pytest.raises(ValueError, match=r"ssim: image shape \(16, 16, 3\) does not match reference shape"):
        ssim(a, b)
    with pytest.raises(ValueError, match=r"sr shape \(1, 3, 16, 16\) does not match hr shape \(1, 3, 16, 17\)"):
        psnr_torch(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 17))
    with pytest.raises(ValueError, match=r"sr shape \(2, 3, 16, 16\) does not match hr shape \(1, 3, 16, 16\)"):
        ssim_torch(torch.zeros(2, 3, 16, 16), torch.zeros(1, 3, 16, 16))


def test_other_bad_inputs() -> None:
    img = np.zeros((16, 16, 3))
    with pytest.raises(ValueError, match="crop_border=8 leaves nothing"):
        psnr(img, img, crop_border=8)
    with pytest.raises(ValueError, match="crop_border must be a non-negative integer, got -1"):
        ssim(img, img, crop_border=-1)
    with pytest.raises(ValueError, match=r"smaller than the 11x11 window"):
        ssim(img, img, crop_border=3)
    with pytest.raises(ValueError, match=r"y_channel needs an RGB"):
        psnr(np.zeros((16, 16, 4)), np.zeros((16, 16, 4)), y_channel=True)
    with pytest.raises(ValueError, match=r"HW or HWC array, got shape \(16,\)"):
        psnr(np.zeros(16), np.zeros(16))
    with pytest.raises(TypeError, match="reference must be a numpy array"):
        psnr(img, [[0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"y_channel needs RGB \(N3HW\)"):
        psnr_torch(torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16), y_channel=True)
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim_torch(torch.zeros(1, 3, 10, 16), torch.zeros(1, 3, 10, 16))
