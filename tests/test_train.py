"""End-to-end training runs on tiny data: files written, TensorBoard tags, exact resume, archive, NaN stop, signals."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_training import make_tiny_data, tiny_options_dict

from esrgan.checkpoint import load_checkpoint_file
from esrgan.data.image import imread
from esrgan.metrics import psnr
from esrgan.options import options_from_dict
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


# The figure: 20 iterations straight == 10 + resume + 10. 8 training images, batch 2: 4 iterations
# per epoch, so iteration 10 is mid-epoch (epoch 2, third batch).
TOTAL = 20
HALF = 10


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
    assert models == ["net_g_20.pth", "net_g_best_psnr.pth", "net_g_best_ssim.pth", "net_g_latest.pth"]
    assert sorted(p.name for p in (root / "training_states").iterdir()) == ["20.state"]
    ckpt = load_checkpoint_file(root / "models" / "net_g_20.pth")
    assert set(ckpt) == {"params", "params_ema"}
    _assert_same(ckpt["params"], load_checkpoint_file(root / "models" / "net_g_latest.pth")["params"])
    assert any(p.name.startswith("options_") and p.suffix == ".yml" for p in root.iterdir())
    log = next(root.glob("train_*.log")).read_text()
    assert "iter:      20" in log and "l_pix:" in log and "eta:" in log and "global batch 2" in log
    # the logged line: epoch, iteration, lr, time per iteration (data time), then each loss
    assert re.search(r"\[tiny\]\[epoch:\s+4, iter:\s+20, lr:\(1\.000e-04\)\] \[eta: 0:00:00, "
                     r"time \(data\): \d+\.\d{3} \(\d+\.\d{3}\)\] l_pix: \d\.\d{4}e[-+]\d\d", log), log

    tb = _tb_scalars(root / "tb_logger")
    for tag in ("losses/l_pix", "lr/g", "time/iter", "time/data", "metrics/tinyval/psnr", "metrics/tinyval/ssim"):
        assert tag in tb, (tag, sorted(tb))
    assert [s for s, _ in tb["losses/l_pix"]] == list(range(2, 21, 2))
    assert "images/tinyval/000" in tb["__images__"]
    # MultiStepLR(milestones=[10], gamma=0.5), stepped after each iteration: 2e-4 before 10, then 1e-4
    assert [v for _, v in tb["lr/g"]] == pytest.approx([2e-4] * 4 + [1e-4] * 6)

    # The logged validation PSNR is the literature's PSNR of the saved 8-bit images (numpy reference).
    vis = root / "visualization" / "tinyval"
    values = [
        psnr(imread(vis / f"{i:03d}_20.png"), imread(data_root / "val" / "HR" / f"{i:03d}.png"), crop_border=4,
             y_channel=True)
        for i in range(2)
    ]
    assert dict(tb["metrics/tinyval/psnr"])[20] == pytest.approx(np.mean(values), abs=1e-4)
    state = load_checkpoint_file(root / "training_states" / "20.state")
    best = state["best"]["tinyval"]["psnr"]
    assert best["val"] == pytest.approx(max(v for _, v in tb["metrics/tinyval/psnr"]), abs=1e-4)
    assert best["iter"] in (10, 20)


@pytest.mark.slow
def test_gan_stage_writes_d_checkpoint_and_gan_tags(straight_gan: Path) -> None:
    root = straight_gan
    assert (root / "models" / "net_d_20.pth").is_file() and (root / "models" / "net_d_latest.pth").is_file()
    tb = _tb_scalars(root / "tb_logger")
    for tag in ("losses/l_g_pix", "losses/l_g_percep", "losses/l_g_gan", "losses/l_d_real", "losses/l_d_fake",
                "losses/out_d_real", "losses/out_d_fake", "lr/g", "lr/d", "metrics/tinyval/psnr"):
        assert tag in tb, (tag, sorted(tb))
    # pixel loss weight 1e-2 on an L1 distance below 1
    assert 0 < tb["losses/l_g_pix"][-1][1] < 0.01
    line = next(ln for ln in next(root.glob("train_*.log")).read_text().splitlines() if "iter:      20" in ln)
    # two learning rates (G, D), each loss and D's mean outputs on real and generated images
    assert "lr:(1.000e-04, 5.000e-05)" in line, line
    for key in ("l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "l_d_fake", "out_d_real", "out_d_fake"):
        assert f" {key}: " in line, (key, line)
    assert f"{tb['losses/out_d_real'][-1][1]:.4e}" in line


def _resume_and_compare(straight: Path, data_root: Path, exp: Path, *, gan: bool, workers: int) -> None:
    kw = {"gan": gan, "num_workers": workers, "total_iter": TOTAL}
    first = _opt(data_root, exp, (f"train.total_iter={HALF}",), **kw)
    assert _run(first)[0] == 0
    second = _opt(data_root, exp, (f"train.total_iter={TOTAL}",), **kw)
    trainer = Trainer(second, interactive=False, auto_resume=True)
    # the first half's validation (at its end, iteration HALF) came back with the state
    assert {m["iter"] for m in trainer.best.best["tinyval"].values()} == {HALF}
    code = trainer.run()
    assert code == 0 and trainer.start_iter == HALF
    resumed = Path(second.path.experiments_root)
    if not gan:  # straight_psnr validated at HALF and TOTAL too: same best values, iterations and files
        best = load_checkpoint_file(resumed / "training_states" / f"{TOTAL}.state")["best"]
        assert best == load_checkpoint_file(straight / "training_states" / f"{TOTAL}.state")["best"]
        for metric in ("psnr", "ssim"):
            _assert_same(load_checkpoint_file(straight / "models" / f"net_g_best_{metric}.pth")["params"],
                         load_checkpoint_file(resumed / "models" / f"net_g_best_{metric}.pth")["params"])
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


def test_missing_data_fails_before_the_experiment_folder_is_touched(data_root: Path, tmp_path: Path) -> None:
    """A run that cannot start archives nothing and creates nothing; the error names every missing path."""
    root = tmp_path / "tiny"
    (root / "models").mkdir(parents=True)
    (root / "models" / "old.pth").write_bytes(b"old")
    missing = tmp_path / "no_such_stage1.pth"
    opt = _opt(data_root, tmp_path, ("train.total_iter=1", f"path.pretrain_network_g={missing}"))
    opt.datasets["val"].dataroot_lq = str(tmp_path / "no_lr")
    with pytest.raises(FileNotFoundError) as info:
        Trainer(opt, interactive=False)
    assert f"path.pretrain_network_g: {missing}" in str(info.value)
    assert f"datasets.val.dataroot_lq: {tmp_path / 'no_lr'}" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]
    assert (root / "models" / "old.pth").read_bytes() == b"old"


def test_cli_launcher_outside_its_launcher_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from esrgan.commands.train import main

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"):
        monkeypatch.delenv(var, raising=False)
    config = Path(__file__).resolve().parents[1] / "configs" / "demo_psnr_x4.yml"
    assert main(["-opt", str(config), "--launcher", "pytorch"]) == 2
    err = capsys.readouterr().err
    assert "RANK" in err and "torchrun" in err and "Traceback" not in err


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
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_state_and_auto_resume_continues_exactly(
    straight_psnr: Path, data_root: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    opt = _opt(data_root, tmp_path, total_iter=TOTAL)
    trainer = Trainer(opt, interactive=False)
    step = trainer.model.optimize_parameters

    def step_then_signal(lq, gt, it):
        out = step(lq, gt, it)
        if it == 2:
            os.kill(os.getpid(), sig)
        return out

    trainer.model.optimize_parameters = step_then_signal
    before = signal.getsignal(sig)
    assert trainer.run() == 128 + sig
    assert signal.getsignal(sig) == before  # handlers restored
    root = Path(opt.path.experiments_root)
    assert sorted(p.name for p in (root / "training_states").iterdir()) == ["2.state"]

    code, resumed = _run(_opt(data_root, tmp_path, total_iter=TOTAL), auto_resume=True)
    assert code == 0 and resumed.start_iter == 2
    _assert_same(_weights(straight_psnr, TOTAL), _weights(root, TOTAL))


@pytest.mark.filterwarnings("ignore:Unable to enable fault handler")  # torchrun's @record under pytest's capture
def test_cli_reports_option_errors_with_key_path(data_root: Path, tmp_path: Path, capsys) -> None:
    import yaml

    from esrgan.commands.train import main

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
    convs = [m.weight for m in trainer.model.net_g.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs)
    root = Path(opt.path.experiments_root)
    state = load_checkpoint_file(root / "training_states" / "2.state")
    log = next(root.glob("train_*.log")).read_text()
    what = "fp16 autocast with a grad scaler" if not gan else "bf16 autocast"
    assert f"training precision: {what}, channels_last (train.use_amp: true" in log
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


@pytest.mark.slow
def test_compile_g_trains_the_compiled_generator_and_saves_plain_keys(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inductor's C++ compile of even this tiny G takes minutes on the shared 2-core machine (measured
    # 187 s), so the test compiles with dynamo's "eager" backend: the same torch.compile wrapping,
    # graph capture and state-dict handling, without code generation.
    compiled: list[torch.nn.Module] = []
    real_compile = torch.compile

    def eager_compile(model, **kwargs):
        compiled.append(model)
        return real_compile(model, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    overrides = ("val.val_freq=0", "logger.save_checkpoint_freq=2")
    code, trainer = _run(_opt(data_root, tmp_path / "compiled", (*overrides, "train.compile_g=true"), total_iter=2))
    assert code == 0
    from torch._dynamo.eval_frame import OptimizedModule

    assert compiled == [trainer.model.net_g]  # only G, once; EMA and validation use the plain module
    assert isinstance(trainer.model.net_g_train, OptimizedModule)
    assert trainer.model.net_g_train._orig_mod is trainer.model.net_g
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # dynamo did capture G's forward

    code, plain = _run(_opt(data_root, tmp_path / "plain", overrides, total_iter=2))
    assert code == 0 and not isinstance(plain.model.net_g_train, OptimizedModule)
    root_c = tmp_path / "compiled" / "tiny"
    root_p = tmp_path / "plain" / "tiny"
    for key in ("params", "params_ema"):
        a, b = _weights(root_c, 2, key), _weights(root_p, 2, key)
        assert a.keys() == b.keys() and not any("_orig_mod" in k for k in a)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    assert any(not torch.equal(_weights(root_c, 2)[k], _weights(root_c, 2, "params_ema")[k]) for k in a)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Unable to enable fault handler")  # torchrun's @record under pytest's capture
def test_basicsr_esrgan_option_file_trains_unchanged(tmp_path: Path) -> None:
    """BasicSR's train_ESRGAN_x4.yml, verbatim, through ``esrgan train``; --set only points it at tiny data,
    shrinks G, D's width and the batch for speed, and uses random VGG weights (the test is offline)."""
    from esrgan.archs import build_network
    from esrgan.checkpoint import save_network
    from esrgan.commands.train import main

    data = make_tiny_data(tmp_path / "data", n_train=2, n_val=1, size=128)  # VGG128 D needs 128-pixel GT
    small_g = {"type": "RRDBNet", "num_feat": 8, "num_block": 1, "num_grow_ch": 8}
    torch.manual_seed(123)
    stage1 = build_network(small_g).state_dict()
    stage1_path = tmp_path / "stage1" / "net_g_1000000.pth"
    save_network(stage1_path, {"params": stage1})  # stands in for the file's stage-1 generator
    opt_file = tmp_path / "train_ESRGAN_x4.yml"
    shutil.copyfile(Path(__file__).parent / "fixtures" / "basicsr" / "train_ESRGAN_x4.yml", opt_file)
    sets = [
        f"datasets.train.dataroot_gt={data / 'train' / 'HR'}", f"datasets.train.dataroot_lq={data / 'train' / 'LR'}",
        "datasets.train.batch_size_per_gpu=1", "datasets.train.num_worker_per_gpu=0",
        "datasets.train.dataset_enlarge_ratio=1",
        f"datasets.val.dataroot_gt={data / 'val' / 'HR'}", f"datasets.val.dataroot_lq={data / 'val' / 'LR'}",
        "network_g.num_feat=8", "network_g.num_block=1", "network_g.num_grow_ch=8", "network_d.num_feat=8",
        f"path.pretrain_network_g={stage1_path}", f"path.experiments_root={tmp_path / 'exp'}",
        "train.perceptual_opt.pretrained=false", "train.total_iter=2",
        "val.val_freq=2", "logger.print_freq=1", "logger.save_checkpoint_freq=2",
    ]  # fmt: skip
    n = torch.get_num_threads()
    try:
        assert main(["-opt", str(opt_file), *[a for s in sets for a in ("--set", s)]]) == 0
    finally:
        torch.set_num_threads(n)
    root = tmp_path / "exp"
    log = next(root.glob("train_*.log")).read_text()
    assert "ESRGANModel" in log and f"network_g: loaded weights from {stage1_path}" in log
    for key in ("l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "l_d_fake", "out_d_real", "out_d_fake"):
        assert f" {key}: " in log, key
    assert "validation Set14 @ iter 2: psnr: " in log  # the file's metric (calculate_psnr) on its val set
    ckpt = load_checkpoint_file(root / "models" / "net_g_2.pth")
    assert set(ckpt) == {"params", "params_ema"} and (root / "models" / "net_d_2.pth").is_file()
    # initialised from stage 1: EMA 0.999 of two steps stays next to it (a fresh init would be far away)
    for k, v in stage1.items():
        if v.is_floating_point():
            torch.testing.assert_close(ckpt["params_ema"][k], v, rtol=0, atol=1e-5, msg=k)
    assert any(not torch.equal(ckpt["params"][k], stage1[k]) for k in stage1)  # and G did train
    saved = next(root.glob("options_*.yml")).read_text()
    assert "relativistic: true" in saved and "gan_type: vanilla" in saved  # ESRGANModel: the RaGAN, as BasicSR


def test_progress_bar_only_when_interactive(data_root: Path, tmp_path: Path, capsys) -> None:
    overrides = ("val.val_freq=0", "logger.save_checkpoint_freq=0", "logger.use_tb_logger=false")
    for interactive in (True, False):
        opt = _opt(data_root, tmp_path / str(interactive), overrides, total_iter=2)
        assert Trainer(opt, interactive=interactive).run() == 0
        err = capsys.readouterr().err
        # tqdm's bar: count, total and the ETA field ("<") only on an interactive terminal
        assert ("2/2 [" in err and "<" in err and ("it/s" in err or "s/it" in err)) is interactive, err


@pytest.mark.filterwarnings("ignore:Unable to enable fault handler")  # torchrun's @record under pytest's capture
def test_cli_auto_resume_continues_from_the_latest_state(data_root: Path, tmp_path: Path) -> None:
    import yaml

    from esrgan.commands.train import main

    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(tiny_options_dict(data_root, tmp_path, total_iter=3)))
    base = ["-opt", str(path), "--set", "val.val_freq=0", "--set", "logger.use_tb_logger=false"]
    assert main([*base, "--set", "train.total_iter=2"]) == 0
    root = tmp_path / "tiny"
    assert main([*base, "--auto-resume"]) == 0
    log = "".join(p.read_text() for p in root.glob("train_*.log"))
    assert f"resumed from {root / 'training_states' / '2.state'}: iteration 2" in log
    assert sorted(p.name for p in (root / "training_states").iterdir()) == ["2.state", "3.state"]
    assert not list(tmp_path.glob("tiny_archived_*"))  # resumed in place
    # without --auto-resume the same command starts over, archiving the folder
    assert main([*base, "--set", "train.total_iter=1"]) == 0
    assert len(list(tmp_path.glob("tiny_archived_*"))) == 1


# ---------------------------------------------------------------------------------------------
# Hostile option files at the command line: one line, exit 2, nothing touched
# ---------------------------------------------------------------------------------------------


def _write_options(tmp_path: Path, raw: dict) -> Path:
    import yaml

    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_num_gpu_without_a_launcher_names_the_torchrun_command(data_root: Path, tmp_path: Path, capsys) -> None:
    from esrgan.commands.train import main

    raw = tiny_options_dict(data_root, tmp_path / "exp", total_iter=2)
    raw["num_gpu"] = 4
    path = _write_options(tmp_path, raw)
    assert main(["-opt", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "num_gpu: 4 asks for 4 GPUs" in err
    assert f"torchrun --standalone --nproc_per_node 4 train.py -opt {path} --launcher pytorch" in err
    assert not (tmp_path / "exp").exists()  # refused before the experiment folder was made


@pytest.mark.parametrize("change", [{"num_feat": 16}, {"num_block": 2}])
def test_cli_pretrain_of_another_width_or_depth_is_one_line(
    data_root: Path, tmp_path: Path, capsys, change: dict
) -> None:
    from esrgan.archs import build_network
    from esrgan.checkpoint import save_network
    from esrgan.commands.train import main

    raw = tiny_options_dict(data_root, tmp_path / "exp", total_iter=2)
    other = build_network({**raw["network_g"], **change})
    ckpt = save_network(tmp_path / "other.pth", {"params": other.state_dict()})
    raw["path"]["pretrain_network_g"] = str(ckpt)
    assert main(["-opt", str(_write_options(tmp_path, raw))]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # the log's last line tells the whole story (a console handler left by an earlier test may repeat it,
    # with its own time stamp)
    (message,) = {x[x.index(str(ckpt)):] for x in err.splitlines() if "does not fit" in x}
    assert err.rstrip().endswith(message) and message.startswith(f"{ckpt} does not fit network_g (RRDBNet)")
    err = message
    if "num_feat" in change:  # every layer is wider: the first keys are named with both shapes
        assert "shapes differ (checkpoint vs network) for conv_first.weight (16, 3, 3, 3) vs (8, 3, 3, 3)" in err
    else:  # a deeper network: its extra block's keys are named
        assert "unexpected keys body.1." in err


@pytest.mark.slow
def test_wandb_logs_offline_what_tensorboard_gets(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    raw = tiny_options_dict(data_root, tmp_path / "exp", total_iter=2)
    raw["logger"]["wandb"] = {"project": "esrgan-tests", "resume_id": None}
    opt = options_from_dict(raw)
    assert Trainer(opt, interactive=False).run() == 0
    runs = list((tmp_path / "exp" / "tiny" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1  # the run lives in the experiment folder
    keys = (b"esrgan-tests", b"losses/l_pix", b"lr/g", b"time/iter", b"metrics/tinyval/psnr", b"manual_seed")
    # wandb's service process may still be writing the file when finish() returns: wait for it (bounded).
    deadline = time.monotonic() + 60
    while not all(k in runs[0].read_bytes() for k in keys) and time.monotonic() < deadline:
        time.sleep(0.5)
    data = runs[0].read_bytes()
    for key in keys:
        assert key in data, key


def test_wandb_without_the_package_is_refused_before_anything_is_touched(
    data_root: Path, tmp_path: Path, monkeypatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    raw = tiny_options_dict(data_root, tmp_path / "exp", total_iter=2)
    raw["logger"]["wandb"] = {"project": "p"}
    with pytest.raises(ValueError, match=r"logger.wandb.project is set but the wandb package is not installed: pip"):
        Trainer(options_from_dict(raw), interactive=False)
    assert not (tmp_path / "exp").exists()


# ---------------------------------------------------------------------------------------------
# Gradient accumulation
# ---------------------------------------------------------------------------------------------


def _train_accumulating(data_root: Path, exp: Path, batch: int, accumulate: int, total: int,
                        extra: tuple[str, ...] = ()) -> Path:
    sets = (f"train.accumulate_grad_batches={accumulate}", "val.val_freq=0", "train.ema_decay=0",
            f"logger.save_checkpoint_freq={total // 2}", *extra)
    opt = _opt(data_root, exp, sets, total_iter=total, batch_size=batch)
    assert _run(opt)[0] == 0
    return Path(opt.path.experiments_root)


@pytest.mark.slow
def test_accumulating_two_batches_of_b_equals_one_batch_of_2b(data_root: Path, tmp_path: Path) -> None:
    # Same samples in the same order and crops (per-sample seeds), so each step sees the same 4 images:
    # the L1 gradients of 2 x 2 images, each loss halved, sum to the gradient of the 4-image mean.
    big = _train_accumulating(data_root, tmp_path / "big", batch=4, accumulate=1, total=4)
    acc = _train_accumulating(data_root, tmp_path / "acc", batch=2, accumulate=2, total=4)
    a, b = _weights(big, 4), _weights(acc, 4)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6, msg=k)
    assert any(not torch.equal(a[k], _weights(big, 2)[k]) for k in a)  # the weights did move
    # one iteration is one optimizer step: the schedules and checkpoints count steps, not batches
    log = "".join(p.read_text() for p in acc.glob("train_*.log"))
    assert "4 iterations per epoch" not in log and "2 iterations per epoch" in log
    assert "global batch 4 (2 batches per step)" in log


@pytest.mark.slow
def test_accumulation_resumes_exactly(data_root: Path, tmp_path: Path) -> None:
    sets = ("train.scheduler.milestones=[3]",)  # the same schedule for the 6-step run and its two halves
    straight = _train_accumulating(data_root, tmp_path / "s", batch=1, accumulate=3, total=6, extra=sets)
    # 3 steps of 3 batches: the third step spans the end of the 8-image epoch
    root = _train_accumulating(data_root, tmp_path / "r", batch=1, accumulate=3, total=3, extra=sets)
    sets_r = (*sets, "train.accumulate_grad_batches=3", "val.val_freq=0", "train.ema_decay=0",
              "logger.save_checkpoint_freq=3")
    resumed = _opt(data_root, tmp_path / "r", sets_r, total_iter=6, batch_size=1)
    assert _run(resumed, auto_resume=True)[0] == 0
    _assert_same(_weights(straight, 6), _weights(root, 6))


def test_accumulate_grad_batches_is_checked() -> None:
    from esrgan.options import OptionsError

    raw = tiny_options_dict("d", "e")
    raw["train"]["accumulate_grad_batches"] = 0
    with pytest.raises(OptionsError, match=r"train.accumulate_grad_batches: must be >= 1, got 0"):
        options_from_dict(raw)


@pytest.mark.parametrize("pbar", [True, False])
def test_val_pbar_shows_a_progress_bar_over_the_validation_images(data_root: Path, tmp_path: Path, capsys,
                                                                  pbar: bool) -> None:
    opt = _opt(data_root, tmp_path, ("train.total_iter=1", "val.val_freq=1", f"val.pbar={str(pbar).lower()}"))
    assert Trainer(opt, interactive=True).run() == 0
    err = capsys.readouterr().err
    # The bar's first line names the set and its size; tqdm may skip later updates on a fast machine.
    assert ("validation tinyval" in err and "0/2 [" in err) == pbar


@pytest.mark.slow
@pytest.mark.parametrize("stop_call", [5, 6])  # after the first / second micro-batch of step 3 (which spans an epoch)
def test_a_stop_between_micro_batches_saves_the_last_step_and_resumes_exactly(
    data_root: Path, tmp_path: Path, stop_call: int
) -> None:
    sets = ("train.scheduler.milestones=[3]",)
    straight = _train_accumulating(data_root, tmp_path / "s", batch=1, accumulate=3, total=6, extra=sets)
    sets_r = (*sets, "train.accumulate_grad_batches=3", "val.val_freq=0", "train.ema_decay=0",
              "logger.save_checkpoint_freq=3")
    trainer = Trainer(_opt(data_root, tmp_path / "r", sets_r, total_iter=6, batch_size=1), interactive=False)
    calls = []

    # asked after each micro-batch but a step's last (after a step, the signal is read with the finiteness flag)
    def stop_at_call() -> bool:
        calls.append(1)
        if len(calls) == stop_call:
            trainer._stop_signal = signal.SIGTERM
        return trainer._stop_signal is not None

    trainer._stop_requested = stop_at_call
    assert trainer.run() == 128 + signal.SIGTERM
    root = Path(trainer.opt.path.experiments_root)
    state = load_checkpoint_file(root / "training_states" / "2.state")
    # the state of step 2, positioned at step 3's first batch (the 7th of the 8-batch epoch 0)
    assert (state["iter"], state["epoch"], state["batches_in_epoch"]) == (2, 0, 6)
    log = "".join(p.read_text() for p in root.glob("train_*.log"))
    assert "between the micro-batches of the next step" in log
    resumed = _opt(data_root, tmp_path / "r", sets_r, total_iter=6, batch_size=1)
    code, again = _run(resumed, auto_resume=True)
    assert code == 0 and again.start_iter == 2
    _assert_same(_weights(straight, 6), _weights(root, 6))


def test_accumulating_more_batches_than_an_epoch_holds_is_refused_before_the_folder(data_root: Path,
                                                                                     tmp_path: Path) -> None:
    opt = _opt(data_root, tmp_path, ("train.accumulate_grad_batches=100000",), batch_size=2)
    with pytest.raises(ValueError, match=r"train.accumulate_grad_batches: 100000 is more than the 4 batches of an "
                                         r"epoch of datasets.train \(8 images per process / batch_size_per_gpu 2\); "
                                         r"use at most 4"):
        Trainer(opt, interactive=False)
    assert not tmp_path.joinpath("tiny").exists()


def test_niqe_on_validation_images_too_small_is_refused_at_set_up(data_root: Path, tmp_path: Path) -> None:
    opt = _opt(data_root, tmp_path, ("val.metrics.niqe.type=niqe",))
    with pytest.raises(ValueError, match=r"validation set tinyval: .*000\.png is 48x48 pixels, but metric niqe needs "
                                         r"at least 104x104 \(NIQE's 96x96 blocks inside a crop_border of 4\)"):
        Trainer(opt, interactive=False)
    assert not tmp_path.joinpath("tiny").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without a GPU")
def test_num_gpu_1_without_a_gpu_trains_on_the_cpu_and_says_so(data_root: Path, tmp_path: Path, caplog) -> None:
    opt = _opt(data_root, tmp_path, ("num_gpu=1", "train.total_iter=1", "val.val_freq=0"))
    with caplog.at_level(logging.WARNING, logger="esrgan.training"):
        trainer = Trainer(opt, interactive=False)
    assert trainer.device.type == "cpu"
    said = "num_gpu: 1 asks for a GPU, but torch sees no CUDA device on this machine: training on the CPU"
    assert said in caplog.text
    assert trainer.run() == 0
    log = "".join(p.read_text() for p in Path(opt.path.experiments_root).glob("train_*.log"))
    assert "training on the CPU" in log  # in the log file too


def test_wandb_without_a_login_is_refused_before_anything_is_archived(data_root: Path, tmp_path: Path,
                                                                       monkeypatch) -> None:
    pytest.importorskip("wandb")
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no.netrc"))
    earlier = tmp_path / "exp" / "tiny"
    (earlier / "models").mkdir(parents=True)
    (earlier / "models" / "net_g_latest.pth").write_bytes(b"an earlier run")
    raw = tiny_options_dict(data_root, tmp_path / "exp", total_iter=2)
    raw["logger"]["wandb"] = {"project": "p"}
    with pytest.raises(ValueError, match=r"no API key on this machine: run 'wandb login' \(or set WANDB_API_KEY\), or "
                                         r"log offline with WANDB_MODE=offline"):
        Trainer(options_from_dict(raw), interactive=False)
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["tiny"]  # not archived
    # a key in ~/.netrc (what `wandb login` writes), or offline mode, lets the run start
    (tmp_path / "no.netrc").write_text("machine api.wandb.ai login user password " + "k" * 40 + "\n")
    (tmp_path / "no.netrc").chmod(0o600)
    from esrgan.training import wandb_run

    wandb_run.check_ready(options_from_dict(raw))


def test_time_budget_stops_validates_saves_and_resume_spends_only_the_rest(
    data_root: Path, tmp_path: Path, monkeypatch
) -> None:
    """train.time_budget_minutes: each step costs 10 s of a fake clock; a 1-minute budget stops after 6 steps
    (validated and saved there), and a resumed run with 2 minutes trains 6 more, not 12."""
    import esrgan.training.trainer as trainer_module

    clock = {"t": 0.0}
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: clock["t"])

    def run(minutes: float, **kw) -> Trainer:
        opt = _opt(data_root, tmp_path, (f"train.time_budget_minutes={minutes}", "val.val_freq=1000"),
                   total_iter=1000)
        trainer = Trainer(opt, interactive=False, **kw)
        step = trainer.model.optimize_parameters

        def slow_step(lq, gt, it):
            clock["t"] += 10.0
            return step(lq, gt, it)

        trainer.model.optimize_parameters = slow_step
        assert trainer.run() == 0
        return trainer

    first = run(1.0)
    root = Path(first.opt.path.experiments_root)
    assert sorted(p.name for p in (root / "training_states").iterdir()) == ["6.state"]
    assert load_checkpoint_file(root / "training_states" / "6.state")["train_seconds"] == 60.0
    assert {m["iter"] for m in first.best.best["tinyval"].values()} == {6}  # validated at the stop

    second = run(2.0, auto_resume=True)
    assert second.start_iter == 6
    assert "12.state" in {p.name for p in (root / "training_states").iterdir()}
    assert load_checkpoint_file(root / "training_states" / "12.state")["train_seconds"] == 120.0


def test_time_budget_must_not_be_negative(data_root: Path, tmp_path: Path) -> None:
    from esrgan.options import OptionsError

    with pytest.raises(OptionsError, match=r"train\.time_budget_minutes"):
        _opt(data_root, tmp_path, ("train.time_budget_minutes=-1",))
