"""VGGFeatureExtractor: pre-activation features equal torchvision's VGG sliced by index; weight loading paths."""

from __future__ import annotations

import re
import urllib.error

import pytest
import torch
from torch.nn import functional as F
from torchvision.models import vgg as tv_vgg

from esrgan.archs import VGGFeatureExtractor
from esrgan.archs import vgg as vgg_mod
from esrgan.archs.vgg import VGGWeightsNotFoundError, vgg_layer_names


@pytest.fixture(scope="module")
def tv_features() -> torch.nn.Sequential:
    """torchvision's VGG19 ``features`` (random weights): the same module torchvision.models.vgg19().features is."""
    torch.manual_seed(1)
    return tv_vgg.make_layers(tv_vgg.cfgs["E"]).eval()


def test_layer_names_follow_torchvision_indices():
    names = vgg_layer_names("vgg19")
    assert len(names) == 37
    # ESRGAN's conv5_4 is features[34]; relu5_4 features[35]; BasicSR's VGG19 indices
    assert names.index("conv5_4") == 34 and names.index("relu5_4") == 35 and names.index("conv4_4") == 25
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    v16 = vgg_layer_names("vgg16")
    assert len(v16) == 31 and v16.index("conv5_3") == 28 and "conv5_4" not in v16


def test_features_equal_torchvision_sliced_by_index(tv_features):
    ext = VGGFeatureExtractor(["conv1_2", "conv4_4", "conv5_4", "relu5_4"], pretrained=False, use_input_norm=False)
    ext.vgg_net.load_state_dict({k: v for k, v in tv_features.state_dict().items() if int(k.split(".")[0]) < 36})
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = ext(x)
        for name, idx in (("conv1_2", 2), ("conv4_4", 25), ("conv5_4", 34), ("relu5_4", 35)):
            torch.testing.assert_close(out[name], tv_features[: idx + 1](x), rtol=0, atol=0)
    # features before the ReLU: conv5_4 has negative values, and relu5_4 is exactly its ReLU
    assert (out["conv5_4"] < 0).any()
    torch.testing.assert_close(out["relu5_4"], F.relu(out["conv5_4"]))


def test_input_and_range_normalisation():
    torch.manual_seed(0)
    plain = VGGFeatureExtractor(["conv2_1"], pretrained=False, use_input_norm=False)
    normed = VGGFeatureExtractor(["conv2_1"], pretrained=False, use_input_norm=True)
    ranged = VGGFeatureExtractor(["conv2_1"], pretrained=False, use_input_norm=True, range_norm=True)
    normed.load_state_dict(plain.state_dict())
    ranged.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(normed(x)["conv2_1"], plain((x - mean) / std)["conv2_1"])
        torch.testing.assert_close(ranged(x * 2 - 1)["conv2_1"], normed(x)["conv2_1"])


def test_frozen_by_default_and_trainable_on_request():
    ext = VGGFeatureExtractor(["conv1_1"], pretrained=False)
    assert not any(p.requires_grad for p in ext.parameters())
    ext.train()
    assert not ext.training and not ext.vgg_net.training
    # the truncated network holds only what the requested layers need
    assert len(ext.vgg_net) == 1 and set(ext.state_dict()) == {"vgg_net.0.weight", "vgg_net.0.bias"}
    grad = VGGFeatureExtractor(["conv1_1"], pretrained=False, requires_grad=True)
    assert all(p.requires_grad for p in grad.parameters())
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    ext(x)["conv1_1"].sum().backward()  # gradients still flow to the input (perceptual loss)
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_layer_names():
    with pytest.raises(ValueError, match=r"unknown layer name\(s\) \['conv5_4'\] for vgg16; known: conv1_1"):
        VGGFeatureExtractor(["conv5_4"], vgg_type="vgg16", pretrained=False)
    with pytest.raises(ValueError, match=r"vgg_type must be one of \['vgg16', 'vgg19'\]"):
        VGGFeatureExtractor(["conv1_1"], vgg_type="vgg11", pretrained=False)


def test_torchvision_cache_path_is_used(tmp_path, monkeypatch, tv_features):
    """The real ``pretrained=True`` path: $TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth in torchvision's layout."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    target.parent.mkdir(parents=True)
    # torchvision's key names (features.N.*, classifier.*); a small classifier stand-in keeps the file small
    sd = {f"features.{k}": v for k, v in tv_features.state_dict().items() if int(k.split(".")[0]) <= 7}
    sd["classifier.6.bias"] = torch.zeros(1000)
    torch.save(sd, target)
    monkeypatch.setattr(vgg_mod, "_download", lambda url, dst: pytest.fail("must not download"))

    ext = VGGFeatureExtractor(["conv2_2"], pretrained=True, use_input_norm=False)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(ext(x)["conv2_2"], tv_features[:8](x), rtol=0, atol=0)

    # a local file path works the same
    ext2 = VGGFeatureExtractor(["conv2_2"], pretrained=str(target), use_input_norm=False)
    torch.testing.assert_close(ext2.vgg_net[2].weight, tv_features[2].weight)


def test_offline_without_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth")
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    monkeypatch.setattr(vgg_mod, "_download", lambda url, dst: pytest.fail("must not download when offline"))
    with pytest.raises(VGGWeightsNotFoundError, match=re.escape(expected)) as err:
        VGGFeatureExtractor(["conv5_4"])
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in str(err.value)

    # no offline flag, but the network is unreachable: the same guidance
    monkeypatch.delenv("ESRGAN_OFFLINE")

    def no_network(url, dst):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(vgg_mod, "_download", no_network)
    pattern = rf"download failed.*place vgg19-dcbb9e9d\.pth.*{re.escape(expected)}"
    with pytest.raises(VGGWeightsNotFoundError, match=pattern):
        VGGFeatureExtractor(["conv5_4"])


def test_wrong_weights_file(tmp_path):
    bad = tmp_path / "not_vgg.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, bad)
    with pytest.raises(ValueError, match=r"not_vgg\.pth: not vgg19 weights, missing keys \['0\.bias'"):
        VGGFeatureExtractor(["conv1_2"], pretrained=str(bad))
    with pytest.raises(FileNotFoundError, match=r"VGG weights file not found: .*missing\.pth"):
        VGGFeatureExtractor(["conv1_2"], pretrained=str(tmp_path / "missing.pth"))


def test_missing_weights_come_through_the_one_downloader_and_their_digest_is_checked(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("ESRGAN_OFFLINE", raising=False)
    payload = tmp_path / "payload.pth"
    torch.save({"features.0.weight": torch.ones(1)}, payload)
    prefix = hashlib.sha256(payload.read_bytes()).hexdigest()[:8]
    source = tmp_path / "mirror" / f"vgg19-{prefix}.pth"  # a local "URL": esrgan.utils.fetch reads plain paths
    source.parent.mkdir()
    source.write_bytes(payload.read_bytes())
    monkeypatch.setitem(vgg_mod.TORCHVISION_WEIGHTS, "vgg19", str(source))
    got = vgg_mod.resolve_vgg_weights("vgg19", True)
    assert got == tmp_path / "torch" / "hub" / "checkpoints" / source.name
    assert got.read_bytes() == payload.read_bytes()
    # a file whose digest does not match its name is refused, and nothing is left in the cache
    wrong = tmp_path / "mirror" / "vgg16-00000000.pth"
    wrong.write_bytes(payload.read_bytes())
    monkeypatch.setitem(vgg_mod.TORCHVISION_WEIGHTS, "vgg16", str(wrong))
    with pytest.raises(VGGWeightsNotFoundError, match=r"download failed \(.*does not start with 00000000"):
        vgg_mod.resolve_vgg_weights("vgg16", True)
    assert sorted(p.name for p in got.parent.iterdir()) == [source.name]
