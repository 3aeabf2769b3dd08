"""End-to-end training runs on tiny data: files written, TensorBoard tags, exact resume, archive, NaN stop, signals."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from esrgan.checkpoint import load_checkpoint_file
from esrgan.data.image import imread
from esrgan.metrics import psnr
from esrgan.options import options_from_dict
from esrgan.training.tiny import make_tiny_data, tiny_options_dict
from esrgan.training.trainer import EXIT_NONFINITE, Trainer


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Tiny convolutions: one thread is faster than two fighting over a busy 2-core machine.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_data(tmp_path_factory.mktemp("tinydata"))


TOTAL = 6  # 8 training images, batch 2: 4 iterations per epoch, so iteration 3 is mid-epoch
HALF = 3


@pytest.fixture(scope="module")
def straight_psnr(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted PSNR-stage run of TOTAL iterations (checkpoint + validation every HALF, keep_last 1)."""
    exp = tmp_path_factory.mktemp("straight_psnr")
    overrides = (f"logger.save_checkpoint_freq={HALF}", "logger.keep_last=1", f"val.val_freq={HALF}")
    opt = _opt(data_root, exp, overrides, total_iter=TOTAL)
    assert _run(opt)[0] == 0
    return Path(opt.path.experiments_root)


@pytest.fixture(scope="module")
def straight_gan(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    exp = tmp_path_factory.mktemp("straight_gan")
    opt = _opt(data_root, exp, (f"logger.save_checkpoint_freq={HALF}",), gan=True, total_iter=TOTAL)
    code, trainer = _run(opt)
    assert code == 0 and trainer.model.relativistic  # gan_type ragan
    return Path(opt.path.experiments_root)


def _opt(data_root: Path, exp: Path, overrides: tuple[str, ...] = (), **kw):
    return options_from_dict(tiny_options_dict(data_root, exp, **kw), overrides)


def _run(opt, **kw) -> tuple[int, Trainer]:
    trainer = Trainer(opt, interactive=False, **kw)
    return trainer.run(), trainer


def _tb_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    out = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    out["__images__"] = acc.Tags()["images"]  # type: ignore[assignment]
    return out


def _weights(exp_root: Path, it: int, key: str = "params") -> dict[str, torch.Tensor]:
    return load_checkpoint_file(exp_root / "models" / f"net_g_{it}.pth")[key]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_psnr_stage_writes_checkpoints_images_log_and_tensorboard(straight_psnr: Path, data_root: Path) -> None:
    root = straight_psnr
    models = sorted(p.name for p in (root / "models").iterdir())
    # keep_last=1 pruned net_g_3.pth; latest and best are never pruned
    assert models == ["net_g_6.pth", "net_g_best_psnr.pth", "net_g_best_ssim.pth", "net_g_latest.pth"]
    assert sorted(p.name for p in (root / "training_states").iterdir()) == ["6.state"]
    ckpt = load_checkpoint_file(root / "models" / "net_g_6.pth")
    assert set(ckpt) == {"params", "params_ema"}
    _assert_same(ckpt["params"], load_checkpoint_file(root / "models" / "net_g_latest.pth")["params"])
    assert any(p.name.startswith("options_") and p.suffix == ".yml" for p in root.iterdir())
    log = next(root.glob("train_*.log")).read_text()
    assert "iter:       6" in log and "l_pix:" in log and "eta:" in log and "global batch 2" in log

    tb = _tb_scalars(root / "tb_logger")
    for tag in ("losses/l_pix", "lr/g", "time/iter", "time/data", "metrics/tinyval/psnr", "metrics/tinyval/ssim"):
        assert tag in tb, (tag, sorted(tb))
    assert [s for s, _ in tb["losses/l_pix"]] == [2, 4, 6]
    assert "images/tinyval/000" in tb["__images__"]
    # MultiStepLR(milestones=[3], gamma=0.5), stepped after each iteration: 2e-4 until 3, then 1e-4
    assert [v for _, v in tb["lr/g"]] == pytest.approx([2e-4, 1e-4, 1e-4])

    # The logged validation PSNR is the literature's PSNR of the saved 8-bit images (numpy reference).
    vis = root / "visualization" / "tinyval"
    values = [
        psnr(imread(vis / f"{i:03d}_6.png"), imread(data_root / "val" / "HR" / f"{i:03d}.png"), crop_border=4,
             y_channel=True)
        for i in range(2)
    ]
    assert dict(tb["metrics/tinyval/psnr"])[6] == pytest.approx(np.mean(values), abs=1e-4)
    state = load_checkpoint_file(root / "training_states" / "6.state")
    best = state["best"]["tinyval"]["psnr"]
    assert best["val"] == pytest.approx(max(v for _, v in tb["metrics/tinyval/psnr"]), abs=1e-4)
    assert best["iter"] in (3, 6)


@pytest.mark.slow
def test_gan_stage_writes_d_checkpoint_and_gan_tags(straight_gan: Path) -> None:
    root = straight_gan
    assert (root / "models" / "net_d_6.pth").is_file() and (root / "models" / "net_d_latest.pth").is_file()
    tb = _tb_scalars(root / "tb_logger")
    for tag in ("losses/l_g_pix", "losses/l_g_percep", "losses/l_g_gan", "losses/l_d_real", "losses/l_d_fake",
                "losses/out_d_real", "losses/out_d_fake", "lr/g", "lr/d", "metrics/tinyval/psnr"):
        assert tag in tb, (tag, sorted(tb))
    # pixel loss weight 1e-2 on an L1 distance below 1
    assert 0 < tb["losses/l_g_pix"][-1][1] < 0.01


def _resume_and_compare(straight: Path, data_root: Path, exp: Path, *, gan: bool, workers: int) -> None:
    kw = {"gan": gan, "num_workers": workers}
    first = _opt(data_root, exp, (f"train.total_iter={HALF}",), **kw)
    assert _run(first)[0] == 0
    second = _opt(data_root, exp, (f"train.total_iter={TOTAL}",), **kw)
    code, trainer = _run(second, auto_resume=True)
    assert code == 0 and trainer.start_iter == HALF
    resumed = Path(second.path.experiments_root)
    _assert_same(_weights(straight, TOTAL), _weights(resumed, TOTAL))
    _assert_same(_weights(straight, TOTAL, "params_ema"), _weights(resumed, TOTAL, "params_ema"))
    if gan:
        _assert_same(
            load_checkpoint_file(straight / "models" / f"net_d_{TOTAL}.pth")["params"],
            load_checkpoint_file(resumed / "models" / f"net_d_{TOTAL}.pth")["params"],
        )
    # the resumed run logged the same losses for the second half
    ta, tb = _tb_scalars(straight / "tb_logger"), _tb_scalars(resumed / "tb_logger")
    loss_tag = "losses/l_d_real" if gan else "losses/l_pix"
    assert dict(ta[loss_tag])[TOTAL] == dict(tb[loss_tag])[TOTAL]


@pytest.mark.slow
def test_exact_resume_psnr_stage(straight_psnr: Path, data_root: Path, tmp_path: Path) -> None:
    _resume_and_compare(straight_psnr, data_root, tmp_path, gan=False, workers=0)


@pytest.mark.slow
def test_exact_resume_gan_stage(straight_gan: Path, data_root: Path, tmp_path: Path) -> None:
    _resume_and_compare(straight_gan, data_root, tmp_path, gan=True, workers=0)


@pytest.mark.slow
def test_exact_resume_with_two_workers_equals_zero_workers_run(
    straight_psnr: Path, data_root: Path, tmp_path: Path
) -> None:
    # per-sample seeds: worker processes load the same augmented batches as the main process did
    _resume_and_compare(straight_psnr, data_root, tmp_path, gan=False, workers=2)


def test_new_run_archives_existing_experiment_folder(data_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    (root / "models").mkdir(parents=True)
    (root / "models" / "old.pth").write_bytes(b"old")
    opt = _opt(data_root, tmp_path, ("train.total_iter=1", "val.val_freq=0"))
    trainer = Trainer(opt, interactive=False)
    archived = [p for p in tmp_path.iterdir() if p.name.startswith("tiny_archived_")]
    assert len(archived) == 1 and (archived[0] / "models" / "old.pth").read_bytes() == b"old"
    assert not (root / "models" / "old.pth").exists()
    assert trainer.start_iter == 0


@pytest.mark.slow
def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(
    data_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    opt = _opt(data_root, tmp_path, ("logger.save_checkpoint_freq=2", "val.val_freq=0"), total_iter=8)
    trainer = Trainer(opt, interactive=False)
    real_loss = trainer.model.cri_pix
    calls = {"n": 0}

    def poisoned(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        loss = real_loss(pred, target)
        return loss * float("nan") if calls["n"] == 3 else loss

    trainer.model.cri_pix = poisoned
    with caplog.at_level("ERROR", logger="esrgan"):
        logger = __import__("logging").getLogger("esrgan")
        logger.addHandler(caplog.handler)
        try:
            code = trainer.run()
        finally:
            logger.removeHandler(caplog.handler)
    assert code == EXIT_NONFINITE
    assert "non-finite loss at iteration 3: l_pix=nan" in caplog.text
    root = Path(opt.path.experiments_root)
    assert sorted(p.name for p in (root / "models").iterdir()) == ["net_g_2.pth", "net_g_latest.pth"]
    good = load_checkpoint_file(root / "models" / "net_g_latest.pth")["params"]
    assert all(torch.isfinite(v).all() for v in good.values())
    assert sorted(p.name for p in (root / "training_states").iterdir()) == ["2.state"]


@pytest.mark.slow
def test_sigterm_saves_state_and_auto_resume_continues_exactly(
    straight_psnr: Path, data_root: Path, tmp_path: Path
) -> None:
    opt = _opt(data_root, tmp_path, total_iter=TOTAL)
    trainer = Trainer(opt, interactive=False)
    step = trainer.model.optimize_parameters

    def step_then_signal(lq, gt, it):
        out = step(lq, gt, it)
        if it == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    trainer.model.optimize_parameters = step_then_signal
    before = signal.getsignal(signal.SIGTERM)
    assert trainer.run() == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored
    root = Path(opt.path.experiments_root)
    assert sorted(p.name for p in (root / "training_states").iterdir()) == ["2.state"]

    code, resumed = _run(_opt(data_root, tmp_path, total_iter=TOTAL), auto_resume=True)
    assert code == 0 and resumed.start_iter == 2
    _assert_same(_weights(straight_psnr, TOTAL), _weights(root, TOTAL))


@pytest.mark.filterwarnings("ignore:Unable to enable fault handler")  # torchrun's @record under pytest's capture
def test_cli_reports_option_errors_with_key_path(data_root: Path, tmp_path: Path, capsys) -> None:
    import yaml

    from esrgan.training.cli import main

    raw = tiny_options_dict(data_root, tmp_path)
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["-opt", str(path), "--set", "train.optim_g.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert "train.optim_g.lrr" in err and "lr" in err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("gan", "extra"),
    [
        (False, ("train.use_amp=true", "train.amp_dtype=fp16", "train.channels_last=true", "train.grad_clip=0.5")),
        (True, ("train.use_amp=true", "train.amp_dtype=bf16", "train.channels_last=true", "train.g_warmup_iter=1")),
    ],
)
def test_mixed_precision_channels_last_and_clipping_train_and_resume(
    data_root: Path, tmp_path: Path, gan: bool, extra: tuple[str, ...]
) -> None:
    overrides = ("val.val_freq=0", "logger.save_checkpoint_freq=1", *extra)
    opt = _opt(data_root, tmp_path, overrides, gan=gan, total_iter=2)
    code, trainer = _run(opt)
    assert code == 0
    root = Path(opt.path.experiments_root)
    state = load_checkpoint_file(root / "training_states" / "2.state")
    if not gan:
        assert trainer.model.scaler.is_enabled() and state["model"]["scaler"]["scale"] > 0
    else:
        # iteration 1 was G warm-up: pixel loss only, D untouched; iteration 2 trained both
        assert trainer.model.g_warmup_iter == 1
    weights = load_checkpoint_file(root / "models" / "net_g_2.pth")["params"]
    assert all(torch.isfinite(v).all() for v in weights.values())
    first = load_checkpoint_file(root / "models" / "net_g_1.pth")["params"]
    assert any(not torch.equal(first[k], weights[k]) for k in weights)
    # resume from iteration 1 reproduces iteration 2 exactly, AMP and scaler included
    resume = f"path.resume_state={root / 'training_states' / '1.state'}"
    again = _opt(data_root, tmp_path / "again", (*overrides, resume), gan=gan, total_iter=2)
    assert _run(again)[0] == 0
    _assert_same(weights, load_checkpoint_file(Path(again.path.experiments_root) / "models" / "net_g_2.pth")["params"])
