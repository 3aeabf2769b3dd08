"""``esrgan demo --quick``: every step of the demo runs and writes what it announces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from esrgan.checkpoint import load_checkpoint_file


@pytest.mark.slow
def test_demo_quick_runs_every_step(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from esrgan.commands.demo import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached AlexNet: LPIPS is left out

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["--root", str(tmp_path), "--quick"]) == 0
    finally:
        torch.set_num_threads(n)
    out = capsys.readouterr().out
    exp = tmp_path / "experiments"
    psnr_ckpt = exp / "demo_RRDB_PSNR_x4" / "models" / "net_g_latest.pth"
    gan_dir = exp / "demo_ESRGAN_x4"
    assert set(load_checkpoint_file(psnr_ckpt)) == {"params", "params_ema"}
    assert (gan_dir / "models" / "net_d_latest.pth").is_file()
    # stage 2 started from stage 1's EMA weights: its log says so
    log = next(gan_dir.glob("train_*.log")).read_text()
    assert f"loaded weights from {psnr_ckpt} [params_ema]" in log

    results = json.loads((exp / "demo_test" / "results.json").read_text())
    means = {m: v["mean"]["psnr_y"] for m, v in results["sets"]["demo_val"].items()}
    assert set(means) == {"bicubic", "stage1_PSNR", "stage2_ESRGAN"}
    assert f"bicubic {means['bicubic']:.2f} dB, stage 1 (PSNR) {means['stage1_PSNR']:.2f} dB" in out
    assert (exp / "demo_interp" / "psnr_vs_alpha.png").is_file()
    # perceptual quality: NIQE always (offline), LPIPS only with a cached AlexNet (none in this TORCH_HOME)
    niqe = {m: v["mean"]["niqe"] for m, v in results["sets"]["demo_val"].items()}
    assert (f"NIQE (no reference, lower is better): bicubic {niqe['bicubic']:.2f}, stage 1 {niqe['stage1_PSNR']:.2f}, "
            f"stage 2 {niqe['stage2_ESRGAN']:.2f}") in out
    assert "LPIPS: not scored" in out and "alexnet-owt-7be5be79.pth" in out
    assert (exp / "demo_interp" / "perception_distortion.png").is_file()
    assert f"tensorboard --logdir {exp}" in out
    pages = [exp / "demo_test" / "report.html", exp / "demo_interp" / "report.html"]
    assert all(p.is_file() for p in pages) and f"{pages[0]}, {pages[1]}" in out
