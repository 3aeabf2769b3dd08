"""``esrgan train`` as a hostile user runs it: runs that cannot work are refused before anything is archived,
runs that can are told what they are doing, and a signal stops any run with a state to resume from."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch
from harness import Arena
from training_files import earlier_run, train_file

pytestmark = pytest.mark.slow


@pytest.mark.hostile("refused")
def test_accumulating_more_batches_than_an_epoch_is_refused(arena: Arena) -> None:
    opt = train_file(arena, ("train.accumulate_grad_batches", 100000), batch_size=2)
    earlier_run(arena)
    result = arena.run("train", "-opt", opt, timeout=120)
    result.assert_refused("accumulate_grad_batches", "100000 is more than the 4 batches of an epoch", "at most 4",
                          code=2)


@pytest.mark.hostile("refused")
def test_wandb_without_a_login_is_refused_before_an_earlier_run_is_archived(arena: Arena) -> None:
    pytest.importorskip("wandb")
    opt = train_file(arena, ("logger.wandb", {"project": "probe"}))
    earlier_run(arena)
    # no key anywhere wandb looks (the arena's HOME has no .netrc), online mode: nothing may reach the network
    env = {"WANDB_MODE": "", "WANDB_API_KEY": "", "WANDB_IDENTITY_TOKEN_FILE": "", "NETRC": str(arena.home / "none")}
    result = arena.run("train", "-opt", opt, env=env)
    result.assert_refused("logger.wandb.project", "no API key", "wandb login", "WANDB_MODE=offline", code=2)
    assert len(result.err.strip().splitlines()) <= 3  # a line, not wandb's 46-line UsageError


@pytest.mark.hostile("refused")
def test_niqe_validation_on_images_under_its_block_size_is_refused_at_set_up(arena: Arena) -> None:
    opt = train_file(arena, ("val.metrics.niqe", {"type": "niqe"}))
    earlier_run(arena)
    result = arena.run("train", "-opt", opt)
    result.assert_refused("validation set tinyval", "000.png is 48x48", "niqe needs at least 104x104", code=2)


@pytest.mark.hostile("correct")
@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without a GPU")
def test_num_gpu_1_without_a_gpu_says_it_trains_on_the_cpu(arena: Arena) -> None:
    opt = train_file(arena, ("num_gpu", 1), ("val.val_freq", 0))
    result = arena.run("train", "-opt", opt)
    result.assert_ok()
    assert "num_gpu: 1 asks for a GPU, but torch sees no CUDA device on this machine: training on the CPU" in result.err
    assert (arena.work / "experiments" / "tiny" / "models" / "net_g_2.pth").is_file()


@pytest.mark.hostile("correct")
def test_the_first_sigterm_stops_an_accumulating_run_with_a_state_to_resume(arena: Arena) -> None:
    # 8 micro-batches per step, a long run: SIGTERM lands between micro-batches or steps, and stops it either way.
    opt = train_file(arena, ("train.accumulate_grad_batches", 8), ("val.val_freq", 0),
                      ("logger.save_checkpoint_freq", 0), total_iter=100000, batch_size=1)
    proc = subprocess.Popen([sys.executable, "-m", "esrgan", "train", "-opt", opt], cwd=arena.work, env=arena.env(),
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stderr.readline()  # type: ignore[union-attr]
            lines.append(line)
            if "start training from iteration" in line or not line:
                break
        time.sleep(2)  # a few steps in
        proc.send_signal(signal.SIGTERM)
        err = "".join(lines) + proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err and "continue with --auto-resume" in err, err[-3000:]
    states = list((arena.work / "experiments" / "tiny" / "training_states").glob("*.state"))
    assert len(states) == 1
    resumed = arena.run("train", "-opt", opt, "--auto-resume", "--set", f"train.total_iter={int(states[0].stem) + 1}")
    resumed.assert_ok()
    assert "resumed from" in resumed.err
