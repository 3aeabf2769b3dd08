"""LDL's artifact map against a hand computation and in a GAN run; traiNNer-redux's ``train.losses`` list."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_training import make_tiny_data, tiny_options_dict

from esrgan.losses import FocalFrequencyLoss, L1Loss, artifact_map, local_variance
from esrgan.options import OptionsError, options_from_dict


def _local_variance_by_hand(r: np.ndarray, k: int) -> np.ndarray:
    """Unbiased variance of the k x k window around each pixel of a 2-D map, the border mirrored."""
    pad = k // 2
    p = np.pad(r, pad, mode="reflect")
    out = np.empty_like(r)
    for y in range(r.shape[0]):
        for x in range(r.shape[1]):
            out[y, x] = p[y : y + k, x : x + k].var(ddof=1)
    return out


def test_artifact_map_equals_a_hand_computation():
    rng = np.random.default_rng(0)
    gt = rng.random((2, 3, 9, 11))
    out = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1)
    ema = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1)
    got = artifact_map(*(torch.from_numpy(a) for a in (gt, out, ema)), ksize=5).numpy()
    assert got.shape == (2, 1, 9, 11)
    for n in range(2):
        r = np.abs(gt[n] - out[n]).sum(0)
        r_ema = np.abs(gt[n] - ema[n]).sum(0)
        want = r.var(ddof=1) ** 0.2 * _local_variance_by_hand(r, 5)
        want[r < r_ema] = 0
        np.testing.assert_allclose(got[n, 0], want, rtol=1e-12, atol=1e-15)
        assert 0.2 < (want == 0).mean() < 0.8  # both branches of the refinement are exercised
    # the published window: 7 x 7
    np.testing.assert_allclose(local_variance(torch.from_numpy(gt[:1, :1]), 7).numpy()[0, 0],
                               _local_variance_by_hand(gt[0, 0], 7), rtol=1e-12)


def test_artifact_loss_removes_artifacts_and_keeps_details():
    """Descending the LDL loss alone (the map as a weight, as the trainer uses it): noise where the EMA output is
    clean (an artifact) is removed; where the EMA output is as far off (a detail being learnt), the output is
    left alone."""
    torch.manual_seed(0)
    gt = torch.rand(1, 3, 32, 32) * 0.2 + 0.4
    noise = torch.randn(1, 3, 32, 32) * 0.15
    out = (gt + noise).clone().requires_grad_(True)
    ema = gt.clone()
    ema[..., 16:] = gt[..., 16:] + 1.5 * noise[..., 16:]  # right half: the EMA generator is worse there
    opt = torch.optim.Adam([out], lr=0.01)
    l1 = L1Loss()
    start = (out.detach() - gt).abs()
    for _ in range(60):
        w = artifact_map(gt, out.detach(), ema, ksize=7)
        loss = l1(w * out, w * gt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = (out.detach() - gt).abs()
    assert end[..., :16].mean() < 0.5 * start[..., :16].mean()  # artifacts: removed
    torch.testing.assert_close(end[..., 16:], start[..., 16:], atol=1e-6, rtol=0)  # details: untouched


# ---- options -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_data(tmp_path_factory.mktemp("ldldata"), n_train=4, n_val=1, size=32)


def _trainner_losses() -> list[dict]:
    return [
        {"type": "l1loss", "loss_weight": 1e-2},
        {"type": "ffloss", "loss_weight": 0.2},
        {"type": "ldlloss", "loss_weight": 1.0, "criterion": "l1"},
        {"type": "distsloss", "loss_weight": 0},  # traiNNer-redux's way to turn one off
        {"type": "perceptualloss", "layer_weights": {"conv2_2": 1.0}, "perceptual_weight": 1.0, "pretrained": False},
        {"type": "ganloss", "gan_type": "vanilla", "loss_weight": 0.1},
    ]


def test_trainner_loss_list_is_sorted_into_sections(data_root, tmp_path):
    raw = tiny_options_dict(data_root, tmp_path, gan=True)
    t = raw["train"]
    for key in ("pixel_opt", "perceptual_opt", "gan_opt"):
        del t[key]
    t["losses"] = _trainner_losses()
    opt = options_from_dict(raw)
    t = opt.train
    assert [(loss.type, loss.kwargs["loss_weight"]) for loss in t.losses] == [("L1Loss", 1e-2),
                                                                            ("FocalFrequencyLoss", 0.2)]
    assert t.pixel_opt is None and t.artifacts_opt.type == "L1Loss" and t.artifacts_opt.kwargs["loss_weight"] == 1
    assert (t.artifacts_opt.ksize, t.artifacts_opt.map_gradient) == (7, False)
    assert t.perceptual_opt.type == "PerceptualLoss" and t.gan_opt.kwargs["gan_type"] == "vanilla"
    assert t.gan_opt.relativistic  # ESRGANModel: relativistic unless set, as for gan_opt
    # a resolved file loads back to equal options
    again = options_from_dict(opt.to_dict())
    assert again.to_dict() == opt.to_dict()
    # BasicSR's key for LDL's loss
    raw2 = tiny_options_dict(data_root, tmp_path, gan=True)
    raw2["train"]["ldl_opt"] = {"type": "L1Loss", "loss_weight": 1.0}
    assert options_from_dict(raw2).train.artifacts_opt.kwargs["loss_weight"] == 1.0


def test_loss_list_and_ldl_refusals(data_root, tmp_path):
    def error(mutate, gan=True) -> str:
        raw = tiny_options_dict(data_root, tmp_path, gan=gan)
        mutate(raw["train"])
        with pytest.raises(OptionsError) as info:
            options_from_dict(raw)
        return str(info.value)

    assert "train.losses[0].type: GANLoss is also given as train.gan_opt" in error(
        lambda t: t.update(losses=[{"type": "ganloss", "loss_weight": 0.1}]))
    assert "train.losses: expected a list of losses" in error(lambda t: t.update(losses={"type": "l1loss"}))
    assert "train.losses[0].type: unknown pixel loss type 'l2los'" in error(
        lambda t: t.update(losses=[{"type": "l2los"}]))
    assert "train.losses[0].loss_weight: must be >= 0" in error(
        lambda t: t.update(losses=[{"type": "l1loss", "loss_weight": -1}]))
    assert "train.losses[0].criterion: 'l3' is not allowed; allowed values: l1, l2, charbonnier" in error(
        lambda t: t.update(losses=[{"type": "ldlloss", "criterion": "l3"}]))
    assert "train.artifacts_opt.ksize: must be odd and >= 3, got 4" in error(
        lambda t: t.update(artifacts_opt={"type": "L1Loss", "ksize": 4}))
    assert "train.artifacts_opt: LDL's artifact loss belongs to the GAN stage" in error(
        lambda t: t.update(artifacts_opt={"type": "L1Loss"}), gan=False)
    assert "train.artifacts_opt: LDL's artifact map compares the output with the EMA generator's" in error(
        lambda t: t.update(artifacts_opt={"type": "L1Loss"}, ema_decay=0))


def test_pixel_losses_of_the_list_add_up(data_root, tmp_path):
    from esrgan.training.models import SRModel

    raw = tiny_options_dict(data_root, tmp_path)
    raw["train"]["losses"] = [{"type": "FocalFrequencyLoss", "loss_weight": 0.5}, {"type": "l1loss", "loss_weight": 2}]
    model = SRModel(options_from_dict(raw), torch.device("cpu"))
    torch.manual_seed(0)
    out, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    losses = model._content_losses(out, gt, gt, "l_")
    assert set(losses) == {"l_pix", "l_focalfrequency", "l_l1"}
    assert float(losses["l_pix"]) == pytest.approx(float((out - gt).abs().mean()))
    assert float(losses["l_l1"]) == pytest.approx(2 * float((out - gt).abs().mean()))
    assert float(losses["l_focalfrequency"]) == pytest.approx(float(FocalFrequencyLoss(0.5)(out, gt)))


@pytest.mark.slow
def test_a_gan_run_with_the_trainner_list_trains_with_ldl(data_root, tmp_path, one_thread):
    from esrgan.checkpoint import load_checkpoint_file
    from esrgan.training.trainer import Trainer

    raw = tiny_options_dict(data_root, tmp_path, gan=True, total_iter=4)
    t = raw["train"]
    for key in ("pixel_opt", "perceptual_opt", "gan_opt"):
        del t[key]
    t["losses"] = _trainner_losses()
    raw["logger"] = {"print_freq": 1, "save_checkpoint_freq": 4, "use_tb_logger": False}
    raw["val"]["val_freq"] = 4
    opt = options_from_dict(raw)
    trainer = Trainer(opt, interactive=False)
    start = {k: v.clone() for k, v in trainer.model.net_g.state_dict().items()}
    assert trainer.run() == 0
    log = next(Path(opt.path.log).glob("train_*.log")).read_text()
    for name in ("l_g_l1", "l_g_focalfrequency", "l_g_artifacts", "l_g_percep", "l_g_gan", "l_d_real"):
        values = [float(v) for v in re.findall(rf"{name}: ([-0-9.e+]+)", log)]
        assert len(values) == 4 and all(np.isfinite(values)), name
    artifacts = [float(v) for v in re.findall(r"l_g_artifacts: ([-0-9.e+]+)", log)]
    assert max(artifacts) > 0  # the map is not all zeros: the output and EMA differ once G moved
    end = load_checkpoint_file(Path(opt.path.models) / "net_g_4.pth")["params"]
    assert any(not torch.equal(start[k], end[k]) for k in end)
