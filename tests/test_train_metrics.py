"""Validation with NIQE (and the metric table's directions) in a tiny training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_training import make_tiny_data, tiny_options_dict

from esrgan.checkpoint import load_checkpoint_file
from esrgan.data.image import imread
from esrgan.metrics import niqe
from esrgan.options import MetricOptions, from_mapping, options_from_dict
from esrgan.training.trainer import Trainer
from esrgan.training.validation import BestTracker, metric_specs


def _metrics(raw: dict, scale: int = 4) -> dict[str, MetricOptions]:
    """As the option loader resolves them: a metric without crop_border crops the scale."""
    return {k: from_mapping(MetricOptions, {"crop_border": scale, **v}, f"val.metrics.{k}") for k, v in raw.items()}


def test_metric_specs_take_the_direction_from_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from esrgan.archs.vgg import VGGWeightsNotFoundError
    from esrgan.metrics.lpips_metric import LPIPS, backbone_weights_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    # a missing LPIPS backbone fails when the metrics are set up, before any training
    with pytest.raises(VGGWeightsNotFoundError, match=r"vgg16-397923af\.pth"):
        metric_specs(_metrics({"l": {"type": "lpips", "net": "vgg"}}))
    path = backbone_weights_path("alex")
    path.parent.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in LPIPS("alex", backbone=False).features.state_dict().items()}, path)
    specs = metric_specs(_metrics({"p": {"type": "calculate_psnr"}, "n": {"type": "calculate_niqe"},
                                   "l": {"type": "lpips"}, "n2": {"type": "niqe", "better": "higher"}}))
    assert [s.higher_is_better for s in specs] == [True, False, False, True]
    assert [s.on_device for s in specs] == [False, False, True, False]
    assert specs[2].fn.keywords == {"net": "alex"}
    tracker = BestTracker()
    assert tracker.update("set", specs[1], 5.0, 1) and tracker.update("set", specs[1], 4.0, 2)
    assert not tracker.update("set", specs[1], 4.5, 3)
    assert tracker.best["set"]["n"] == {"val": 4.0, "iter": 2}
    # an unknown type is refused when the options are read, naming the key and the known types
    known = "color_drift, dists, lpips, niqe, psnr, ssim"
    with pytest.raises(ValueError, match=rf"val.metrics.x.type: 'fid' is not allowed; allowed values: {known}"):
        _metrics({"x": {"type": "fid"}})


def test_options_accept_niqe_and_lpips_types(tmp_path: Path) -> None:
    d = tiny_options_dict(tmp_path / "data", tmp_path / "exp")
    d["val"]["metrics"] = {"niqe": {"type": "calculate_niqe"}, "lpips": {"type": "calculate_lpips", "net": "vgg"}}
    opt = options_from_dict(d)
    assert opt.val.metrics["niqe"].type == "niqe" and opt.val.metrics["niqe"].better is None
    assert opt.val.metrics["lpips"].type == "lpips" and opt.val.metrics["lpips"].net == "vgg"
    assert opt.val.metrics["niqe"].crop_border == 4


@pytest.mark.slow
def test_tiny_run_validates_with_niqe_and_keeps_the_lowest(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    # NIQE needs 96x96 blocks after the 4-pixel crop: 112-pixel validation images.
    data = make_tiny_data(tmp_path / "data", n_train=4, n_val=2, size=112)
    d = tiny_options_dict(data, tmp_path / "exp", total_iter=8)
    d["val"].update(val_freq=2, metrics={"niqe": {"type": "calculate_niqe", "crop_border": 4},
                                         "psnr": {"type": "psnr", "crop_border": 4}})
    d["logger"]["save_checkpoint_freq"] = 2
    opt = options_from_dict(d)
    trainer = Trainer(opt, interactive=False)
    assert trainer.run() == 0
    root = Path(opt.path.experiments_root)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(root / "tb_logger"), size_guidance={"scalars": 0})
    acc.Reload()
    logged = {e.step: e.value for e in acc.Scalars("metrics/tinyval/niqe")}
    assert sorted(logged) == [2, 4, 6, 8]
    # the logged value is NIQE of the saved 8-bit SR images, averaged
    for it, value in logged.items():
        scores = [niqe(imread(root / "visualization" / "tinyval" / f"{i:03d}_{it}.png"), crop_border=4)
                  for i in range(2)]
        assert value == pytest.approx(np.mean(scores), abs=1e-4)
    best = trainer.best.best["tinyval"]["niqe"]
    best_iter = min(logged, key=logged.get)
    assert best == {"val": pytest.approx(logged[best_iter], abs=1e-4), "iter": best_iter}
    saved = load_checkpoint_file(root / "models" / "net_g_best_niqe.pth")["params"]
    at_best = load_checkpoint_file(root / "models" / f"net_g_{best_iter}.pth")["params"]
    assert all(torch.equal(saved[k], at_best[k]) for k in saved)


def test_validation_scores_lpips_and_niqe_on_the_8bit_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            natural_image: np.ndarray) -> None:
    from esrgan.data.image import img2tensor, tensor2img
    from esrgan.metrics import lpips
    from esrgan.metrics.lpips_metric import LPIPS, backbone_weights_path
    from esrgan.training.validation import validate_dataset

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    path = backbone_weights_path("alex")
    path.parent.mkdir(parents=True)
    torch.manual_seed(3)
    torch.save({f"features.{k}": v for k, v in LPIPS("alex", backbone=False).features.state_dict().items()}, path)
    gt = img2tensor(natural_image[:112, :112]).unsqueeze(0)
    noisy = (gt + 0.05 * torch.randn_like(gt)).clamp(0, 1)
    specs = metric_specs(_metrics({"lpips": {"type": "calculate_lpips"}, "niqe": {"type": "niqe"}}))
    loader = [{"lq": noisy, "gt": gt, "lq_path": ["x.png"]}]
    values, _ = validate_dataset(lambda lq: lq.clone(), loader, specs, save_dir=None, iteration=1)
    sr8 = tensor2img(noisy[0])
    hr8 = tensor2img(gt[0])
    assert values["lpips"] == pytest.approx(lpips(sr8, hr8, crop_border=4), abs=1e-6)
    assert values["niqe"] == pytest.approx(niqe(sr8, crop_border=4), abs=1e-9)
