"""MS-SSIM (+ L1), focal frequency, colour and DISTS losses against their reference packages or hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esrgan.losses import (
    PIXEL_LOSSES,
    ColorLoss,
    DISTSLoss,
    FocalFrequencyLoss,
    MSSSIML1Loss,
    MSSSIMLoss,
    build_loss,
    ms_ssim,
)
from esrgan.losses.color import srgb_to_oklab


def _images(natural_image: np.ndarray, size: int = 176, n: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    clean = np.stack([natural_image[50 * i : 50 * i + size, 40 : 40 + size + 8] for i in range(n)])
    noisy = np.clip(clean + rng.normal(0, 15, clean.shape), 0, 255)
    to_t = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).astype(np.float32) / 255)  # noqa: E731
    return to_t(noisy), to_t(clean)


def test_ms_ssim_equals_pytorch_msssim(natural_image):
    ref = pytest.importorskip("pytorch_msssim", reason="pytorch-msssim is the reference")
    x, y = _images(natural_image)
    want = ref.ms_ssim(x, y, data_range=1.0, size_average=False)
    got = ms_ssim(x, y, data_range=1.0)
    assert 0.3 < float(want.min()) < 0.99  # a real comparison, neither identical nor unrelated
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # odd sizes take the padded pooling path; 255-range data too
    x2, y2 = x[..., :171, :175] * 255, y[..., :171, :175] * 255
    torch.testing.assert_close(ms_ssim(x2, y2, data_range=255), ref.ms_ssim(x2, y2, data_range=255,
                                                                          size_average=False), atol=1e-5, rtol=0)
    loss = MSSSIMLoss(loss_weight=2.0)(x, y)
    assert float(loss) == pytest.approx(2 * (1 - float(want.mean())), abs=1e-5)
    mix = MSSSIML1Loss(loss_weight=1.0, alpha=0.84)(x, y)
    assert float(mix) == pytest.approx(0.84 * (1 - float(want.mean())) + 0.16 * float((x - y).abs().mean()), abs=1e-5)


def test_ms_ssim_is_differentiable_and_names_the_smallest_size(natural_image):
    x, y = _images(natural_image, n=1)
    x.requires_grad_(True)
    MSSSIML1Loss()(x, y).backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match=r"at least 161 pixels on each side, got 64x64 \(train on larger crops"):
        MSSSIMLoss()(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"alpha": 0.5, "patch_factor": 2}, {"ave_spectrum": True, "log_matrix": True}, {"batch_matrix": True}],
)
def test_focal_frequency_loss_equals_the_official_package(kwargs, natural_image):
    ffl = pytest.importorskip("focal_frequency_loss", reason="focal-frequency-loss is the reference")
    x, y = _images(natural_image, size=64)
    want = ffl.FocalFrequencyLoss(loss_weight=1.5, **kwargs)(x, y)
    got = FocalFrequencyLoss(loss_weight=1.5, **kwargs)(x, y)
    assert float(want) > 1e-4
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)
    x = x.clone().requires_grad_(True)
    FocalFrequencyLoss(**kwargs)(x, y).backward()
    xr = x.detach().clone().requires_grad_(True)
    ffl.FocalFrequencyLoss(**kwargs)(xr, y).backward()
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-4, atol=1e-9)  # the weight matrix is not differentiated


def test_oklab_of_known_colours():
    # Ottosson's published OKLab values of sRGB red, green, blue and white
    rgb = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]).T.reshape(1, 3, 4, 1)
    lab = srgb_to_oklab(rgb)[0, :, :, 0].T
    want = torch.tensor([[0.627955, 0.224863, 0.125846], [0.866440, -0.233888, 0.179498],
                         [0.452014, -0.032457, -0.311528], [1.0, 0.0, 0.0]])  # fmt: skip
    torch.testing.assert_close(lab, want, atol=2e-4, rtol=0)


def test_color_loss_hand_computed_cases():
    loss = ColorLoss(loss_weight=1.0, block_size=4)
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1
    white = torch.ones(1, 3, 8, 8)
    # a uniform cast: mean |a| and |b| of red against white's zero chroma
    assert float(loss(red, white)) == pytest.approx((0.224863 + 0.125846) / 2, abs=2e-4)
    # brightness alone is not colour: two greys (and a grey ramp against a brighter one) cost nothing
    ramp = torch.linspace(0.05, 0.6, 8).view(1, 1, 1, 8).expand(1, 3, 8, 8)
    assert float(loss(ramp, ramp + 0.3)) == pytest.approx(0.0, abs=1e-6)
    # chroma that averages out within each block is texture, left to the other losses
    green = torch.zeros(1, 3, 8, 8)
    green[:, 1] = 1
    checker = (torch.arange(8).view(8, 1) + torch.arange(8).view(1, 8)) % 2 == 0
    a = torch.where(checker, red, green)
    b = torch.where(checker, green, red)
    assert float((srgb_to_oklab(a) - srgb_to_oklab(b)).abs().mean()) > 0.1  # very different pixel by pixel
    assert float(loss(a, b)) == pytest.approx(0.0, abs=1e-6)
    assert float(ColorLoss(block_size=1)(a, b)) > 0.1
    # finite gradients at black and slightly outside [0, 1]
    x = torch.tensor([0.0, -0.01, 1.02]).view(1, 3, 1, 1).expand(1, 3, 4, 4).clone().requires_grad_(True)
    loss(x, white[..., :4, :4]).backward()
    assert bool(torch.isfinite(x.grad).all())


def test_losses_are_in_the_tables_and_build_from_options():
    assert {"MSSSIMLoss", "MSSSIML1Loss", "FocalFrequencyLoss", "ColorLoss"} <= set(PIXEL_LOSSES)
    assert isinstance(build_loss({"type": "ColorLoss", "block_size": 8}), ColorLoss)
    loss = build_loss({"type": "DISTSLoss", "loss_weight": 0.5, "pretrained": False})
    x, y = torch.rand(2, 3, 32, 32, requires_grad=True), torch.rand(2, 3, 32, 32)
    value, style = loss(x, y)
    assert style is None and value.ndim == 0
    value.backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert float(loss.loss_weight * loss.dists(y, y).mean()) == pytest.approx(0.0, abs=1e-5)
    assert isinstance(loss, DISTSLoss)


@pytest.fixture
def vgg16_cache(tmp_path, monkeypatch):
    """A (random) torchvision VGG16 file where torchvision's cache keeps the ImageNet one: nothing downloads."""
    from torchvision.models.vgg import cfgs, make_layers

    from esrgan.metrics.lpips_metric import backbone_weights_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    torch.manual_seed(5)
    path = backbone_weights_path("vgg")
    path.parent.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}, path)
    return path


@pytest.mark.slow
def test_trains_with_the_new_losses_and_validates_with_dists(tmp_path, vgg16_cache):
    from tiny_training import make_tiny_data, tiny_options_dict

    from esrgan.options import options_from_dict
    from esrgan.training.trainer import Trainer

    data = make_tiny_data(tmp_path / "data", n_train=4, n_val=1)
    for pixel in ({"type": "FocalFrequencyLoss", "loss_weight": 1.0}, {"type": "ColorLoss", "block_size": 4}):
        opt = tiny_options_dict(data, tmp_path / "exp", gan=True, total_iter=2, name=f"t_{pixel['type']}")
        opt["train"]["pixel_opt"] = pixel
        opt["train"]["perceptual_opt"] = {"type": "DISTSLoss", "loss_weight": 1.0}  # the cached (random) VGG16
        opt["val"]["metrics"]["dists"] = {"type": "dists"}
        trainer = Trainer(options_from_dict(opt), interactive=False)
        assert trainer.run() == 0
        log = next((tmp_path / "exp" / f"t_{pixel['type']}").glob("train_*.log")).read_text()
        assert "l_g_percep" in log and "dists:" in log


def test_ms_ssim_refuses_crops_it_cannot_take(tmp_path):
    from tiny_training import tiny_options_dict

    from esrgan.options import OptionsError, options_from_dict

    opt = tiny_options_dict(tmp_path, tmp_path, gt_size=128)
    opt["train"]["pixel_opt"] = {"type": "MSSSIML1Loss", "alpha": 0.1}
    with pytest.raises(OptionsError, match=r"datasets\.train\.gt_size: 128 is too small for MSSSIML1Loss: .* at least "
                                           r"161 pixels"):  # fmt: skip
        options_from_dict(opt)
