"""LPIPS v0.1 equals the ``lpips`` package (test-only dependency) with generated backbone weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esrgan.archs.vgg import VGGWeightsNotFoundError
from esrgan.metrics import lpips
from esrgan.metrics.lpips_metric import LPIPS, backbone_weights_path, lpips_torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:torchvision.*")
lpips_pkg = pytest.importorskip("lpips", reason="the lpips package is the reference (pip install lpips)")


def _reference(net: str, monkeypatch: pytest.MonkeyPatch | None = None) -> torch.nn.Module:
    """The lpips package's model with a random (seeded) torchvision backbone: nothing is downloaded."""
    if net == "vgg" and monkeypatch is not None:
        # torchvision's own VGG16 feature builder, without the 120M-parameter classifier the package
        # would initialise and drop (seconds on a busy 2-core machine).
        from types import SimpleNamespace

        from torchvision.models.vgg import cfgs, make_layers

        monkeypatch.setattr(lpips_pkg.pretrained_networks.tv, "vgg16",
                            lambda **kw: SimpleNamespace(features=make_layers(cfgs["D"])))
    torch.manual_seed({"alex": 1, "vgg": 2}[net])
    return lpips_pkg.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False).eval()


def _place_backbone(ref: torch.nn.Module, net: str) -> None:
    """Write the reference's backbone as torchvision's cache file (``features.<i>``) under TORCH_HOME."""
    sd = {}
    for k, v in ref.net.state_dict().items():
        _, idx, param = k.split(".")  # slice<k>.<features index>.<weight|bias>
        sd[f"features.{idx}.{param}"] = v.clone()
    path = backbone_weights_path(net)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    return tmp_path / "torch"


def _pair(natural_image, size=96, seed=0):
    rng = np.random.default_rng(seed)
    img = natural_image[100 : 100 + size, 150 : 150 + size + 8]
    noisy = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    return noisy, img


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_lpips_package(net, torch_home, natural_image, monkeypatch):
    ref_model = _reference(net, monkeypatch)
    _place_backbone(ref_model, net)
    noisy, clean = _pair(natural_image)
    to_t = lambda a: torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32) / 255)[None]  # noqa: E731
    with torch.no_grad():
        want = float(ref_model(to_t(noisy), to_t(clean), normalize=True).flatten()[0])
    got = lpips(noisy, clean, net=net)
    assert want > 1e-3  # a real distance, not a degenerate zero
    # 1e-4 absolute as asked, and relative too: random backbones give small distances
    assert got == pytest.approx(want, abs=1e-4, rel=1e-4)
    # batched torch module: one value per image, the same as the per-image numpy call
    other, _ = _pair(natural_image, seed=1)
    batch = torch.cat([to_t(noisy), to_t(other)])
    refs = torch.cat([to_t(clean), to_t(clean)])
    with torch.no_grad():
        want_b = ref_model(batch, refs, normalize=True).flatten()
    np.testing.assert_allclose(lpips_torch(batch, refs, net=net).numpy(), want_b.numpy(), atol=1e-4, rtol=1e-4)


def test_lpips_identical_is_zero_and_grey_replicated(torch_home, natural_image):
    _place_backbone(_reference("alex"), "alex")
    noisy, clean = _pair(natural_image)
    assert lpips(clean, clean) == pytest.approx(0.0, abs=1e-7)
    grey = clean[:, :, 1]
    assert lpips(noisy[:, :, 1], grey) == pytest.approx(lpips(np.repeat(noisy[:, :, 1:2], 3, 2),
                                                              np.repeat(grey[:, :, None], 3, 2)), abs=1e-6)
    assert lpips(noisy.astype(np.uint16) * 257, clean.astype(np.uint16) * 257) == pytest.approx(
        lpips(noisy, clean), abs=1e-6)
    # crop_border removes the same pixels from both
    assert lpips(noisy, clean, crop_border=4) == pytest.approx(lpips(noisy[4:-4, 4:-4], clean[4:-4, 4:-4]), abs=1e-6)


def test_lpips_missing_backbone_is_one_clear_error(torch_home, natural_image):
    noisy, clean = _pair(natural_image)
    with pytest.raises(VGGWeightsNotFoundError) as err:
        lpips(noisy, clean, net="alex")
    msg = str(err.value)
    assert "LPIPS(net='alex')" in msg and "alexnet-owt-7be5be79.pth" in msg
    assert str(torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in msg


def test_lpips_bad_input(torch_home, natural_image):
    noisy, clean = _pair(natural_image)
    with pytest.raises(ValueError, match=r"image shape \(96, 104, 3\) does not match reference shape \(90, 104, 3\)"):
        lpips(noisy, clean[:90])
    with pytest.raises(ValueError, match="net must be one of alex, vgg"):
        lpips(noisy, clean, net="squeeze")


def test_lpips_module_state_dict_keys():
    m = LPIPS("alex", backbone=False)
    keys = set(m.state_dict())
    assert {"features.0.weight", "features.10.bias", "lins.0.weight", "lins.4.weight"} <= keys
    assert m.lins[0].weight.shape == (1, 64, 1, 1) and float(m.lins[0].weight.abs().sum()) > 0
