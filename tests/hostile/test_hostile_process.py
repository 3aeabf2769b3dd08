"""What only a process of its own can show: signals mid-run, resource limits (file size; memory is bounded in the
image and checkpoint scenarios), and a second run of an experiment that is in use.

What must happen: Ctrl-C (130) and SIGTERM (143) stop a run with one line and leave no half-written file or
temporary behind; a file-size limit (a full disk, a quota) is one line naming the file or reason, with
nothing partial left; a run whose experiment folder another live run holds is refused before it writes anything.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from corpus import rgb
from harness import Arena
from inproc import assert_names, call

from esrgan.data.image import imread, imwrite

pytestmark = pytest.mark.slow

TEMPORARY = (".tmp-", ".old-")


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if any(t in p.name for t in TEMPORARY)] if folder.exists() else []


def _spawn(arena: Arena, *args: str) -> subprocess.Popen[str]:
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # As from a terminal: a suite started in the background (nohup, `&`) hands its children SIGINT ignored,
        # and a Python started so never turns Ctrl-C into KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])

    return subprocess.Popen([sys.executable, "-m", "esrgan", *args], cwd=arena.work, env=arena.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=limits)


def _signal_when(proc: subprocess.Popen[str], ready: Callable[[], bool], sig: int, timeout: float = 120) -> str:
    """Send ``sig`` once ``ready()`` holds; return stderr after the process ends."""
    try:
        t0 = time.monotonic()
        while not ready():
            assert proc.poll() is None, f"ended before the signal: {proc.communicate()[1][-2000:]}"
            assert time.monotonic() - t0 < timeout, "never got ready"
            time.sleep(0.02)
        proc.send_signal(sig)
        return proc.communicate(timeout=60)[1]
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


def _folder_of_images(arena: Arena, n: int = 40, size: int = 96) -> str:
    for i in range(n):
        imwrite(arena.work / "in" / f"{i:03d}.png", rgb(size, size, seed=i))
    arena.input("in")
    return "in"


@pytest.fixture
def model(arena: Arena, model_file: Path) -> str:
    (arena.work / "m.safetensors").write_bytes(model_file.read_bytes())
    return "m.safetensors"


# ---- signals --------------------------------------------------------------------------------------------------


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "terminated")])
def test_signal_mid_upscale_leaves_only_whole_files(arena: Arena, model: str, sig: int, code: int, word: str) -> None:
    out = arena.work / "out"
    proc = _spawn(arena, "upscale", _folder_of_images(arena), "-o", "out", "--model", model)
    err = _signal_when(proc, lambda: out.is_dir() and len(list(out.iterdir())) >= 2, sig)
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err and word in err.splitlines()[-1], err[-2000:]
    assert not _leftovers(out)
    for p in out.iterdir():  # every file there is a whole image
        assert imread(p).shape == (384, 384, 3)


@pytest.mark.hostile("refused")
def test_sigterm_mid_create_lmdb_leaves_no_half_database(arena: Arena) -> None:
    proc = _spawn(arena, "prepare", "create-lmdb", "--input", _folder_of_images(arena, n=60, size=128),
                  "--output", "x.lmdb", "--workers", "1")
    err = _signal_when(proc, lambda: bool(_leftovers(arena.work)) or (arena.work / "x.lmdb").exists(), signal.SIGTERM)
    assert proc.returncode in (0, 143), err[-2000:]
    if proc.returncode == 143:
        assert "terminated" in err.splitlines()[-1] and not (arena.work / "x.lmdb").exists(), err[-2000:]
    assert not _leftovers(arena.work)


@pytest.mark.hostile("refused")
def test_sigterm_mid_training_keeps_a_resumable_state(arena: Arena) -> None:
    from tiny_training import make_tiny_data, tiny_options_dict

    data = make_tiny_data(arena.work / "data", n_train=4, n_val=1)
    arena.input(data)
    raw = tiny_options_dict(data, arena.work / "experiments", total_iter=10**6, gt_size=32)
    raw["network_g"].update(num_feat=16, num_block=2)
    raw["val"]["val_freq"] = 0
    raw["logger"].update(print_freq=1, save_checkpoint_freq=10**6, use_tb_logger=False)
    (arena.work / "o.yml").write_text(yaml.safe_dump(raw))
    proc = _spawn(arena, "train", "-opt", "o.yml")
    root = arena.work / "experiments" / "tiny"
    err = _signal_when(proc, lambda: any("iter:" in p.read_text() for p in root.glob("train_*.log")), signal.SIGTERM)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err and "--auto-resume" in err.splitlines()[-1], err[-2000:]
    states = list((root / "training_states").glob("*.state"))
    assert states and not _leftovers(root), (states, _leftovers(root))
    from esrgan.checkpoint import load_checkpoint_file

    assert load_checkpoint_file(states[0])["iter"] >= 1


# ---- resource limits ------------------------------------------------------------------------------------------


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # a full disk for files larger than this

    return apply


@pytest.mark.hostile("refused")
def test_file_size_limit_while_upscaling(arena: Arena, model: str) -> None:
    result = arena.run("upscale", _folder_of_images(arena, n=2), "-o", "out", "--model", model,
                       preexec=_file_size_limit(20_000))
    assert result.code == 1 and "Traceback" not in result.err, result._show()
    assert_names(result, "000.png", "File too large")
    assert not _leftovers(arena.work) and not list((arena.work / "out").glob("*.png"))


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("command", ["export", "create-lmdb", "interp"])
def test_file_size_limit_while_writing(arena: Arena, model: str, command: str) -> None:
    args = {"export": ["export", "--model", model, "-o", "net.onnx"],
            "create-lmdb": ["prepare", "create-lmdb", "--input", "in", "--output", "x.lmdb", "--workers", "1"],
            "interp": ["interp", "--psnr", model, "--gan", model, "--alpha", "0.5", "-o", "mix.pth"]}[command]
    if command == "create-lmdb":
        _folder_of_images(arena, n=4, size=128)
    result = arena.run(*args, preexec=_file_size_limit(4096))
    result.assert_refused("too large")
    assert not _leftovers(arena.work)
    assert not any((arena.work / n).exists() for n in ("net.onnx", "x.lmdb", "mix.pth"))


# ---- the same experiment twice ----------------------------------------------------------------------------------


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("command", ["test", "interp", "train"])
def test_experiment_in_use_is_refused_before_writing(arena: Arena, model: str, command: str) -> None:
    """Another live run holds experiments/busy (its lock): a second run of that name must not touch it."""
    from tiny_training import make_tiny_data, tiny_options_dict

    from esrgan.utils.lock import ExperimentLock

    for i in range(2):
        imwrite(arena.work / "hr" / f"{i}.png", rgb(64, 64, seed=i))
    busy = arena.work / "experiments" / "busy"
    (busy / "models").mkdir(parents=True)
    (busy / "models" / "net_g_5.pth").write_bytes(b"the other run's checkpoint")
    arena.input(busy)
    args = {"test": ["test", "--hr", "hr", "--model", "bicubic", "--scale", "4", "--name", "busy", "-q"],
            "interp": ["interp", "--psnr", model, "--gan", model, "--sweep", "0,1", "--hr", "hr", "--scale", "4",
                       "--name", "busy", "-q"],
            "train": ["train", "-opt", "o.yml"]}[command]
    if command == "train":
        data = make_tiny_data(arena.work / "data", n_train=2, n_val=1)
        raw = tiny_options_dict(data, arena.work / "experiments", total_iter=2, name="busy")
        (arena.work / "o.yml").write_text(yaml.safe_dump(raw))
    lock = ExperimentLock(busy, "probe's other run").acquire()
    try:
        result = call(arena, *args)
    finally:
        lock.release()
    result.assert_refused("in use")
    assert sorted(p.name for p in (arena.work / "experiments").iterdir()) == ["busy"]
