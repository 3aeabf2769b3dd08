"""Networks: parameter counts, shapes, the residual arithmetic, discriminator sizes, build_network, imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from esrgan.archs import (
    DISCRIMINATORS,
    GENERATORS,
    RRDB,
    MSRResNet,
    ResidualDenseBlock,
    RRDBNet,
    UNetDiscriminatorSN,
    VGGStyleDiscriminator,
    build_network,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def conv_params(cin: int, cout: int, k: int = 3) -> int:
    return cin * cout * k * k + cout


def rrdbnet_params_by_hand(in_ch: int, out_ch: int, nf: int, nb: int, gc: int, in_mult: int, n_up: int) -> int:
    rdb = sum(conv_params(nf + i * gc, gc) for i in range(4)) + conv_params(nf + 4 * gc, nf)
    return (
        conv_params(in_ch * in_mult, nf)
        + nb * 3 * rdb
        + conv_params(nf, nf)  # conv_body
        + n_up * conv_params(nf, nf)
        + conv_params(nf, nf)  # conv_hr
        + conv_params(nf, out_ch)
    )


def test_rrdbnet_official_parameter_count():
    with torch.device("meta"):  # no memory, no init time
        model = RRDBNet(3, 3, 64, 23, 32, 4)
    assert n_params(model) == 16_697_987


@pytest.mark.parametrize(
    ("scale", "in_mult", "n_up", "expected"),
    [(1, 16, 2, 16_723_907), (2, 4, 2, 16_703_171), (4, 1, 2, 16_697_987), (8, 1, 3, 16_734_915)],
)
def test_rrdbnet_parameter_counts_per_scale(scale, in_mult, n_up, expected):
    with torch.device("meta"):
        model = RRDBNet(3, 3, 64, 23, 32, scale)
    assert rrdbnet_params_by_hand(3, 3, 64, 23, 32, in_mult, n_up) == expected
    assert n_params(model) == expected
    assert model.conv_first.in_channels == 3 * in_mult
    assert [f"conv_up{i}" for i in range(1, n_up + 1)] == [n for n, _ in model.named_children() if "conv_up" in n]


def test_rrdbnet_x2_like_realesrgan_x2plus():
    # RealESRGAN_x2plus: conv_first takes 12 = 3 * 2**2 channels (pixel-unshuffle by 2), then x4 upsampling
    model = RRDBNet(3, 3, 8, 1, 4, scale=2)
    assert tuple(model.conv_first.weight.shape) == (8, 12, 3, 3)
    assert {"conv_up1.weight", "conv_up2.weight"} <= set(model.state_dict())


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_rrdbnet_output_shapes(scale):
    model = RRDBNet(3, 3, 8, 1, 4, scale).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 12, 16))
    assert out.shape == (2, 3, 12 * scale, 16 * scale)


def test_rrdbnet_other_channels_and_no_unshuffle_x2():
    model = RRDBNet(1, 4, 8, 1, 4, scale=2, unshuffle=False)
    assert model.conv_first.in_channels == 1
    assert [n for n, _ in model.named_children() if "conv_up" in n] == ["conv_up1"]
    assert model(torch.rand(1, 1, 5, 7)).shape == (1, 4, 10, 14)


def test_rrdbnet_rejects_bad_scale_and_bad_unshuffle_input():
    with pytest.raises(ValueError, match="scale must be one of 1, 2, 4, 8"):
        RRDBNet(scale=3)
    with pytest.raises(ValueError, match=r"divisible by 4.*got 10x12"):
        RRDBNet(3, 3, 8, 1, 4, scale=1)(torch.rand(1, 3, 10, 12))


def test_state_dict_keys_are_basicsr_names():
    keys = set(RRDBNet(3, 3, 8, 2, 4, 8).state_dict())
    expected = {"conv_first", "conv_body", "conv_up1", "conv_up2", "conv_up3", "conv_hr", "conv_last"}
    expected |= {f"body.{i}.rdb{j}.conv{k}" for i in range(2) for j in (1, 2, 3) for k in range(1, 6)}
    assert keys == {f"{n}.{p}" for n in expected for p in ("weight", "bias")}


def _zero_(m: torch.nn.Module) -> None:
    for p in m.parameters():
        torch.nn.init.zeros_(p)


def test_rrdbnet_x4_starts_as_its_input_enlarged_twice_bilinearly():
    """The carried-image init (issue 24): inside the border the untrained x4 net is bilinear x2 applied twice;
    unshuffled nets (x2) keep BasicSR's init, whose output is nowhere near the image."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        out = RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)(x)
        ref = F.interpolate(F.interpolate(x, scale_factor=2, mode="bilinear"), scale_factor=2, mode="bilinear")
        x2 = RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=2)(x)
    assert torch.allclose(out[..., 4:-4, 4:-4], ref[..., 4:-4, 4:-4], atol=1e-6)
    assert (x2 - F.interpolate(x, scale_factor=2, mode="bilinear")).abs().mean() > 0.1


def test_residual_scaling_is_0_2_in_rdb_and_rrdb():
    x = torch.randn(1, 4, 5, 5)
    rdb = ResidualDenseBlock(4, 2)
    _zero_(rdb)
    torch.nn.init.constant_(rdb.conv5.bias, 1.0)
    torch.testing.assert_close(rdb(x), x + 0.2)  # x + 0.2 * conv5(...) with conv5 == 1

    rrdb = RRDB(4, 2)
    _zero_(rrdb)
    for b in (rrdb.rdb1, rrdb.rdb2, rrdb.rdb3):
        torch.nn.init.constant_(b.conv5.bias, 1.0)
    # three RDBs add 0.2 each: x + 0.6; the RRDB keeps 0.2 of that plus x
    torch.testing.assert_close(rrdb(x), 0.2 * (x + 0.6) + x)


def test_rdb_uses_leaky_relu_0_2():
    rdb = ResidualDenseBlock(1, 1)
    _zero_(rdb)
    with torch.no_grad():
        rdb.conv1.weight[0, 0, 1, 1] = 1.0  # conv1 = identity on the centre tap
        rdb.conv5.weight[0, 1, 1, 1] = 1.0  # conv5 reads x1 (channel 1 of the concatenation)
    x = torch.tensor([[[[-5.0]]]])
    torch.testing.assert_close(rdb(x), x + 0.2 * F.leaky_relu(x, 0.2))


def test_msrresnet_parameter_count_and_bilinear_skip():
    with torch.device("meta"):
        model = MSRResNet()
    by_hand = (
        conv_params(3, 64) + 16 * 2 * conv_params(64, 64) + 2 * conv_params(64, 256) + conv_params(64, 64)
        + conv_params(64, 3)
    )
    assert n_params(model) == by_hand == 1_517_571
    for upscale in (2, 3, 4):
        small = MSRResNet(3, 3, 8, 2, upscale)
        x = torch.rand(1, 3, 6, 7)
        assert small(x).shape == (1, 3, 6 * upscale, 7 * upscale)
        _zero_(small)
        expected = F.interpolate(x, scale_factor=upscale, mode="bilinear", align_corners=False)
        torch.testing.assert_close(small(x), expected)
    with pytest.raises(ValueError, match="upscale must be 2, 3 or 4"):
        MSRResNet(upscale=8)


@pytest.mark.parametrize("size", [128, 256])
def test_vgg_discriminator_accepted_sizes(size):
    net = VGGStyleDiscriminator(3, 4, size)
    out = net(torch.rand(2, 3, size, size))
    assert out.shape == (2, 1)
    # both layouts end at 4x4 before linear1 (8 * num_feat channels)
    assert net.linear1.in_features == 8 * 4 * 4 * 4
    assert ("conv5_0.weight" in net.state_dict()) == (size == 256)


def test_vgg_discriminator_rejects_other_sizes():
    with pytest.raises(ValueError, match=r"input_size must be one of \[128, 256\], got 192"):
        VGGStyleDiscriminator(3, 4, 192)
    net = VGGStyleDiscriminator(3, 4, 128)
    with pytest.raises(ValueError, match=r"got a 96x96 input; it accepts 128x128 only"):
        net(torch.rand(1, 3, 96, 96))


def test_unet_discriminator_shape_keys_and_skip():
    net = UNetDiscriminatorSN(3, 4)
    out = net(torch.rand(2, 3, 32, 24))
    assert out.shape == (2, 1, 32, 24)
    keys = set(net.state_dict())
    # Real-ESRGAN's spectral-norm names, so its netD checkpoints load as they are
    assert {"conv0.weight", "conv1.weight_orig", "conv1.weight_u", "conv1.weight_v", "conv9.bias"} <= keys
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.rand(1, 3, 30, 32))
    no_skip = UNetDiscriminatorSN(3, 4, skip_connection=False)
    no_skip.load_state_dict(net.state_dict())
    net.eval(), no_skip.eval()
    x = torch.rand(1, 3, 16, 16)
    assert not torch.allclose(net(x), no_skip(x))


def test_build_network():
    model = build_network({"type": "RRDBNet", "num_feat": 8, "num_block": 1, "num_grow_ch": 4, "scale": 2})
    assert isinstance(model, RRDBNet) and model.scale == 2
    assert isinstance(build_network({"type": "VGGStyleDiscriminator", "num_feat": 4}), VGGStyleDiscriminator)
    assert set(GENERATORS) == {"RRDBNet", "MSRResNet", "SRVGGNetCompact"}
    assert set(DISCRIMINATORS) == {"VGGStyleDiscriminator", "UNetDiscriminatorSN"}


def test_build_network_errors():
    known = "RRDBNet, MSRResNet, SRVGGNetCompact"
    with pytest.raises(ValueError, match=rf"unknown network type 'RRDB_Net'; known types: {known}"):
        build_network({"type": "RRDB_Net"})
    with pytest.raises(ValueError, match=r"RRDBNet: unknown argument\(s\) \['nf'\]; accepted: num_in_ch, num_out_ch"):
        build_network({"type": "RRDBNet", "nf": 64})
    with pytest.raises(ValueError, match="needs a 'type' key"):
        build_network({"num_feat": 64})


def test_imports_stay_light(tmp_path):
    """``import esrgan.archs`` and ``esrgan.load_model`` pull in neither the trainer, TensorBoard nor LMDB."""
    ckpt = tmp_path / "g.pth"
    torch.save({"params": RRDBNet(3, 3, 8, 1, 4, 4).state_dict()}, ckpt)
    code = textwrap.dedent(
        f"""
        import sys
        import esrgan.archs
        import esrgan
        model = esrgan.load_model({str(ckpt)!r})
        assert type(model).__name__ == "RRDBNet", type(model)
        bad = sorted(m for m in sys.modules
                     if m.split(".")[0] in ("tensorboard", "lmdb") or m.startswith("esrgan.training")
                     or m.startswith("torch.utils.tensorboard"))
        print("HEAVY:" + ",".join(bad))
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "HEAVY:"
