"""A checkpoint of a spandrel network trained here works in every command: upscale, test, interp, export, serve."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_spandrel import TINY_SPANDREL

from esrgan.archs import build_network, pad_to_fit, size_requirements
from esrgan.checkpoint import save_network
from esrgan.data.image import imread, imwrite

spandrel = pytest.importorskip("spandrel", reason="spandrel is not installed")

pytestmark = pytest.mark.slow


def _checkpoint(path: Path, name: str, seed: int) -> Path:
    """What the trainer writes for a tiny x2 ``name`` (params and EMA params differ, as after training)."""
    from esrgan.archs import scale_argument

    torch.manual_seed(seed)
    net = build_network({"type": name, **TINY_SPANDREL[name], scale_argument(name): 2})
    ema = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    save_network(path, {"params": net.state_dict(), "params_ema": ema})
    return path


@pytest.fixture()
def safmn(tmp_path: Path) -> tuple[Path, Path]:
    # SAFMN: inputs must be multiples of 8 (spandrel's descriptor says so; the network runs on others, wrongly)
    return _checkpoint(tmp_path / "safmn_a.pth", "SAFMN", 0), _checkpoint(tmp_path / "safmn_b.pth", "SAFMN", 1)


def _spandrel_sr(path: Path, img: np.ndarray) -> np.ndarray:
    desc = spandrel.ModelLoader().load_from_file(path)
    x = torch.from_numpy(img).permute(2, 0, 1).float().div(255)[None]
    return desc(x)[0].permute(1, 2, 0).mul(255).round().byte().numpy()


def test_upscale_pads_to_the_multiple_as_spandrel_does(safmn, tmp_path: Path, natural_image: np.ndarray) -> None:
    from esrgan.commands.upscale import main

    lr = np.ascontiguousarray(natural_image[:21, :29])  # neither a multiple of 8
    imwrite(tmp_path / "in.png", lr)
    assert main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", str(safmn[0]),
                 "--precision", "fp32", "--device", "cpu", "--color-fix", "none"]) == 0  # fmt: skip
    out = imread(tmp_path / "out.png")
    assert out.shape == (42, 58, 3)
    assert np.abs(out.astype(int) - _spandrel_sr(safmn[0], lr).astype(int)).max() <= 1


def test_esrgan_test_scores_it(safmn, tmp_path: Path, natural_image: np.ndarray) -> None:
    from esrgan.commands.test import main

    hr = tmp_path / "hr"
    imwrite(hr / "a.png", np.ascontiguousarray(natural_image[:42, :58]))
    assert main(["--model", str(safmn[0]), "--scale", "2", "--hr", str(hr), "--name", "t", "--experiments-root",
                 str(tmp_path / "exp"), "--device", "cpu", "--metrics", "psnr", "-q"]) == 0  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "exp" / "t" / "results.csv").open()))
    assert rows[0]["model"] == "safmn_a" and float(rows[0]["psnr_y"]) > 5


def test_interp_between_two_checkpoints_of_one_arch_loads_in_spandrel(safmn, tmp_path: Path) -> None:
    from esrgan.checkpoint import load_checkpoint_file
    from esrgan.commands.interp import main

    out = tmp_path / "mid.pth"
    assert main(["--psnr", str(safmn[0]), "--gan", str(safmn[1]), "--alpha", "0.25", "-o", str(out)]) == 0
    a, b = (load_checkpoint_file(p)["params_ema"] for p in safmn)
    mixed = load_checkpoint_file(out)["params"]
    for k in a:
        torch.testing.assert_close(mixed[k], 0.75 * a[k] + 0.25 * b[k])
    desc = spandrel.ModelLoader().load_from_file(out)
    assert desc.architecture.id == "SAFMN" and desc.scale == 2


def test_interp_refuses_two_architectures(safmn, tmp_path: Path) -> None:
    from esrgan.evaluation.interpolation import load_pair

    other = _checkpoint(tmp_path / "span.pth", "SPAN", 0)
    with pytest.raises(ValueError, match=r"different architectures: arch SAFMN vs SPAN"):
        load_pair(safmn[0], other)


def test_export_onnx_of_a_convolutional_one(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from esrgan.commands.export import main

    ckpt = _checkpoint(tmp_path / "span.pth", "SPAN", 0)
    assert main(["--model", str(ckpt), "-o", str(tmp_path / "span.onnx")]) == 0  # checks onnxruntime vs torch


def test_serve_catalog_lists_and_runs_it(safmn, tmp_path: Path) -> None:
    from esrgan.serve.catalog import ModelCatalog, UpscalerCache

    catalog = ModelCatalog(model_dirs=[tmp_path], zoo_cache=tmp_path / "zoo", experiments_root=tmp_path / "none")
    specs = [c.id for c in catalog.choices() if c.kind == "file"]
    assert str(safmn[0].resolve()) in specs
    cache = UpscalerCache(catalog, "cpu")
    up = cache.upscaler(catalog.resolve(str(safmn[0].resolve())), tile=0, precision="fp32")
    assert up.scale == 2 and up.info.multiple == 8
    mixed = cache.upscaler(str(safmn[0].resolve()), tile=0, precision="fp32", model_b=str(safmn[1].resolve()),
                           alpha=0.5)  # fmt: skip
    assert mixed.upscale(np.zeros((9, 11, 3), np.uint8)).shape == (18, 22, 3)


def test_tiles_are_multiples_and_agree_with_the_whole_image(safmn, natural_image: np.ndarray) -> None:
    from esrgan.inference import Upscaler

    tiled = Upscaler(str(safmn[0]), device="cpu", precision="fp32", tile=16, tile_pad=4)
    img = np.ascontiguousarray(natural_image[:60, :44])
    x = torch.from_numpy(img).permute(2, 0, 1).float().div(255)[None]
    # every window handed to the network is a multiple of 8, and the result equals the padded whole image's
    seen: list[tuple[int, int]] = []
    hook = tiled.model.register_forward_pre_hook(lambda _m, a: seen.append(tuple(a[0].shape[-2:])))
    try:
        out = tiled.upscale_tensor(x)
    finally:
        hook.remove()
    assert len(seen) > 1 and all(h % 8 == 0 and w % 8 == 0 for h, w in seen)
    net = tiled.model
    with torch.no_grad():
        ref = net(pad_to_fit(x, size_requirements(net))).clamp(0, 1)[..., :120, :88]
    # SAFMN's pooled attention sees the whole image, so tiles differ a little from it
    assert float((out - ref).abs().mean()) < 0.02
