"""Real-ESRGAN degradations: kernels against their closed forms, ops and the whole pipeline against BasicSR 1.4.2.

BasicSR's outputs are recorded in ``tests/fixtures/realesrgan/basicsr_1.4.2.npz`` by
``tests/fixtures/realesrgan/record_basicsr.py`` (same seeds, same inputs); BasicSR itself is not needed here.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from esrgan.data.degradations import (
    BlurRound,
    DegradationRNG,
    DegradationSettings,
    DiffJPEG,
    NoiseRound,
    USMSharp,
    degrade,
    draw_sample_kernels,
    filter2d,
    paired_random_crop,
)
from esrgan.data.degradations import kernels as K
from esrgan.data.degradations.noise import random_gaussian_noise, random_poisson_noise
from esrgan.data.degradations.pair_queue import TrainingPairQueue

FIXTURE = Path(__file__).parent / "fixtures" / "realesrgan" / "basicsr_1.4.2.npz"
KINDS = list(K.KERNEL_TYPES)


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {k: data[k] for k in data.files}


def _rngs(seed: int) -> tuple[random.Random, np.random.RandomState]:
    return random.Random(seed), np.random.RandomState(seed)


# ---- closed forms ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [7, 21])
def test_isotropic_gaussian_is_the_sampled_normal_density(size):
    k = K.gaussian_kernel(size, 1.7)
    assert k.shape == (size, size)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    r = np.arange(size) - size // 2
    expected = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.7**2))
    np.testing.assert_allclose(k, expected / expected.sum(), rtol=1e-12)
    # radial symmetry: every flip and the transpose leave it unchanged
    for view in (k[::-1], k[:, ::-1], k.T):
        np.testing.assert_allclose(view, k, atol=1e-15)
    assert k.argmax() == (size * size) // 2


def test_anisotropic_gaussian_has_the_requested_covariance():
    sig_x, sig_y, theta = 4.0, 1.5, 0.6
    k = K.gaussian_kernel(41, sig_x, sig_y, theta, isotropic=False)
    grid = K.mesh_grid(41)
    d = grid.reshape(-1, 2)
    w = k.reshape(-1)
    mean = w @ d
    cov = (d * w[:, None]).T @ d - np.outer(mean, mean)
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    expected = rot @ np.diag([sig_x**2, sig_y**2]) @ rot.T
    np.testing.assert_allclose(mean, 0, atol=1e-12)
    # a 41-pixel window truncates tails beyond 5 sigma: the moments match to well under 1%
    np.testing.assert_allclose(cov, expected, rtol=5e-3, atol=5e-3)
    # point symmetry (a Gaussian is even), but not mirror-symmetric when rotated
    np.testing.assert_allclose(k[::-1, ::-1], k, atol=1e-15)
    assert np.abs(k[::-1] - k).max() > 1e-4


def test_generalized_gaussian_and_plateau_closed_forms():
    size, sig, beta = 15, 2.0, 2.5
    r2 = (np.arange(size) - size // 2) ** 2
    q = (r2[:, None] + r2[None, :]) / sig**2
    g = K.generalized_gaussian_kernel(size, sig, None, 0.0, beta)
    np.testing.assert_allclose(g, np.exp(-0.5 * q**beta) / np.exp(-0.5 * q**beta).sum(), rtol=1e-12)
    p = K.plateau_kernel(size, sig, None, 0.0, beta)
    np.testing.assert_allclose(p, (1 / (1 + q**beta)) / (1 / (1 + q**beta)).sum(), rtol=1e-12)
    # beta = 1 is the plain Gaussian
    np.testing.assert_allclose(K.generalized_gaussian_kernel(size, sig, None, 0, 1.0), K.gaussian_kernel(size, sig),
                               rtol=1e-12)
    for k in (g, p):
        assert k.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(k, k.T, atol=1e-15)


def test_circular_lowpass_is_the_truncated_airy_pattern():
    from scipy import special

    cutoff, size = 1.3, 21
    k = K.circular_lowpass_kernel(cutoff, size)
    r = np.hypot(*np.meshgrid(np.arange(size) - 10.0, np.arange(size) - 10.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        h = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    h[10, 10] = cutoff**2 / (4 * np.pi)
    np.testing.assert_allclose(k, h / h.sum(), rtol=1e-12)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    assert (k < 0).any()  # the side lobes that make ringing
    padded = K.circular_lowpass_kernel(cutoff, 7, pad_to=21)
    assert padded.shape == (21, 21) and padded[:7].sum() == 0 and padded[7:14, 7:14].sum() == pytest.approx(1.0)


def test_even_kernel_sizes_are_refused():
    with pytest.raises(ValueError, match="odd"):
        K.gaussian_kernel(8, 1.0)
    with pytest.raises(ValueError, match="odd"):
        filter2d(torch.zeros(1, 3, 16, 16), torch.zeros(1, 4, 4))


# ---- equal to BasicSR 1.4.2 (recorded) --------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_random_kernels_equal_basicsr(ref, kind):
    for s, size in ((0, 21), (1, 11)):
        py, nr = _rngs(s)
        k = K.random_mixed_kernel([kind], [1], size, (0.2, 3), (0.2, 3), (-math.pi, math.pi), (0.5, 4), (1, 2),
                                  py_rng=py, np_rng=nr)
        np.testing.assert_allclose(k, ref[f"mixed/{kind}/{s}/{size}"], rtol=0, atol=1e-12)
    py, nr = _rngs(2)
    k = K.random_mixed_kernel(["iso"], [1], 21, (0.2, 3), (0.2, 3), (-math.pi, math.pi), (0.5, 4), (1, 2),
                              noise_range=(0.75, 1.25), py_rng=py, np_rng=nr)
    np.testing.assert_allclose(k, ref["mixed/iso_noise/2/21"], atol=1e-12)


def test_sinc_kernels_equal_basicsr(ref):
    for cutoff, size, pad in ((math.pi / 3, 21, 0), (2.0, 7, 21), (math.pi, 13, 0)):
        np.testing.assert_allclose(K.circular_lowpass_kernel(cutoff, size, pad), ref[f"sinc/{cutoff:.6f}/{size}/{pad}"],
                                   atol=1e-12)


def test_sample_kernels_equal_basicsr_dataset(ref):
    kinds = KINDS
    first = BlurRound(21, kinds, (0.45, 0.25, 0.12, 0.03, 0.12, 0.03), 0.1, (0.2, 3), (0.5, 4), (1, 2))
    second = BlurRound(21, kinds, (0.45, 0.25, 0.12, 0.03, 0.12, 0.03), 0.1, (0.2, 1.5), (0.5, 4), (1, 2))
    for s in range(8):
        py, nr = _rngs(s)
        k1, k2, sinc = draw_sample_kernels(first, second, 0.8, py, nr)
        for name, ours in (("kernel1", k1), ("kernel2", k2), ("sinc_kernel", sinc)):
            assert ours.shape == (21, 21)
            np.testing.assert_allclose(ours.astype(np.float32), ref[f"dataset/{s}/{name}"], atol=1e-7)


def _ops_input(ref) -> torch.Tensor:
    return torch.from_numpy(ref["ops/input"]).permute(0, 3, 1, 2).float().contiguous() / 255


def test_filter2d_and_usm_equal_basicsr(ref):
    img = _ops_input(ref)
    kernels = torch.from_numpy(np.stack([ref["mixed/aniso/0/21"], ref["mixed/plateau_iso/0/21"]])).float()
    np.testing.assert_allclose(filter2d(img, kernels).numpy(), ref["ops/filter_per_image"], atol=1e-5)
    np.testing.assert_allclose(filter2d(img, kernels[:1]).numpy(), ref["ops/filter_shared"], atol=1e-5)
    np.testing.assert_allclose(USMSharp()(img).numpy(), ref["ops/usm"], atol=1e-5)


@pytest.mark.parametrize(("s", "gray"), [(3, 0.5), (4, 0.0), (5, 1.0)])
def test_noise_equals_basicsr(ref, s, gray):
    img = _ops_input(ref)
    g = torch.Generator().manual_seed(s)
    np.testing.assert_allclose(random_gaussian_noise(img, (1, 30), gray, g).numpy(), ref[f"ops/gaussian/{s}/{gray}"],
                               atol=1e-5)
    g = torch.Generator().manual_seed(s)
    np.testing.assert_allclose(random_poisson_noise(img, (0.05, 3), gray, g).numpy(), ref[f"ops/poisson/{s}/{gray}"],
                               atol=1e-5)


def _jpeg_close(ours: np.ndarray, theirs: np.ndarray) -> None:
    # Equal up to the rounding of quantised DCT coefficients: a coefficient within float error of
    # .5 may round the other way, which shifts its 8x8 (16x16 for chroma) block by a few levels.
    diff = np.abs(ours - theirs)
    assert diff.mean() < 1e-4
    assert (diff > 1e-5).mean() < 0.02
    assert diff.max() < 8 / 255


def test_jpeg_equals_basicsr_within_rounding(ref):
    img = _ops_input(ref)
    _jpeg_close(DiffJPEG()(img, torch.tensor([30.0, 75.0])).numpy(), ref["ops/jpeg/30_75"])
    _jpeg_close(DiffJPEG(differentiable=True)(img, torch.tensor([50.0, 90.0])).numpy(), ref["ops/jpeg_diff/50_90"])


def test_jpeg_quality_orders_the_error_and_gradients_flow():
    from skimage import data

    img = torch.from_numpy(data.astronaut()[:64, :64].copy()).permute(2, 0, 1)[None].float() / 255
    errs = [float((DiffJPEG()(img, q) - img).abs().mean()) for q in (10, 50, 95)]
    assert errs[0] > errs[1] > errs[2] > 0
    x = img.clone().requires_grad_(True)
    DiffJPEG(differentiable=True)(x, 50).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


MODEL_SETTINGS = DegradationSettings(
    scale=4,
    first=NoiseRound((0.2, 0.7, 0.1), (0.15, 1.5), 0.5, (1, 30), (0.05, 3), 0.4, (30, 95)),
    second=NoiseRound((0.3, 0.4, 0.3), (0.7, 1.2), 0.5, (1, 25), (0.05, 2.5), 0.4, (30, 95)),
    second_blur_prob=0.8,
)


@pytest.mark.parametrize("s", [10, 11])
def test_pipeline_and_queue_equal_basicsr(ref, s):
    """BasicSR's RealESRGANModel.feed_data, three batches (the third comes out of the pair queue)."""
    gt = torch.from_numpy(ref["pipeline/gt"]).permute(0, 3, 1, 2).float().contiguous() / 255
    kernels = [torch.from_numpy(np.stack([ref[f"dataset/{i}/{k}"] for i in (0, 1)]))
               for k in ("kernel1", "kernel2", "sinc_kernel")]
    rng = DegradationRNG(s)
    usm, jpeg, queue = USMSharp(), DiffJPEG(), TrainingPairQueue(4)
    for step in range(3):
        gt_usm = usm(gt)
        lq = degrade(gt_usm, *kernels, MODEL_SETTINGS, rng, jpeg)
        (gt_crop, _), lq = paired_random_crop([gt, gt_usm], lq, 64, 4, rng)
        lq, gt_crop = queue(lq, gt_crop, rng.torch)
        np.testing.assert_array_equal(np.round(gt_crop.numpy() * 255).astype(np.uint8), ref[f"pipeline/{s}/{step}/gt"])
        theirs = ref[f"pipeline/{s}/{step}/lq"].astype(np.int16)
        ours = np.round(lq.numpy() * 255).astype(np.int16)
        diff = np.abs(ours - theirs)
        # 8-bit LR: equal but for pixels where a JPEG coefficient rounded the other way
        assert (diff > 0).mean() < 0.01, f"step {step}: {(diff > 0).mean():.3%} of LR values differ"
        assert diff.max() <= 8


def test_a_generator_state_from_the_other_device_type_reseeds_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # A Real-ESRGAN state saved on a GPU holds a CUDA generator's state (16 bytes: seed and offset); resumed on
    # the CPU (or the reverse) it cannot be set: Python's and NumPy's streams are restored, torch's reseeded.
    saved = DegradationRNG(3).state_dict()
    saved["torch"] = torch.tensor([7, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0], dtype=torch.uint8)
    first, second = DegradationRNG(5), DegradationRNG(9)
    with caplog.at_level("WARNING", logger="esrgan.data.degradations"):
        first.load_state_dict(saved)
    assert "saved on another device type (16 bytes; this cpu generator's holds 5056)" in caplog.text
    second.load_state_dict(saved)
    reference = DegradationRNG(3)
    assert first.py.random() == second.py.random() == reference.py.random()  # restored as saved
    assert first.np.uniform() == second.np.uniform() == reference.np.uniform()
    # reseeded from the saved state: two resumes agree, and the stream is not the fresh one of either seed
    drawn = torch.rand(4, generator=first.torch)
    assert torch.equal(drawn, torch.rand(4, generator=second.torch))
    assert not torch.equal(drawn, torch.rand(4, generator=DegradationRNG(5).torch))
