"""Training-side research options: tiled validation (val.tile), the colour-drift metric in validation and the
declared selection criterion (val.select)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_training import make_tiny_data, tiny_options_dict

from esrgan.options import OptionsError, options_from_dict


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_tiny_data(tmp_path_factory.mktemp("researchdata"), n_train=4, n_val=0, size=32)
    # validation images large enough to be cut in several tiles: 176 px HR, 44 px LR
    make_tiny_data(root / "big", n_train=0, n_val=2, size=176)
    return root


def _raw(data_root: Path, exp: Path, **kw) -> dict:
    raw = tiny_options_dict(data_root, exp, **kw)
    raw["datasets"]["val"]["dataroot_gt"] = str(data_root / "big" / "val" / "HR")
    raw["datasets"]["val"]["dataroot_lq"] = str(data_root / "big" / "val" / "LR")
    return raw


def test_tiled_validation_equals_whole_image_validation(data_root, tmp_path, one_thread):
    from esrgan.data.build import build_dataset
    from esrgan.data.loader import build_dataloader
    from esrgan.training.models import SRModel
    from esrgan.training.validation import metric_specs, validate_dataset

    raw = _raw(data_root, tmp_path)
    raw["network_g"] = {"type": "RRDBNet", "num_feat": 8, "num_block": 1, "num_grow_ch": 8}
    opt = options_from_dict(raw, ["val.tile=12", "val.tile_pad=12"])
    assert (opt.val.tile, opt.val.tile_pad) == (12, 12)
    torch.manual_seed(0)
    model = SRModel(opt, torch.device("cpu"))
    loader = build_dataloader(build_dataset(opt.datasets["val"]), opt.datasets["val"])
    metrics = metric_specs(opt.val.metrics)
    calls = []
    model.eval_network().register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    whole, _ = validate_dataset(model.test, loader, metrics, save_dir=None, iteration=0)
    assert calls == [(1, 3, 44, 44)] * 2
    with model.validator(opt.val.tile, opt.val.tile_pad) as tiled_fn:
        calls.clear()  # the Upscaler's probe of the network's sizes is not validation
        tiled, _ = validate_dataset(tiled_fn, loader, metrics, save_dir=None, iteration=0)
        tiled_calls = list(calls)
        lq = next(iter(loader))["lq"]
        diff = (tiled_fn(lq).cpu() - model.test(lq).clamp(0, 1)).abs().max()
    assert len(tiled_calls) > 2 and all(s[-1] < 44 for s in tiled_calls)  # really in tiles
    assert float(diff) < 1e-4, float(diff)  # a 12-pixel pad covers this network's receptive field
    for k in whole:
        assert tiled[k] == pytest.approx(whole[k], abs=1e-3), k


def test_val_tile_values_are_checked(data_root, tmp_path):
    for override, message in (
        ("val.tile=-1", "val.tile: must be >= 0, got -1"),
        ("val.tile=8.5", "val.tile: expected an integer"),
        ("val.tile_pad=-2", "val.tile_pad: must be >= 0"),
        ("val.tile_pad=8", "val.tile_pad: only for tiled validation"),
    ):
        with pytest.raises(OptionsError) as info:
            options_from_dict(_raw(data_root, tmp_path), [override] + (["val.tile=16"] if "-2" in override else []))
        assert message in str(info.value), (override, str(info.value))


# ---- colour drift (the metric itself: tests/test_metrics_color_drift.py) ---------------------------------------

def test_validation_scores_color_drift_against_the_lr_input(data_root, tmp_path):
    from esrgan.data.build import build_dataset
    from esrgan.data.loader import build_dataloader
    from esrgan.metrics import color_drift
    from esrgan.training.validation import metric_specs, validate_dataset

    raw = _raw(data_root, tmp_path)
    raw["val"]["metrics"]["drift"] = {"type": "color_drift"}
    opt = options_from_dict(raw)
    loader = build_dataloader(build_dataset(opt.datasets["val"]), opt.datasets["val"])
    warm = torch.tensor([1.0, 0.9, 0.8]).view(1, 3, 1, 1)

    def upscale_warmer(lq):  # nearest x4, colours pushed towards yellow
        return torch.nn.functional.interpolate(lq, scale_factor=4, mode="nearest") * warm

    values, _ = validate_dataset(upscale_warmer, loader, metric_specs(opt.val.metrics), save_dir=None, iteration=0)
    want = []
    for batch in loader:
        sr = upscale_warmer(batch["lq"]).clamp(0, 1).mul(255).round()[0].permute(1, 2, 0).numpy()
        want.append(color_drift(sr, batch["lq"][0].permute(1, 2, 0).numpy() * 255))
    assert values["drift"] == pytest.approx(np.mean(want), rel=1e-6)
    assert values["drift"] > 2  # a visible shift


def test_esrgan_test_reports_color_drift_next_to_psnr(data_root, tmp_path):
    from esrgan.data.image import imread
    from esrgan.evaluation.tested_models import BicubicModel
    from esrgan.evaluation.tester import run_tests
    from esrgan.evaluation.testsets import make_test_set
    from esrgan.metrics import color_drift

    hr_dir, lr_dir = data_root / "big" / "val" / "HR", data_root / "big" / "val" / "LR"
    report = run_tests(["bicubic"], [make_test_set("Big", hr_dir, lr_dir)], 4, "drift", experiments_root=tmp_path,
                       device="cpu", progress=False, comparisons=False, save_images=False)
    assert report.keys[0] == "psnr_y" and "color_drift" in report.keys  # scored by default
    for row in report.scores["Big"]["bicubic"]:
        lr = imread(lr_dir / f"{row.image}.png")
        assert row.color_drift == pytest.approx(color_drift(BicubicModel(4).upscale(lr), lr), rel=1e-9)
    assert "ColorDrift" in report.format_table() and "colour drift = mean CIEDE2000" in report.format_table()
