"""Network interpolation: exact endpoints, hand-computed blends, mixed layouts, refusals, the sweep's files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_nets import tiny_rrdbnet

from esrgan.archs import VGGStyleDiscriminator
from esrgan.checkpoint import load_checkpoint_file, save_network
from esrgan.commands.interp import main as interp_main
from esrgan.data.image import imread, imwrite
from esrgan.evaluation.compare import CAPTION_HEIGHT, GAP, default_crop_size, display_zoom, select_crop
from esrgan.evaluation.interpolation import (
    interpolate_checkpoints,
    interpolate_state_dicts,
    load_pair,
    parse_alphas,
)
from esrgan.evaluation.sweep import run_sweep
from esrgan.evaluation.tester import run_tests
from esrgan.evaluation.testsets import make_test_set
from esrgan.loading import load_generator


def official_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our (BasicSR) RRDBNet keys -> the official ESRGAN release's keys."""
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "body":
            key = f"RRDB_trunk.{parts[1]}.RDB{parts[2][-1]}.{'.'.join(parts[3:])}"
        else:
            names = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}
            key = ".".join([names.get(parts[0], parts[0]), *parts[1:]])
        out[key] = value
    return out


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    psnr_path, gan_path = tmp_path / "psnr.pth", tmp_path / "gan_official.pth"
    save_network(psnr_path, {"params": tiny_rrdbnet(1, 0.35).state_dict()})
    torch.save(official_layout(tiny_rrdbnet(2, 0.6).state_dict()), gan_path)  # a bare official-layout state dict
    return psnr_path, gan_path


@pytest.fixture
def hr_set(tmp_path: Path, natural_image: np.ndarray) -> Path:
    folder = tmp_path / "Tiny" / "HR"
    imwrite(folder / "p.png", natural_image[200:264, 200:264])
    imwrite(folder / "q.png", natural_image[40:88, 300:356])
    return folder


def test_state_dict_blend_by_hand() -> None:
    a = {"w": torch.tensor([0.0, 1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, -1.0, 2.0]), "n": torch.tensor(7)}
    mid = interpolate_state_dicts(a, b, 0.25)
    assert torch.equal(mid["w"], torch.tensor([1.0, 0.5, 2.0]))  # 0.75 * a + 0.25 * b
    assert mid["n"].item() == 3  # integer buffers come from the nearer end
    assert interpolate_state_dicts(a, b, 0.75)["n"].item() == 7


def test_endpoints_are_exact() -> None:
    a, b = tiny_rrdbnet(1, 0.3).state_dict(), tiny_rrdbnet(2, 0.7).state_dict()
    at0, at1 = interpolate_state_dicts(a, b, 0.0), interpolate_state_dicts(a, b, 1.0)
    assert all(torch.equal(at0[k], a[k]) for k in a)
    assert all(torch.equal(at1[k], b[k]) for k in b)
    half = interpolate_state_dicts(a, b, 0.5)
    k = "body.0.rdb2.conv3.weight"
    assert torch.allclose(half[k], (a[k] + b[k]) / 2, atol=1e-7) and half[k].dtype == a[k].dtype


def test_mixed_layouts_through_checkpoints(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    psnr_path, gan_path = pair
    _, _, sd_a = load_generator(psnr_path)
    _, _, sd_b = load_generator(gan_path)
    for alpha in (0.0, 1.0, 0.8):
        out = interpolate_checkpoints(psnr_path, gan_path, alpha, tmp_path / f"interp_{alpha}.pth")
        saved = load_checkpoint_file(out)["params"]
        assert set(saved) == set(sd_a)
        for k, v in saved.items():
            expected = {0.0: sd_a[k], 1.0: sd_b[k]}.get(alpha)
            if expected is not None:
                assert torch.equal(v, expected), k
            else:
                assert torch.allclose(v, 0.2 * sd_a[k] + 0.8 * sd_b[k], atol=1e-6), k
    # and the written checkpoint is a loadable generator again
    assert load_generator(tmp_path / "interp_0.8.pth")[0] == "RRDBNet"


def test_different_architectures_refused(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    psnr_path, _ = pair
    deeper, wider = tmp_path / "deeper.pth", tmp_path / "wider.pth"
    save_network(deeper, {"params": tiny_rrdbnet(3, 0.5, num_block=2).state_dict()})
    save_network(wider, {"params": tiny_rrdbnet(3, 0.5, num_feat=16).state_dict()})
    with pytest.raises(ValueError, match=r"num_block=1 vs 2.*keys only in the GAN model: body\.1\.rdb1\.conv1\.bias"):
        load_pair(psnr_path, deeper)
    with pytest.raises(ValueError, match=r"shapes differ: conv_first\.weight \(8, 3, 3, 3\) vs \(16, 3, 3, 3\)"):
        load_pair(psnr_path, wider)
    net_d = tmp_path / "net_d.pth"
    save_network(net_d, {"params": VGGStyleDiscriminator(3, 8, 128).state_dict()})
    with pytest.raises(ValueError, match=r"GAN model: .*net_d\.pth: not a generator"):
        load_pair(psnr_path, net_d)
    with pytest.raises(ValueError, match=r"keys only in the PSNR model: x"):
        interpolate_state_dicts({"x": torch.zeros(1)}, {"y": torch.zeros(1)}, 0.5)
    assert interp_main(["--psnr", str(psnr_path), "--gan", str(wider), "--alpha", "0.5", "-o",
                        str(tmp_path / "no.pth")]) == 1
    assert not (tmp_path / "no.pth").exists()


@pytest.mark.parametrize("alpha", [-0.1, 1.5, math.nan, math.inf, "half"])
def test_alpha_outside_unit_interval_refused(alpha: object) -> None:
    a = {"w": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"alpha must be"):
        interpolate_state_dicts(a, a, alpha)  # type: ignore[arg-type]


def test_alpha_refused_on_the_command_line(tmp_path: Path, pair: tuple[Path, Path],
                                           capsys: pytest.CaptureFixture) -> None:
    psnr_path, gan_path = pair
    rc = interp_main(["--psnr", str(psnr_path), "--gan", str(gan_path), "--alpha", "1.2",
                      "-o", str(tmp_path / "o.pth")])
    assert rc == 1 and "alpha must be in [0, 1]" in capsys.readouterr().err
    rc = interp_main(["--psnr", str(tmp_path / "missing.pth"), "--gan", str(gan_path), "--alpha", "0.5",
                      "-o", str(tmp_path / "o.pth")])
    assert rc == 1 and "missing.pth" in capsys.readouterr().err
    assert not (tmp_path / "o.pth").exists()


def test_parse_alphas() -> None:
    assert parse_alphas("0:1:0.1") == [round(0.1 * i, 10) for i in range(11)]
    assert parse_alphas("0:1:0.25") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert parse_alphas("1, 0, 0.5") == [0.0, 0.5, 1.0]
    assert parse_alphas([0.2, 0.8]) == [0.2, 0.8]
    for bad in ("0:1:0", "0:2:0.5", "a:b:c", "0:1"):
        with pytest.raises(ValueError):
            parse_alphas(bad)


def test_sweep_writes_table_plot_and_strip(tmp_path: Path, pair: tuple[Path, Path], hr_set: Path) -> None:
    psnr_path, gan_path = pair
    sets = [make_test_set(None, hr_set)]
    report = run_sweep(psnr_path, gan_path, "0:1:0.5", sets, 4, "sw", experiments_root=tmp_path, device="cpu",
                       progress=False)
    out = tmp_path / "sw"
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["alpha"]) for r in rows] == [0.0, 0.5, 1.0]
    assert set(rows[0]) == {"alpha", "Tiny_psnr_y", "Tiny_ssim_y", "Tiny_psnr_rgb", "Tiny_ssim_rgb", "Tiny_color_drift"}
    saved = json.loads((out / "sweep.json").read_text())
    assert [r["alpha"] for r in saved["results"]] == [0.0, 0.5, 1.0]

    # alpha 0 is the PSNR model itself: the tester scores it identically
    direct = run_tests([("psnr", str(psnr_path)), ("gan", str(gan_path))], sets, 4, "direct",
                       experiments_root=tmp_path, device="cpu", comparisons=False, progress=False)
    assert report.means[0.0]["Tiny"] == direct.mean("Tiny", "psnr")
    assert float(rows[0]["Tiny_psnr_y"]) == pytest.approx(direct.mean("Tiny", "psnr")["psnr_y"], abs=1e-6)
    assert report.means[0.0]["Tiny"]["psnr_y"] != report.means[1.0]["Tiny"]["psnr_y"]

    plot = imread(out / "psnr_vs_alpha.png")
    assert plot.shape[:2] == (360, 900)
    strip = imread(out / "strip_Tiny.png")  # first image p (64x64): 3 alphas + HR
    size = default_crop_size(64, 64)
    tile = size * display_zoom(size)
    assert strip.shape == (tile + CAPTION_HEIGHT, 4 * tile + 3 * GAP, 3)
    # panels alpha 0 | 0.5 | 1 | HR show one crop, where the two endpoints differ most (scored-out border excluded)
    ends = [imread(tmp_path / "direct" / "Tiny" / m / "p.png") for m in ("psnr", "gan")]
    top, left = select_crop(np.abs(ends[0].astype(float) - ends[1].astype(float)).mean(axis=2), size, border=4)
    zoom = display_zoom(size)
    for i, img in ((0, ends[0]), (2, ends[1]), (3, imread(hr_set / "p.png"))):
        want = np.repeat(np.repeat(img[top : top + size, left : left + size], zoom, 0), zoom, 1)
        np.testing.assert_array_equal(strip[:tile, i * (tile + GAP) : i * (tile + GAP) + tile], want)
    panel = [strip[:tile, i * (tile + GAP) : i * (tile + GAP) + tile] for i in range(3)]
    assert not np.array_equal(panel[1], panel[0]) and not np.array_equal(panel[1], panel[2])  # alpha 0.5 is a blend
    assert not (out / "models").exists()  # no intermediate checkpoints unless asked


def test_sweep_cli_saves_models_when_asked(tmp_path: Path, pair: tuple[Path, Path], hr_set: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    psnr_path, gan_path = pair
    rc = interp_main(["--psnr", str(psnr_path), "--gan", str(gan_path), "--sweep", "0,0.5", "--hr", str(hr_set),
                      "--scale", "4", "--name", "cli", "--experiments-root", str(tmp_path), "--save-models",
                      "--strip-image", "q", "--device", "cpu", "-q"])
    assert rc == 0
    assert "PSNR-Y" in capsys.readouterr().out
    saved = sorted(p.name for p in (tmp_path / "cli" / "models").iterdir())
    assert saved == ["net_g_alpha0.00.pth", "net_g_alpha0.50.pth"]
    pair_ = load_pair(psnr_path, gan_path)
    half = load_checkpoint_file(tmp_path / "cli" / "models" / "net_g_alpha0.50.pth")["params"]
    assert all(torch.equal(half[k], v) for k, v in pair_.interpolate(0.5).items())
    strip = imread(tmp_path / "cli" / "strip_Tiny.png")  # q is 48x56
    size = default_crop_size(48, 56)
    assert strip.shape[1] == 3 * size * display_zoom(size) + 2 * GAP


def test_sweep_option_file(tmp_path: Path, pair: tuple[Path, Path], hr_set: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    psnr_path, gan_path = pair
    monkeypatch.chdir(tmp_path)
    opt = tmp_path / "sweep.yml"
    opt.write_text(
        f"name: opt_sweep\nscale: 4\ninterp:\n  psnr: {psnr_path}\n  gan: {gan_path}\n  alphas: [0, 1]\n"
        "datasets:\n  test_1:\n    name: T\n    dataroot_gt: Tiny/HR\nval:\n  device: cpu\n"
    )
    assert interp_main(["-opt", str(opt), "-q"]) == 0
    rows = (tmp_path / "experiments" / "opt_sweep" / "sweep.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("alpha,T_psnr_y")
    opt.write_text("name: s\nscale: 4\ninterp: {psnr: a.pth}\ndatasets: {t: {dataroot_gt: Tiny/HR}}\n")
    assert interp_main(["-opt", str(opt)]) == 1


def test_sweep_scores_niqe_and_draws_the_perception_distortion_plane(
    tmp_path: Path, pair: tuple[Path, Path], natural_image: np.ndarray, capsys: pytest.CaptureFixture
) -> None:
    from esrgan.metrics import niqe

    psnr_path, gan_path = pair
    hr_dir = tmp_path / "Mid" / "HR"
    imwrite(hr_dir / "m.png", natural_image[100:212, 150:262])  # 112 px: one NIQE block inside the x4 border
    rc = interp_main(["--psnr", str(psnr_path), "--gan", str(gan_path), "--sweep", "0,0.5,1", "--hr", str(hr_dir),
                      "--scale", "4", "--name", "pd", "--experiments-root", str(tmp_path), "--device", "cpu", "-q",
                      "--metrics", "ssim,niqe"])
    assert rc == 0
    out = tmp_path / "pd"
    printed = capsys.readouterr().out
    assert "NIQE" in printed and "PSNR-Y" in printed  # psnr is always scored: it is the distortion axis
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["metrics"] == ["psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "niqe"]
    for r in saved["results"]:
        sr = imread(out / "Mid" / f"alpha{r['alpha']:.2f}" / "m.png")
        assert r["Mid"]["niqe"] == pytest.approx(niqe(sr, crop_border=4), abs=1e-12)
    assert len({r["Mid"]["niqe"] for r in saved["results"]}) == 3  # a different picture at every alpha
    with open(out / "sweep.csv", newline="") as f:
        assert "Mid_niqe" in next(csv.reader(f))
    plot = imread(out / "perception_distortion.png")
    assert plot.shape[:2] == (440, 550)
    assert (plot < 100).any()  # axes, points and labels drawn
    assert (out / "psnr_vs_alpha.png").is_file()
