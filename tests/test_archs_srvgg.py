"""SRVGGNetCompact: BasicSR's layout and outputs, detection from weights, training, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_training import make_tiny_data, tiny_options_dict

from esrgan import load_model
from esrgan.archs import SRVGGNetCompact, build_network
from esrgan.archs.detect import detect_generator
from esrgan.checkpoint import CheckpointError, load_checkpoint_file
from esrgan.data.image import imread

COMPACT = "realesr-animevideov3_x4.pth"


def test_key_layout_is_basicsr_s() -> None:
    net = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4, act_type="prelu")
    assert list(net.state_dict()) == [
        "body.0.weight", "body.0.bias", "body.1.weight",
        "body.2.weight", "body.2.bias", "body.3.weight",
        "body.4.weight", "body.4.bias", "body.5.weight",
        "body.6.weight", "body.6.bias",
    ]  # fmt: skip
    assert net.state_dict()["body.6.weight"].shape == (3 * 16, 8, 3, 3)
    relu = SRVGGNetCompact(num_feat=8, num_conv=2, act_type="relu")
    assert [k for k in relu.state_dict() if k.endswith("weight")] == [f"body.{i}.weight" for i in (0, 2, 4, 6)]
    with pytest.raises(ValueError, match="act_type must be one of relu, prelu, leakyrelu"):
        SRVGGNetCompact(act_type="gelu")


def test_detected_from_the_real_weights(shared_models: Path) -> None:
    sd = load_checkpoint_file(shared_models / COMPACT)["params_ema"]
    arch, kwargs, _ = detect_generator(sd)
    assert arch == "SRVGGNetCompact"
    want = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"}
    assert kwargs == want
    model = load_model(shared_models / COMPACT)
    assert isinstance(model, SRVGGNetCompact) and sum(p.numel() for p in model.parameters()) == 621_424
    assert model.state_dict().keys() == sd.keys()


def test_output_equals_spandrel_s_on_a_real_photo(shared_models: Path, shared_data: Path) -> None:
    spandrel = pytest.importorskip("spandrel", reason="spandrel (the reference) is not installed: pip install spandrel")
    ref_model = spandrel.ModelLoader().load_from_file(str(shared_models / COMPACT)).model.eval()
    ours = load_model(shared_models / COMPACT)
    img = imread(shared_data / "Set14" / "HR" / "zebra.png")[100:196, 200:296]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        a, b = ours(x), ref_model(x)
    assert a.shape == (1, 3, 384, 384) and a.std() > 0.1
    quant = lambda t: t.clamp(0, 1).mul(255).round()  # noqa: E731
    assert (quant(a) - quant(b)).abs().max() <= 1
    assert (a - b).abs().max() < 1e-4


def test_detection_errors_are_clear() -> None:
    relu = SRVGGNetCompact(num_feat=8, num_conv=2, act_type="relu").state_dict()
    with pytest.raises(CheckpointError, match=r"activation \(relu or leakyrelu\) cannot be read"):
        detect_generator(relu)
    x3 = SRVGGNetCompact(num_feat=8, num_conv=3, upscale=3).state_dict()
    assert detect_generator(x3)[1]["upscale"] == 3 and detect_generator(x3)[1]["num_conv"] == 3


def test_trains_from_a_basicsr_network_g_and_loads_back(tmp_path: Path) -> None:
    from esrgan.options import options_from_dict
    from esrgan.training.trainer import Trainer

    data = make_tiny_data(tmp_path / "data", n_train=4, n_val=1)
    raw = tiny_options_dict(data, tmp_path / "exp", total_iter=2)
    raw["network_g"] = {"type": "SRVGGNetCompact", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_conv": 2,
                        "upscale": 4, "act_type": "prelu"}  # fmt: skip
    opt = options_from_dict(raw)
    trainer = Trainer(opt, interactive=False)
    assert trainer.run() == 0
    saved = sorted((tmp_path / "exp").rglob("net_g_2.pth"))
    assert saved, list((tmp_path / "exp").rglob("*.pth"))
    model = load_model(saved[0])
    assert isinstance(model, SRVGGNetCompact) and model.num_feat == 8 and model.num_conv == 2
    assert isinstance(build_network(raw["network_g"]), SRVGGNetCompact)


def test_exports_to_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from esrgan.inference.export import check_onnx, export_onnx

    net = SRVGGNetCompact(num_feat=8, num_conv=2).eval()
    path = export_onnx(net, tmp_path / "compact.onnx")
    assert check_onnx(net, path) < 1e-4
    assert np.isfinite(check_onnx(net, path))
