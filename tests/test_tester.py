"""The tester: literature figures for bicubic, table values against the metric functions, outputs, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_nets import tiny_rrdbnet

from esrgan.archs import VGGStyleDiscriminator
from esrgan.checkpoint import save_network
from esrgan.commands import test as test_command
from esrgan.data.image import img2tensor, imread, imwrite, mod_crop, tensor2img
from esrgan.evaluation import tested_models as eval_models
from esrgan.evaluation.compare import CAPTION_HEIGHT, GAP, default_crop_size, display_zoom, select_crop
from esrgan.evaluation.tester import run_tests
from esrgan.evaluation.testsets import iter_test_images, make_test_set, sets_from_options
from esrgan.imageops.imresize import imresize
from esrgan.metrics import psnr, ssim
from esrgan.options import OptionsError
from esrgan.options.testing import load_test_options

REPO = Path(__file__).resolve().parents[1]



@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_x4.pth"
    save_network(path, {"params": tiny_rrdbnet(1).state_dict()})
    return path


@pytest.fixture
def small_set(tmp_path: Path, natural_image: np.ndarray) -> tuple[Path, Path]:
    """3 HR images (one grey, one not a multiple of 4) and their MATLAB-bicubic LR named '<stem>x4'."""
    hr_dir, lr_dir = tmp_path / "Small" / "HR", tmp_path / "Small" / "LR"
    images = {
        "a": natural_image[100:145, 200:242],  # 45x42 -> modcrop 44x40
        "b": natural_image[300:332, 50:86, 1],  # grey 32x36
        "c": natural_image[10:46, 400:436],
    }
    for stem, img in images.items():
        imwrite(hr_dir / f"{stem}.png", img)
        imwrite(lr_dir / f"{stem}x4.png", imresize(mod_crop(img, 4), 0.25))
    return hr_dir, lr_dir


# ----------------------------------------------------------------------------- literature figures


def test_bicubic_reproduces_published_set5_set14(shared_data: Path, tmp_path: Path) -> None:
    sets = [
        make_test_set("Set5", shared_data / "Set5/HR", shared_data / "Set5/LR_bicubic/X4"),
        make_test_set("Set14", shared_data / "Set14/HR", shared_data / "Set14/LR_bicubic/X4"),
    ]
    report = run_tests(["bicubic"], sets, 4, "bic", experiments_root=tmp_path, save_images=False,
                       comparisons=False, progress=False)
    set5, set14 = report.mean("Set5", "bicubic"), report.mean("Set14", "bicubic")
    # Published (MATLAB): 28.42 / 26.00 dB, SSIM 0.8104 / 0.7027.
    assert set5["psnr_y"] == pytest.approx(28.42, abs=0.02)
    assert set14["psnr_y"] == pytest.approx(26.00, abs=0.02)
    assert set5["ssim_y"] == pytest.approx(0.8104, abs=0.002)
    assert set14["ssim_y"] == pytest.approx(0.7027, abs=0.002)
    # bridge is grey: scored on its own values (replicated-to-RGB Y would give the Set14 mean 26.09)
    bridge = next(s for s in report.scores["Set14"]["bicubic"] if s.image == "bridge")
    assert bridge.grey and bridge.psnr_y == bridge.psnr_rgb
    saved = json.loads((tmp_path / "bic" / "results.json").read_text())
    assert saved["sets"]["Set5"]["bicubic"]["mean"]["psnr_y"] == set5["psnr_y"]
    assert len(saved["sets"]["Set14"]["bicubic"]["images"]) == 14
    assert "own grey values" in saved["conventions"]


def test_hr_only_set_makes_the_matlab_lr(shared_data: Path) -> None:
    hr_only = make_test_set(None, shared_data / "Set5" / "HR")
    assert hr_only.name == "Set5"
    for item in iter_test_images(hr_only, 4):
        assert item.lr_path is None
        assert np.array_equal(item.lr, imread(shared_data / "Set5/LR_bicubic/X4" / f"{item.name}x4.png"))


# ----------------------------------------------------------------------------- tables and files


def test_table_values_equal_metric_functions(tmp_path: Path, small_set: tuple[Path, Path], ckpt: Path) -> None:
    hr_dir, lr_dir = small_set
    test_set = make_test_set(None, hr_dir, lr_dir)
    report = run_tests([("net", str(ckpt)), "bicubic"], [test_set], 4, "t", experiments_root=tmp_path,
                       device="cpu", progress=False)
    out = tmp_path / "t"
    saved = json.loads((out / "results.json").read_text())
    net = tiny_rrdbnet(1)
    for model in ("net", "bicubic"):
        rows = report.scores["Small"][model]
        assert [r.image for r in rows] == ["a", "b", "c"]
        for row in rows:
            hr = mod_crop(imread(hr_dir / f"{row.image}.png"), 4)
            lr = imread(lr_dir / f"{row.image}x4.png")
            sr = imread(out / "Small" / model / f"{row.image}.png")
            assert sr.shape == hr.shape
            y = hr.ndim == 3
            assert row.psnr_y == psnr(sr, hr, crop_border=4, y_channel=y)
            assert row.ssim_y == ssim(sr, hr, crop_border=4, y_channel=y)
            assert row.psnr_rgb == psnr(sr, hr, crop_border=4)
            assert row.ssim_rgb == ssim(sr, hr, crop_border=4)
            json_row = next(r for r in saved["sets"]["Small"][model]["images"] if r["image"] == row.image)
            assert json_row["psnr_y"] == row.psnr_y and json_row["grey"] == (not y)
            if model == "bicubic":
                assert np.array_equal(sr, imresize(lr, 4))
            else:
                # independent forward pass; grey images go in as RGB and come out as BT.601 luma
                with torch.no_grad():
                    ref = net(img2tensor(lr if y else np.repeat(lr[:, :, None], 3, 2)).unsqueeze(0)).clamp(0, 1)
                luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
                ref_img = tensor2img(ref if y else (ref * luma).sum(dim=1, keepdim=True))
                assert np.abs(ref_img.astype(int) - sr.astype(int)).max() <= 1
        mean = report.mean("Small", model)
        assert mean["psnr_y"] == pytest.approx(np.mean([r.psnr_y for r in rows]), rel=1e-12)
        assert saved["sets"]["Small"][model]["mean"] == pytest.approx(mean, rel=1e-12)

    with open(out / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2 * (3 + 1)  # 2 models x (3 images + MEAN)
    mean_row = next(r for r in table if r["model"] == "net" and r["image"] == "MEAN")
    assert float(mean_row["psnr_y"]) == pytest.approx(report.mean("Small", "net")["psnr_y"], abs=1e-6)

    text = report.format_table()
    assert "own grey values" in text and f"{report.mean('Small', 'bicubic')['psnr_y']:6.2f}" in text

    # comparison picture: bicubic | net | HR; the bicubic column is the model 'bicubic' itself
    pic = imread(out / "Small" / "compare" / "a.png")
    size = default_crop_size(44, 40)
    tile = size * display_zoom(size)
    # two caption lines: PSNR-Y, then the colour drift scored beside it by default
    assert pic.shape == (tile + 2 * CAPTION_HEIGHT, 3 * tile + 2 * GAP, 3)
    # each panel is the same crop, enlarged, taken where bicubic's error is largest (outside the scored-out border)
    hr_a = mod_crop(imread(hr_dir / "a.png"), 4)
    panels = [imread(out / "Small" / "bicubic" / "a.png"), imread(out / "Small" / "net" / "a.png"), hr_a]
    top, left = select_crop(np.abs(panels[0].astype(float) - hr_a.astype(float)).mean(axis=2), size, border=4)
    zoom = display_zoom(size)
    for i, img in enumerate(panels):
        want = np.repeat(np.repeat(img[top : top + size, left : left + size], zoom, 0), zoom, 1)
        np.testing.assert_array_equal(pic[:tile, i * (tile + GAP) : i * (tile + GAP) + tile], want)
        assert (pic[tile:, i * (tile + GAP) : i * (tile + GAP) + tile] < 128).any()  # a caption is drawn


def test_foreign_layouts_score_like_ours(tmp_path: Path, small_set: tuple[Path, Path], ckpt: Path) -> None:
    """The same weights as a bare state dict in the official ESRGAN release's key names (RRDB_trunk, RDB1,
    trunk_conv, upconv1, HRconv) and as a bare .safetensors file: identical rows."""
    from safetensors.torch import save_file

    sd = tiny_rrdbnet(1).state_dict()
    renames = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}
    official = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "body":
            key = f"RRDB_trunk.{parts[1]}.RDB{parts[2][-1]}.{'.'.join(parts[3:])}"
        else:
            key = ".".join([renames.get(parts[0], parts[0]), *parts[1:]])
        official[key] = value
    torch.save(official, tmp_path / "official.pth")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "plain.safetensors"))
    test_set = make_test_set(None, *small_set)
    report = run_tests([("ours", str(ckpt)), ("official", str(tmp_path / "official.pth")),
                        ("st", str(tmp_path / "plain.safetensors"))], [test_set], 4, "lay",
                       experiments_root=tmp_path, device="cpu", save_images=False, comparisons=False, progress=False)
    ours = [r.metrics() for r in report.scores["Small"]["ours"]]
    assert [r.metrics() for r in report.scores["Small"]["official"]] == ours
    assert [r.metrics() for r in report.scores["Small"]["st"]] == ours


def test_select_crop_finds_the_worst_window() -> None:
    rng = np.random.default_rng(0)
    err = rng.random((30, 40))
    err[12:20, 25:33] += 5.0
    top, left = select_crop(err, 8)
    brute = max((err[t : t + 8, l : l + 8].sum(), t, l) for t in range(23) for l in range(33))
    assert (top, left) == (brute[1], brute[2]) == (12, 25)
    # the scored-out border is never chosen
    err2 = np.zeros((30, 40))
    err2[0:6, 0:6] = 9.0
    t2, l2 = select_crop(err2, 8, border=4)
    assert t2 >= 4 and l2 >= 4


def test_large_images_go_through_tiles(monkeypatch: pytest.MonkeyPatch, natural_image: np.ndarray) -> None:
    from esrgan.inference import upscaler as upscaler_module

    model = eval_models.NetworkModel(tiny_rrdbnet(2), "n", 4, device="cpu", tile_pad=4)
    assert model.upscaler.tile == 0 and model.upscaler.dtype == torch.float32  # automatic tiles, fp32 scores
    lr = natural_image[:40, :48]
    whole = model.upscale(lr)
    assert model.upscaler.forward_passes(1, 40, 48) == 1
    # Free memory for one 32x32 window only: the 40x48 image goes through 24-pixel tiles (+ 2 x 4 context).
    per_pixel = model.upscaler.bytes_per_pixel()
    free = 32 * 32 * per_pixel / upscaler_module.MEMORY_SHARE
    monkeypatch.setattr(upscaler_module, "free_memory", lambda device: free)
    assert model.upscaler.auto_tile(40, 48) == 24 and model.upscaler.forward_passes(1, 40, 48) == 4
    tiled = model.upscale(lr)
    assert tiled.shape == whole.shape == (160, 192, 3)
    # 4 px of context per tile for a tiny random network: the seams differ little from the whole-image result
    assert np.abs(tiled.astype(int) - whole.astype(int)).mean() < 1.0


# ----------------------------------------------------------------------------- bad input


def test_missing_checkpoint_is_named(tmp_path: Path, small_set: tuple[Path, Path]) -> None:
    test_set = make_test_set(None, *small_set)
    with pytest.raises(FileNotFoundError, match=r"nope/missing\.pth.*not found"):
        run_tests(["bicubic", "nope/missing.pth"], [test_set], 4, "x", experiments_root=tmp_path, progress=False)
    assert not (tmp_path / "x").exists()  # nothing ran


def test_checkpoint_that_is_not_a_generator(tmp_path: Path, small_set: tuple[Path, Path]) -> None:
    path = tmp_path / "net_d.pth"
    save_network(path, {"params": VGGStyleDiscriminator(3, 8, 128).state_dict()})
    with pytest.raises(ValueError, match=r"net_d\.pth: not a generator"):
        run_tests([str(path)], [make_test_set(None, *small_set)], 4, "x", experiments_root=tmp_path, progress=False)


def test_model_of_another_scale_refused(tmp_path: Path, small_set: tuple[Path, Path], ckpt: Path) -> None:
    with pytest.raises(ValueError, match=r"upscales x4, but the test scale is x2"):
        run_tests([str(ckpt)], [make_test_set(None, small_set[0])], 2, "x", experiments_root=tmp_path,
                  device="cpu", progress=False)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"no images in .*empty"):
        run_tests(["bicubic"], [make_test_set("E", tmp_path / "empty")], 4, "x", experiments_root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"HR folder not found: .*nothere"):
        make_test_set(None, tmp_path / "nothere")
    with pytest.raises(FileNotFoundError, match=r"LR folder not found: .*nolr"):
        make_test_set(None, tmp_path / "empty", tmp_path / "nolr")


def test_hr_lr_size_mismatch(tmp_path: Path, natural_image: np.ndarray) -> None:
    imwrite(tmp_path / "HR" / "img.png", natural_image[:64, :64])
    imwrite(tmp_path / "LR" / "img.png", natural_image[:15, :16])  # should be 16x16
    mismatch = r"size mismatch.*HR[/\\]img\.png.*LR[/\\]img\.png should be 16x16, but it is 16x15"
    with pytest.raises(ValueError, match=mismatch):
        list(iter_test_images(make_test_set(None, tmp_path / "HR", tmp_path / "LR"), 4))
    imwrite(tmp_path / "HR" / "other.png", natural_image[:64, :64])
    (tmp_path / "LR" / "img.png").unlink()
    imwrite(tmp_path / "LR" / "imgx4.png", natural_image[:16, :16])
    with pytest.raises(FileNotFoundError, match=r"no LR image for HR other\.png.*'otherx4\.\*'"):
        list(iter_test_images(make_test_set(None, tmp_path / "HR", tmp_path / "LR"), 4))


# ----------------------------------------------------------------------------- command line and option files


def test_cli_writes_results(tmp_path: Path, small_set: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    hr_dir, lr_dir = small_set
    rc = test_command.main(["--model", "bicubic", "--scale", "4", "--hr", str(hr_dir), "--lr", str(lr_dir),
                    "--name", "cli", "--experiments-root", str(tmp_path / "exp"), "-q", "--no-compare"])
    assert rc == 0
    saved = json.loads((tmp_path / "exp" / "cli" / "results.json").read_text())
    assert [r["image"] for r in saved["sets"]["Small"]["bicubic"]["images"]] == ["a", "b", "c"]
    assert not (tmp_path / "exp" / "cli" / "Small" / "compare").exists()
    assert "conventions:" in capsys.readouterr().out

    rc = test_command.main(["--model", str(tmp_path / "gone.pth"), "--scale", "4", "--hr", str(hr_dir), "--name", "e",
                    "--experiments-root", str(tmp_path / "exp")])
    assert rc == 1 and "gone.pth" in capsys.readouterr().err


def test_option_file(tmp_path: Path, small_set: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)  # relative folders are relative to the working directory, as in BasicSR
    opt = tmp_path / "test_small.yml"
    opt.write_text(
        "name: small_opt\nscale: 4\nmodel_type: SRModel\nmodels: [bicubic]\n"
        "datasets:\n  test_1:\n    name: Small\n    dataroot_gt: Small/HR\n    dataroot_lq: Small/LR\n"
        "    filename_tmpl: '{}x4'\nval:\n  save_img: false\n"
    )
    assert test_command.main(["-opt", str(opt), "-q"]) == 0
    assert (tmp_path / "experiments" / "small_opt" / "results.json").is_file()
    assert not (tmp_path / "experiments" / "small_opt" / "Small" / "bicubic").exists()

    opt.write_text("name: s\nscale: 4\nmodels: [bicubic]\ndatasets:\n  test_1:\n    dataroot_gt: datasets/Set9/HR\n")
    assert test_command.main(["-opt", str(opt)]) == 1
    assert "datasets.test_1: test set" in capsys.readouterr().err
    opt.write_text("name: s\nscale: 4\nmodels: [bicubic]\nvall: {}\ndatasets: {t: {dataroot_gt: Small/HR}}\n")
    with pytest.raises(OptionsError, match=r"vall: unknown key; did you mean 'val'\? allowed keys: .*val"):
        load_test_options(opt)


def test_repository_configs_point_at_the_documented_layout(shared_data: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "datasets").mkdir()
    for name in ("Set5", "Set14"):
        (tmp_path / "datasets" / name).symlink_to(shared_data / name)
    monkeypatch.chdir(tmp_path)
    configs = sorted((REPO / "configs").glob("test_*.yml"))
    assert configs
    for path in configs:
        cfg = load_test_options(path)
        assert [t.name for t in sets_from_options(cfg)] == ["Set5", "Set14"] and cfg.scale == 4
    sweep = load_test_options(REPO / "configs" / "interp_sweep_x4.yml", require_interp=True)
    assert sweep.interp.psnr and sweep.interp.gan and sweep.interp.alphas == "0:1:0.1"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no datasets/ here: the error names the folder
    with pytest.raises(OptionsError, match=r"HR folder not found: datasets/Set5/HR"):
        sets_from_options(load_test_options(REPO / "configs" / "test_bicubic_x4.yml"))


def test_test_py_without_data_names_the_folder_and_the_download(tmp_path: Path) -> None:
    """``python test.py -opt configs/test_esrgan_x4.yml`` with no datasets/: fails before any model download."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, str(REPO / "test.py"), "-opt", str(REPO / "configs" / "test_esrgan_x4.yml")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert (f"test set Set5: HR folder not found: datasets/Set5/HR (relative to the current folder {tmp_path}); "
            "get it with: esrgan prepare download Set5") in run.stderr
    assert "download" not in run.stderr.split("get it with")[0] and not (tmp_path / "experiments").exists()
    (tmp_path / "HR").mkdir()
    with pytest.raises(FileNotFoundError, match=r"LR folder not found: .*mine.*; expected a folder of LR images"):
        make_test_set(None, tmp_path / "HR", tmp_path / "mine")
    (tmp_path / "datasets" / "Set14" / "HR").mkdir(parents=True)  # e.g. left by an interrupted download
    with pytest.raises(ValueError, match=r"no images in .*Set14.HR .*; get it with: esrgan prepare download Set14"):
        run_tests(["bicubic"], [make_test_set(None, tmp_path / "datasets" / "Set14" / "HR")], 4, "x",
                  experiments_root=tmp_path)


def test_a_second_run_archives_the_first_instead_of_overwriting(tmp_path: Path, small_set: tuple[Path, Path]) -> None:
    test_set = make_test_set(None, *small_set)
    run_tests(["bicubic"], [test_set], 4, "again", experiments_root=tmp_path, progress=False, comparisons=False)
    first = (tmp_path / "again" / "results.json").read_text()
    run_tests(["bicubic"], [test_set], 4, "again", experiments_root=tmp_path, progress=False, comparisons=False)
    archived = [p for p in tmp_path.iterdir() if p.name.startswith("again_archived_")]
    assert len(archived) == 1 and (archived[0] / "results.json").read_text() == first
    assert (tmp_path / "again" / "results.json").is_file()


def test_option_file_val_keys_work_or_are_refused(tmp_path: Path, small_set: tuple[Path, Path],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    head = ("name: v\nscale: 4\nmodels: [bicubic]\n"
            "datasets:\n  test_1:\n    name: Small\n    dataroot_gt: Small/HR\n    dataroot_lq: Small/LR\n"
            "    filename_tmpl: '{}x4'\n")
    opt = tmp_path / "v.yml"
    # val.pbar: false turns the progress bars off (as -q does); BasicSR's metric section is read
    opt.write_text(head + "val:\n  save_img: false\n  pbar: false\n  metrics:\n"
                   "    psnr: {type: calculate_psnr, crop_border: 4, test_y_channel: true}\n")
    assert test_command.main(["-opt", str(opt)]) == 0
    err = capsys.readouterr().err
    assert "%|" not in err  # no tqdm bar
    cfg = load_test_options(opt)
    assert (cfg.val.pbar, cfg.val.metrics["psnr"].type) == (False, "psnr")
    refused = {
        "  suffix: esrgan\n": "val.suffix: not supported",
        "  metrics: {niqe: {type: psnr, crop_border: 0}}\n": "val.metrics.niqe.crop_border: 0: the tester crops scale",
        "  metrics: {p: {type: psnrr}}\n": "val.metrics.p.type: 'psnrr' is not allowed (did you mean 'psnr'?)",
    }
    for line, message in refused.items():
        opt.write_text(head + "val:\n" + line)
        assert test_command.main(["-opt", str(opt)]) == 1
        err = capsys.readouterr().err
        assert message in err and str(opt) in err, err
