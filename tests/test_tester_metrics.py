"""esrgan test with NIQE and LPIPS: tables, results.csv/json, comparison labels, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from esrgan.commands import test as test_command
from esrgan.data.image import imread, imwrite, mod_crop
from esrgan.evaluation.compare import CAPTION_HEIGHT, default_crop_size, display_zoom
from esrgan.evaluation.tester import run_tests
from esrgan.evaluation.testsets import make_test_set
from esrgan.imageops.imresize import imresize
from esrgan.metrics import lpips, niqe, psnr
from esrgan.metrics.lpips_metric import backbone_weights_path
from esrgan.options import OptionsError
from esrgan.options.testing import load_test_options


@pytest.fixture
def niqe_set(tmp_path: Path, natural_image: np.ndarray) -> tuple[Path, Path]:
    """2 HR images large enough for NIQE after the x4 border (>= 104 px) and their bicubic LR."""
    hr_dir, lr_dir = tmp_path / "Mid" / "HR", tmp_path / "Mid" / "LR"
    for stem, img in {"a": natural_image[60:172, 180:300], "g": natural_image[250:362, 40:148, 0]}.items():
        imwrite(hr_dir / f"{stem}.png", img)
        imwrite(lr_dir / f"{stem}x4.png", imresize(mod_crop(img, 4), 0.25))
    return hr_dir, lr_dir


@pytest.fixture
def alex_backbone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated AlexNet features in a temporary TORCH_HOME (no download, ever)."""
    from esrgan.metrics.lpips_metric import LPIPS

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    torch.manual_seed(0)
    net = LPIPS("alex", backbone=False)
    path = backbone_weights_path("alex")
    path.parent.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in net.features.state_dict().items()}, path)


def test_metrics_in_tables_csv_json_and_pictures(tmp_path, niqe_set, alex_backbone) -> None:
    hr_dir, lr_dir = niqe_set
    report = run_tests(["bicubic", ("bic2", "bicubic")], [make_test_set(None, hr_dir, lr_dir)], 4, "t",
                       experiments_root=tmp_path, device="cpu", progress=False,
                       metrics=["psnr", "ssim", "calculate_niqe", "lpips"])
    out = tmp_path / "t"
    assert report.keys == ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "niqe", "lpips")
    saved = json.loads((out / "results.json").read_text())
    assert saved["metrics"] == list(report.keys)
    assert saved["directions"] == {"psnr_y": "higher", "ssim_y": "higher", "psnr_rgb": "higher",
                                   "ssim_rgb": "higher", "niqe": "lower", "lpips": "lower"}
    for row in report.scores["Mid"]["bicubic"]:
        sr = imread(out / "Mid" / "bicubic" / f"{row.image}.png")
        hr = mod_crop(imread(hr_dir / f"{row.image}.png"), 4)
        assert row.niqe == niqe(sr, crop_border=4)
        assert row.lpips == pytest.approx(lpips(sr, hr, crop_border=4), abs=1e-7)
        json_row = next(r for r in saved["sets"]["Mid"]["bicubic"]["images"] if r["image"] == row.image)
        assert json_row["niqe"] == row.niqe and json_row["lpips"] == row.lpips
    assert report.scores["Mid"]["bicubic"][1].grey  # grey image: NIQE on its values, LPIPS on it replicated
    mean = report.mean("Mid", "bicubic")
    assert mean["niqe"] == pytest.approx(np.mean([r.niqe for r in report.scores["Mid"]["bicubic"]]))
    with open(out / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["set", "model", "image", *report.keys]
    mean_row = next(r for r in table if r["model"] == "bicubic" and r["image"] == "MEAN")
    assert float(mean_row["lpips"]) == pytest.approx(mean["lpips"], abs=1e-6)
    text = report.format_table()
    assert "NIQE" in text and "LPIPS" in text and f"{mean['niqe']:.3f}" in text and "lower is better" in text
    # comparison picture: two caption rows (name + PSNR, then NIQE and LPIPS) under each panel
    pic = imread(out / "Mid" / "compare" / "a.png")
    size = default_crop_size(112, 120)
    tile = size * display_zoom(size)
    assert pic.shape[0] == tile + 2 * CAPTION_HEIGHT
    assert (pic[tile + CAPTION_HEIGHT :, :tile] < 128).any()  # the second row has text


def test_default_metrics_unchanged(tmp_path, niqe_set) -> None:
    hr_dir, lr_dir = niqe_set
    report = run_tests(["bicubic"], [make_test_set(None, hr_dir, lr_dir)], 4, "d", experiments_root=tmp_path,
                       device="cpu", progress=False, comparisons=False, save_images=False)
    assert report.keys == ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "color_drift")  # the literature's + drift
    row = report.scores["Mid"]["bicubic"][0]
    assert row.niqe is None and "niqe" not in json.loads((tmp_path / "d" / "results.json").read_text())["metrics"]
    sr = imresize(imread(niqe_set[1] / "ax4.png"), 4)
    assert row.psnr_y == pytest.approx(psnr(sr, mod_crop(imread(niqe_set[0] / "a.png"), 4), 4, True))


def test_cli_metrics_flag_and_option_file(tmp_path, niqe_set, capsys) -> None:
    hr_dir, lr_dir = niqe_set
    code = test_command.main(["--model", "bicubic", "--scale", "4", "--hr", str(hr_dir), "--lr", str(lr_dir),
                              "--name", "cli", "--experiments-root", str(tmp_path / "exp"), "-q", "--no-compare",
                              "--metrics", "psnr,niqe"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "NIQE" in printed and "SSIM" not in printed.split("conventions")[0]
    saved = json.loads((tmp_path / "exp" / "cli" / "results.json").read_text())
    assert saved["metrics"] == ["psnr_y", "psnr_rgb", "niqe"]

    code = test_command.main(["--model", "bicubic", "--scale", "4", "--hr", str(hr_dir), "--name", "bad",
                              "--experiments-root", str(tmp_path / "exp"), "-q", "--metrics", "psnr,fid"])
    err = capsys.readouterr().err
    assert code == 1 and "unknown metric type 'fid'; known types: psnr, ssim, niqe, lpips" in err

    opt = tmp_path / "test.yml"
    opt.write_text(f"name: fromfile\nscale: 4\nmodels: [bicubic]\nmetrics: [ssim, niqe]\n"
                   f"datasets:\n  test_1:\n    name: Mid\n    dataroot_gt: {hr_dir}\n    dataroot_lq: {lr_dir}\n")
    assert load_test_options(opt).metric_names == ["ssim", "niqe"]
    opt2 = tmp_path / "basicsr.yml"
    opt2.write_text(f"name: b\nscale: 4\nmodels: [bicubic]\nval:\n  metrics:\n    psnr: {{type: calculate_psnr}}\n"
                    f"    niqe: {{type: calculate_niqe, crop_border: 4}}\n"
                    f"datasets:\n  test_1:\n    dataroot_gt: {hr_dir}\n")
    assert load_test_options(opt2).metric_names == ["psnr", "ssim", "color_drift", "niqe"]
    opt2.write_text(opt2.read_text().replace("calculate_niqe", "calculate_fid"))
    with pytest.raises(OptionsError, match=r"val\.metrics\.niqe\.type: 'calculate_fid' is not allowed; allowed values"):
        load_test_options(opt2)


def test_small_image_and_missing_backbone_errors_name_the_file(tmp_path, natural_image, monkeypatch, capsys):
    hr_dir = tmp_path / "Tiny" / "HR"
    imwrite(hr_dir / "small.png", natural_image[:64, :64])
    code = test_command.main(["--model", "bicubic", "--scale", "4", "--hr", str(hr_dir), "--name", "s",
                              "--experiments-root", str(tmp_path / "exp"), "-q", "--metrics", "niqe"])
    err = capsys.readouterr().err
    assert code == 1 and "small.png" in err and "smaller than one 96x96 block" in err

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch"))
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    code = test_command.main(["--model", "bicubic", "--scale", "4", "--hr", str(hr_dir), "--name", "l",
                              "--experiments-root", str(tmp_path / "exp"), "-q", "--metrics", "lpips"])
    err = capsys.readouterr().err
    assert code == 1 and "alexnet-owt-7be5be79.pth" in err
    assert str(tmp_path / "empty_torch" / "hub" / "checkpoints") in err
