"""``esrgan export``: ONNX run by onnxruntime matches PyTorch within 1e-4 at two sizes; TorchScript too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from esrgan.archs import MSRResNet, RRDBNet
from esrgan.checkpoint import save_network
from esrgan.cli import main as esrgan_main
from esrgan.inference.export import check_onnx, export_onnx, export_torchscript

# TorchScript is deprecated upstream but still the format other runtimes load; loading it warns.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")


@pytest.mark.parametrize(
    "net",
    [
        RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=4),
        RRDBNet(3, 3, 8, 1, 4, scale=2),
        MSRResNet(3, 3, 8, 2, 4),
    ],
    ids=["rrdb_x4", "rrdb_x2_unshuffle", "msrresnet_x4"],
)
def test_onnx_matches_pytorch_at_two_sizes(net: torch.nn.Module, tmp_path: Path) -> None:
    path = export_onnx(net, tmp_path / "g.onnx")
    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    scale = 2 if isinstance(net, RRDBNet) and net.scale == 2 else 4
    for n, h, w in [(1, 20, 28), (2, 36, 16)]:  # neither is the export example size (32x32)
        x = torch.rand(n, 3, h, w)
        with torch.no_grad():
            ref = net(x).numpy()
        got = session.run(["output"], {"input": x.numpy()})[0]
        assert got.shape == (n, 3, h * scale, w * scale)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_torchscript_matches_pytorch(tmp_path: Path) -> None:
    net = RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=4).eval()
    loaded = torch.jit.load(str(export_torchscript(net, tmp_path / "g.pt")))
    for h, w in [(12, 20), (30, 18)]:
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), net(x), atol=1e-5, rtol=0)


def test_export_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
    ckpt = tmp_path / "g.safetensors"
    save_network(ckpt, {"params_ema": net.state_dict()})
    assert esrgan_main(["export", "--model", str(ckpt), "-o", str(tmp_path / "g.onnx"), "--opset", "17"]) == 0
    assert "onnxruntime vs PyTorch: max abs difference" in capsys.readouterr().err
    assert onnx.load(str(tmp_path / "g.onnx")).opset_import[0].version == 17
    assert check_onnx(net.eval(), tmp_path / "g.onnx") < 1e-4
    assert esrgan_main(["export", "--model", str(ckpt), "-o", str(tmp_path / "g.pt")]) == 0
    assert torch.jit.load(str(tmp_path / "g.pt"))(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)
    with pytest.raises(SystemExit):
        esrgan_main(["export", "--model", str(ckpt), "-o", str(tmp_path / "g.tflite")])
    assert esrgan_main(["export", "--model", str(tmp_path / "missing.pth"), "-o", str(tmp_path / "m.onnx")]) == 1
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("export", [export_onnx, export_torchscript])
def test_export_leaves_the_callers_module_as_it_was(export, tmp_path: Path) -> None:
    """Exporting used to move the caller's module to the CPU in fp32 eval mode, in place: a GPU or half-precision
    model in use elsewhere (the web app, a notebook) changed under it."""
    net = MSRResNet(3, 3, num_feat=8, num_block=1, upscale=2).to(torch.bfloat16).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    export(net, tmp_path / ("m.onnx" if export is export_onnx else "m.pt"))
    assert net.training and all(p.dtype == torch.bfloat16 for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
