"""spandrel's super-resolution networks train here from a YAML file, learn, and round-trip through spandrel."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from tiny_spandrel import TINY_GT_SIZE, TINY_SPANDREL
from tiny_training import make_tiny_data, tiny_options_dict

from esrgan.archs import (
    SPANDREL_GENERATORS,
    SizeRequirements,
    build_network,
    pad_to_fit,
    scale_argument,
    size_requirements,
)
from esrgan.options import OptionsError, load_options, options_from_dict

spandrel = pytest.importorskip("spandrel", reason="spandrel is not installed")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_x2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 128-pixel HR: GRL's stripes need 64-pixel LR crops
    return make_tiny_data(tmp_path_factory.mktemp("tiny_x2"), n_train=4, n_val=1, size=128, scale=2)


def _options(data: Path, exp: Path, name: str, **network: object) -> dict:
    opt = tiny_options_dict(data, exp, total_iter=2, gt_size=TINY_GT_SIZE.get(name, 32), name=name)
    opt["scale"] = 2
    opt["network_g"] = {"type": name, **TINY_SPANDREL[name], **network}
    opt["val"]["metrics"] = {"psnr": {"type": "psnr", "crop_border": 2}}
    return opt


def test_every_trainable_spandrel_network_is_tested() -> None:
    assert set(TINY_SPANDREL) == set(SPANDREL_GENERATORS)
    assert {"SPAN", "RealPLKSR", "SwinIR", "DAT", "OmniSR", "SAFMN", "HAT", "RCAN", "ATD", "DRCT", "GRL"} <= set(
        SPANDREL_GENERATORS
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY_SPANDREL))
def test_builds_from_yaml_trains_and_round_trips_through_spandrel(name: str, data_x2: Path, tmp_path: Path) -> None:
    from esrgan import load_model
    from esrgan.archs.spandrel_archs import spandrel_class
    from esrgan.checkpoint import load_checkpoint_file
    from esrgan.inference import Upscaler
    from esrgan.training.trainer import Trainer

    yml = tmp_path / f"{name}.yml"
    yml.write_text(yaml.safe_dump(_options(data_x2, tmp_path, name)))
    opt = load_options(yml)
    assert opt.network_g.kwargs[scale_argument(name)] == 2  # the top-level scale reaches the constructor
    trainer = Trainer(opt, interactive=False)
    assert trainer.run() == 0
    ckpt = Path(opt.path.models) / "net_g_2.pth"
    assert set(load_checkpoint_file(ckpt)) == {"params", "params_ema"}  # our checkpoint format, unchanged

    # spandrel reads the checkpoint as it is: the architecture, the scale and the size requirements
    desc = spandrel.ModelLoader().load_from_file(ckpt)
    assert type(desc.model) is spandrel_class(name)
    assert desc.scale == 2
    ours = trainer.model.g_sizes
    theirs = desc.size_requirements
    assert SizeRequirements(theirs.minimum, theirs.multiple_of, theirs.square).merge(ours) == ours

    # ... and computes what esrgan computes on an input that fits no requirement (both pad and crop back)
    x = torch.rand(1, 3, 18, 22) if name != "GRL" else torch.rand(1, 3, 66, 70)  # GRL: spandrel pads to none
    expected = desc(x.clone())
    up = Upscaler(str(ckpt), device="cpu", precision="fp32")
    torch.testing.assert_close(up.upscale_tensor(x), expected, atol=1e-4, rtol=0)
    # esrgan.load_model gives the same network (the EMA weights, as spandrel picks)
    model = load_model(ckpt)
    req = size_requirements(model)
    assert req == ours
    with torch.no_grad():
        out = model(pad_to_fit(x, req)).clamp(0, 1)[..., : 2 * x.shape[-2], : 2 * x.shape[-1]]
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY_SPANDREL))
def test_learns(name: str, natural_image) -> None:
    """Adam on one batch of a natural image: the L1 loss falls by 30% in 15 steps (the network trains here)."""
    torch.manual_seed(0)
    net = build_network({"type": name, **TINY_SPANDREL[name], scale_argument(name): 2})
    req = size_requirements(net)
    lr_size = 16 + req.padding(16, 16)[0]
    hr = torch.from_numpy(natural_image[: 2 * lr_size, : 2 * lr_size]).permute(2, 0, 1).float().div(255)[None]
    hr = torch.cat([hr, hr.flip(-1)])
    lr = torch.nn.functional.interpolate(hr, scale_factor=0.5, mode="bicubic", antialias=True).clamp(0, 1)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(4 if name == "GRL" else 15):  # GRL's 64-pixel windows are slow on a CPU
        loss = (net(lr) - hr).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


# ---- refusals at load: the key, what is allowed, what spandrel would do


def _error(data: Path, tmp_path: Path, name: str, **changes: object) -> str:
    opt = _options(data, tmp_path, name)
    for key, value in changes.items():
        if key == "gt_size":
            opt["datasets"]["train"]["gt_size"] = value
        else:
            opt["network_g"][key] = value
    with pytest.raises(OptionsError) as err:
        options_from_dict(opt)
    return str(err.value)


def test_mistyped_argument_is_refused_naming_it_and_the_accepted_ones(tmp_path: Path) -> None:
    msg = _error(tmp_path, tmp_path, "SwinIR", embed_dims=60)
    assert "network_g.embed_dims: unknown argument of SwinIR; did you mean 'embed_dim'? accepted: img_size," in msg
    assert "upsampler" in msg
    msg = _error(tmp_path, tmp_path, "SPAN", feature_channels="wide")
    assert "network_g.feature_channels" in msg and "wide" in msg


def test_python_code_arguments_cannot_come_from_yaml(tmp_path: Path) -> None:
    msg = _error(tmp_path, tmp_path, "SwinIR", norm_layer="LayerNorm")
    assert "network_g.norm_layer: SwinIR takes Python code here (default LayerNorm)" in msg
    # ... and the resolved options never hold one (they are saved as YAML)
    opt = options_from_dict(_options(tmp_path, tmp_path, "SwinIR"))
    assert "norm_layer" not in opt.network_g.kwargs
    assert yaml.safe_load(yaml.safe_dump(opt.to_dict()))["network_g"]["window_size"] == 4


def test_scale_argument_follows_the_top_level_scale(tmp_path: Path) -> None:
    opt = options_from_dict(_options(tmp_path, tmp_path, "OmniSR"))
    assert opt.network_g.kwargs["up_scale"] == 2
    msg = _error(tmp_path, tmp_path, "OmniSR", up_scale=4)
    assert msg.endswith("network_g.up_scale: 4 differs from the top-level scale 2")


def test_argument_spandrel_cannot_read_back_is_refused_with_its_value(tmp_path: Path) -> None:
    # SeemoRe's recursion depth leaves no trace in the weights: spandrel assumes 2
    msg = _error(tmp_path, tmp_path, "SeemoRe", recursive=1)
    assert "network_g.recursive: spandrel 0.4.2 cannot read this from the weights" in msg
    assert "recursive=2 (given 1)" in msg
    msg = _error(tmp_path, tmp_path, "SPAN", img_range=1.0)
    assert "network_g.img_range:" in msg and "img_range=255.0 (given 1.0)" in msg
    # ... while an argument that only sizes a cache (HAT's img_size) is the same network: accepted
    options_from_dict(_options(tmp_path, tmp_path, "HAT", img_size=24))


def test_gt_size_the_network_cannot_take_is_refused_naming_both(tmp_path: Path) -> None:
    # SAFMN needs LR inputs in multiples of 8: gt_size 36 at x2 gives 18-pixel crops
    msg = _error(tmp_path, tmp_path, "SAFMN", gt_size=36)
    assert msg.endswith(
        "datasets.train.gt_size: 36 gives 18x18 LR crops at x2, which SAFMN cannot take: its input must be a "
        "multiple of 8; e.g. gt_size 32"
    )
    msg = _error(tmp_path, tmp_path, "SwinIR", gt_size=16)
    assert "8x8 LR crops at x2, which SwinIR cannot take: its input must be at least 16 pixels; e.g. gt_size 32" in msg


def test_rrdbnet_x2_crops_are_checked_too(tmp_path: Path) -> None:
    opt = tiny_options_dict(tmp_path, tmp_path, gt_size=34)
    opt["scale"] = 2
    with pytest.raises(OptionsError, match=r"17x17 LR crops at x2, which RRDBNet cannot take: its input must be "
                                           r"a multiple of 2"):  # fmt: skip
        options_from_dict(opt)


def test_spandrel_missing_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "spandrel", None)
    msg = _error(tmp_path, tmp_path, "SPAN")
    assert msg.endswith("network_g.type: SPAN is one of spandrel's networks, and spandrel is not installed: "
                        "pip install 'esrgan[spandrel]'")  # fmt: skip
    with pytest.raises(ImportError, match=r"pip install 'esrgan\[spandrel\]'"):
        build_network({"type": "SPAN", "num_in_ch": 3, "num_out_ch": 3})
    # ours never need it
    assert build_network({"type": "RRDBNet", "num_feat": 8, "num_block": 1}) is not None


def test_rcan_does_not_write_into_its_input() -> None:
    net = build_network({"type": "RCAN", **TINY_SPANDREL["RCAN"], "scale": 2}).eval()
    x = torch.rand(1, 3, 8, 8)
    before = x.clone()
    with torch.no_grad():
        net(x)
    assert torch.equal(x, before)  # spandrel's RCAN multiplies its input by rgb_range in place


def test_size_requirements_pad_and_crop_back() -> None:
    req = SizeRequirements(minimum=16, multiple_of=8)
    assert req.padding(10, 17) == (6, 7) and req.fits(16, 24) and not req.fits(16, 20)
    x = torch.arange(2 * 3 * 5 * 9, dtype=torch.float32).reshape(2, 3, 5, 9)
    y = pad_to_fit(x, req)
    assert y.shape == (2, 3, 16, 16)
    assert torch.equal(y[..., :5, :9], x)  # the original stays top-left
    assert torch.equal(y[..., 5, :9], x[..., 3, :])  # mirrored first
    assert torch.equal(y[..., 15, :9], y[..., 8, :9])  # then the edge repeated (beyond what a mirror reaches)
    assert SizeRequirements(multiple_of=4).merge(SizeRequirements(minimum=6, multiple_of=6)) == SizeRequirements(
        minimum=6, multiple_of=12
    )
    assert req.describe() == "a multiple of 8 and at least 16 pixels"
