"""DISTS equals the ``dists-pytorch`` package (test-only dependency) with generated backbone weights."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from esrgan.metrics import METRIC_TABLE, dists, dists_torch, parse_metric_list
from esrgan.metrics.lpips_metric import backbone_weights_path

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:torchvision.*")
dists_pkg = pytest.importorskip("DISTS_pytorch.DISTS_pt", reason="the dists-pytorch package is the reference")


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    return tmp_path / "torch"


@pytest.fixture
def reference(torch_home, monkeypatch) -> torch.nn.Module:
    """The package's DISTS with a random (seeded) torchvision VGG16, written where torchvision's cache keeps
    the ImageNet file: both implementations read the same backbone, and nothing is downloaded."""
    from torchvision.models.vgg import cfgs, make_layers

    if not (Path(sys.prefix) / "weights.pt").is_file():
        pytest.skip("dists-pytorch installs its alpha/beta weights as sys.prefix/weights.pt; not found")
    torch.manual_seed(3)
    features = make_layers(cfgs["D"])
    # The package builds torchvision's vgg16(pretrained=True) and keeps its ``features``.
    monkeypatch.setattr(dists_pkg.models, "vgg16", lambda **kw: SimpleNamespace(features=features))
    ref = dists_pkg.DISTS().eval()
    sd = {f"features.{k}": v.clone() for k, v in features.state_dict().items()}
    path = backbone_weights_path("vgg")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return ref


def _pair(natural_image, size=64, seed=0):
    rng = np.random.default_rng(seed)
    img = natural_image[100 : 100 + size, 150 : 150 + size + 8]
    noisy = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    return noisy, img


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32) / 255)[None]


@pytest.mark.slow
def test_dists_equals_dists_pytorch(reference, natural_image):
    noisy, clean = _pair(natural_image)
    with torch.no_grad():
        want = float(reference(_t(noisy), _t(clean)))
    got = dists(noisy, clean)
    assert want > 1e-3  # a real distance, not a degenerate zero
    assert got == pytest.approx(want, abs=1e-4)
    # batched: one value per image, as the package gives per image
    other, _ = _pair(natural_image, seed=1)
    batch, refs = torch.cat([_t(noisy), _t(other)]), torch.cat([_t(clean), _t(clean)])
    with torch.no_grad():
        want_b = reference(batch, refs)
    np.testing.assert_allclose(dists_torch(batch, refs).numpy(), want_b.numpy(), atol=1e-4)


@pytest.mark.slow
def test_dists_conventions(reference, natural_image):
    noisy, clean = _pair(natural_image, size=40)
    assert dists(clean, clean) == pytest.approx(0.0, abs=1e-5)
    # grey images are replicated to RGB; uint16 is read in [0, 65535]; the border crop crops
    grey = clean[:, :, 1]
    assert dists(grey, grey) == pytest.approx(0.0, abs=1e-5)
    assert dists(noisy.astype(np.uint16) * 257, clean.astype(np.uint16) * 257) == pytest.approx(
        dists(noisy, clean), abs=1e-5
    )
    assert dists(noisy, clean, crop_border=4) == pytest.approx(dists(noisy[4:-4, 4:-4], clean[4:-4, 4:-4]), abs=1e-6)
    with pytest.raises(ValueError, match=r"dists: image shape .* does not match reference shape"):
        dists(noisy[:10], clean)
    # in the one metric table: validation, esrgan test and sweeps
    assert parse_metric_list("psnr,dists") == ["psnr", "dists"]
    info = METRIC_TABLE["calculate_dists"]
    assert info.name == "dists" and not info.higher_is_better and info.needs_reference
    assert info.fn(noisy, clean, crop_border=0) == pytest.approx(dists(noisy, clean), abs=1e-7)


def test_missing_backbone_is_one_error_naming_the_file(torch_home):
    from esrgan.archs.vgg import VGGWeightsNotFoundError
    from esrgan.metrics.dists_metric import DISTS

    with pytest.raises(VGGWeightsNotFoundError, match=r"DISTS: offline .* place vgg16-397923af\.pth"):
        DISTS()


def test_tester_scores_dists(reference, natural_image, tmp_path):
    from esrgan.evaluation.tester import score

    noisy, clean = _pair(natural_image, size=40)
    out = score(noisy, clean, crop_border=2, metrics=["psnr", "dists"])
    assert list(out) == ["psnr_y", "psnr_rgb", "dists"]
    assert out["dists"] == pytest.approx(dists(noisy, clean, crop_border=2), abs=1e-7)
