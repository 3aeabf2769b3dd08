"""Issue 13, tracebacks and crashes: damaged LMDBs (truncated data.mdb killed the process with SIGBUS), a full
disk while saving, temporaries left by a kill mid-save, a second Ctrl-C, bad training images found before step 1.
Each ends in one clear line naming what is wrong (real processes where a crash or a signal is the point)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lmdb
import numpy as np
import pytest
import yaml
from tiny_training import make_tiny_data, tiny_options_dict

from esrgan.checkpoint import load_checkpoint_file
from esrgan.commands.prepare import main as prepare_main
from esrgan.commands.train import main as train_main
from esrgan.data.image import ImageReadError, imwrite
from esrgan.data.lmdb_backend import LmdbError, LmdbReader, check_data_file
from esrgan.data.prepare import create_lmdb
from esrgan.options import options_from_dict
from esrgan.training.trainer import EXIT_NO_SPACE, Trainer
from esrgan.utils.atomic import DiskFullError, atomic_path, remove_stale_temporaries

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _esrgan(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "esrgan", *args], env=ENV, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_data(tmp_path_factory.mktemp("tinydata"), n_train=4, n_val=1)


# ---- LMDB ------------------------------------------------------------------------------------------


@pytest.fixture
def lmdb_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in range(40):
        imwrite(tmp_path / "imgs" / f"{i:03d}.png", rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
    create_lmdb(tmp_path / "imgs", tmp_path / "x.lmdb", compress_level=0)
    return tmp_path / "x.lmdb"


def _damage(lmdb_dir: Path, how: str) -> None:
    data = lmdb_dir / "data.mdb"
    raw = data.read_bytes()
    if how == "truncated":
        data.write_bytes(raw[: len(raw) // 2])
    elif how == "empty":
        data.write_bytes(b"")
    elif how == "header":
        data.write_bytes(b"\0" * 64 + raw[64:])


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("truncated", "data.mdb is truncated"),
        ("empty", "data.mdb is empty (0 bytes)"),
        ("header", "not an LMDB data file or its header is corrupted"),
    ],
)
def test_damaged_lmdb_is_one_line_not_a_crash(
    lmdb_dir: Path, how: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _damage(lmdb_dir, how)
    with pytest.raises(LmdbError, match=re.escape(says)):
        check_data_file(lmdb_dir)
    if how == "truncated":  # in a real process: verify-lmdb on a truncated data.mdb died of SIGBUS (exit 135)
        run = _esrgan("prepare", "verify-lmdb", str(lmdb_dir))
        code, err = run.returncode, run.stderr
    else:
        code = prepare_main(["verify-lmdb", str(lmdb_dir)])
        err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if says in ln]
    assert len(lines) == 1 and str(lmdb_dir) in lines[0]


def test_truncated_lmdb_in_training_is_one_line(
    lmdb_dir: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny_options_dict(data_root, tmp_path)
    train = raw["datasets"]["train"]
    train.update(type="SingleHRDataset", dataroot_gt=str(lmdb_dir), io_backend={"type": "lmdb"})
    del train["dataroot_lq"]
    opt_file = tmp_path / "o.yml"
    opt_file.write_text(yaml.safe_dump(raw))
    _damage(lmdb_dir, "truncated")
    assert train_main(["-opt", str(opt_file)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{lmdb_dir}: data.mdb is truncated" in err
    assert not (tmp_path / "tiny").exists()  # found before the experiment folder was made


def test_lmdb_growing_while_read_is_followed(lmdb_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reader = LmdbReader(lmdb_dir)
    first = reader.read_image("000")
    # another process grows the database past this process's map (MDB_MAP_RESIZED before)
    code = (
        "import lmdb, os, sys\n"
        "env = lmdb.open(sys.argv[1], map_size=64 << 20)\n"
        "with env.begin(write=True) as txn:\n"
        "    for i in range(400): txn.put(b'extra%d' % i, os.urandom(60000))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(lmdb_dir)], check=True, timeout=60)
    with caplog.at_level("WARNING", logger="esrgan"):
        again = reader.read_image("000")
    np.testing.assert_array_equal(first, again)
    assert "the LMDB grew while being read" in caplog.text
    assert len(reader.get("extra399")) == 60000
    reader.close()


def test_lmdb_read_errors_name_the_lmdb_and_key(lmdb_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = LmdbReader(lmdb_dir)

    class Broken:
        def begin(self, write: bool = False):
            raise lmdb.CorruptedError("mdb_get: MDB_CORRUPTED: Located page was wrong type")

    monkeypatch.setattr(LmdbReader, "env", property(lambda self: Broken()))
    with pytest.raises(LmdbError, match=r"x\.lmdb\[007\]: cannot read the LMDB \(CorruptedError"):
        reader.read_image("007")


# ---- full disk -------------------------------------------------------------------------------------


def _opt(data_root: Path, exp: Path, *overrides: str, **kw):
    return options_from_dict(tiny_options_dict(data_root, exp, **kw), list(overrides))


def test_disk_full_while_saving_says_so_and_keeps_earlier_checkpoints(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Injected ENOSPC (the tmpfs test below does it for real where a mount is allowed)."""
    opt = _opt(data_root, tmp_path, "logger.save_checkpoint_freq=1", "val.val_freq=0", "logger.use_tb_logger=false",
               total_iter=3)  # fmt: skip
    trainer = Trainer(opt, interactive=False)
    import esrgan.checkpoint as ckpt

    real_save = ckpt.torch.save

    def save(obj, f, *a, **kw):
        if Path(getattr(f, "name", str(f))).name.startswith((".net_g_2.tmp-", ".2.tmp-")):
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(ckpt.torch, "save", save)
    logger = __import__("logging").getLogger("esrgan")
    logger.addHandler(caplog.handler)
    try:
        code = trainer.run()
    finally:
        logger.removeHandler(caplog.handler)
    models = tmp_path / "tiny" / "models"
    assert code == EXIT_NO_SPACE
    assert f"no space left on {models} while saving net_g_2.pth; earlier checkpoints are intact" in caplog.text
    assert sorted(p.name for p in models.iterdir()) == ["net_g_1.pth", "net_g_latest.pth"]  # no temporaries
    assert load_checkpoint_file(models / "net_g_1.pth")["params"]


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, timeout=10).returncode == 0  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.slow
def test_disk_full_on_a_real_small_filesystem(data_root: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "2m"):
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-ENOSPC test covers the message")
    try:
        raw = tiny_options_dict(data_root, mnt, total_iter=2)
        raw["logger"].update(save_checkpoint_freq=1, use_tb_logger=False)
        raw["val"]["val_freq"] = 0
        opt_file = tmp_path / "o.yml"
        opt_file.write_text(yaml.safe_dump(raw))
        assert Trainer(options_from_dict(raw), interactive=False).run() == 0
        models = mnt / "tiny" / "models"
        size = (models / "net_g_2.pth").stat().st_size
        # fill the file system, leaving less than one checkpoint's room; then continue the run
        free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        with open(mnt / "filler", "wb") as f:
            f.write(b"\0" * max(free - size // 2, 0))
        run = _esrgan("train", "-opt", str(opt_file), "--auto-resume", "--set", "train.total_iter=4", timeout=300)
        assert run.returncode == EXIT_NO_SPACE, run.stderr
        assert "Traceback" not in run.stderr and "inline_container" not in run.stderr
        assert f"no space left on {models} while saving net_g_3.pth; earlier checkpoints are intact" in run.stderr
        assert sorted(p.name for p in models.iterdir()) == ["net_g_1.pth", "net_g_2.pth", "net_g_latest.pth"]
        assert load_checkpoint_file(models / "net_g_2.pth")["params"]
        assert load_checkpoint_file(mnt / "tiny" / "training_states" / "2.state")["iter"] == 2
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def test_disk_full_is_recognised_from_torch_save_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save reports a full disk as RuntimeError('... unexpected pos ...'): judged by the free space."""
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 100, 0))
    with pytest.raises(DiskFullError, match=f"no space left on {tmp_path} while saving x.pth"), \
            atomic_path(tmp_path / "x.pth") as tmp:  # fmt: skip
        tmp.write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="something else"), atomic_path(tmp_path / "y.pth"):
        monkeypatch.undo()
        raise RuntimeError("something else")


# ---- temporaries left by a kill mid-save -----------------------------------------------------------


@pytest.mark.slow
def test_temporaries_of_a_killed_save_are_removed_on_the_next_start(data_root: Path, tmp_path: Path) -> None:
    opt = _opt(data_root, tmp_path, "val.val_freq=0", "logger.use_tb_logger=false", total_iter=2)
    assert Trainer(opt, interactive=False).run() == 0
    models = tmp_path / "tiny" / "models"
    # a real process killed in the middle of writing a checkpoint
    code = (
        "import sys, time\n"
        "from esrgan.utils.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half a checkpoint'); print('writing', flush=True); time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code, str(models / "net_g_4.pth")], env=ENV,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(30)
    stray = [p for p in models.iterdir() if p.name.startswith(".net_g_4.tmp-")]
    assert len(stray) == 1
    unrelated = models / ".my_notes.txt"
    unrelated.write_text("mine")

    trainer = Trainer(_opt(data_root, tmp_path, "val.val_freq=0", total_iter=3), auto_resume=True, interactive=False)
    assert not stray[0].exists() and unrelated.read_text() == "mine"
    assert "removed 1 temporary file(s) left by an interrupted save" in trainer.log_file.read_text()
    assert trainer.start_iter == 2
    trainer.release_lock()
    assert remove_stale_temporaries(models) == []


# ---- a second Ctrl-C -------------------------------------------------------------------------------


@pytest.mark.slow
def test_second_ctrl_c_stops_at_once_with_one_line(data_root: Path, tmp_path: Path) -> None:
    raw = tiny_options_dict(data_root, tmp_path, total_iter=10**6, gt_size=48)
    raw["network_g"].update(num_feat=32, num_block=3)  # iterations long enough for two signals to land in one
    raw["val"]["val_freq"] = 0
    raw["logger"].update(print_freq=1, save_checkpoint_freq=10**6, use_tb_logger=False)
    opt_file = tmp_path / "o.yml"
    opt_file.write_text(yaml.safe_dump(raw))
    proc = subprocess.Popen([sys.executable, "-m", "esrgan", "train", "-opt", str(opt_file)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        root = tmp_path / "tiny"
        t0 = time.monotonic()
        while not any("iter:" in p.read_text() for p in root.glob("train_*.log")):
            assert proc.poll() is None and time.monotonic() - t0 < 120
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    # The second signal stops the run at once, or (on a fast machine) lands once the first one's state is
    # saved: either way one line says what is kept.
    assert ("esrgan train: interrupted; the last saved training state is kept" in err
            or "continue with --auto-resume" in err), err


# ---- training images checked before step 1 ---------------------------------------------------------


def test_truncated_training_image_is_found_before_step_1(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The probe: a truncated training image was found only at iteration 3 (as a worker's traceback)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(data_root, data)
    victim = data / "train" / "HR" / "002.png"
    victim.write_bytes(victim.read_bytes()[:-200])
    raw = tiny_options_dict(data, tmp_path)
    raw["datasets"]["train"]["num_worker_per_gpu"] = 1
    opt_file = tmp_path / "o.yml"
    opt_file.write_text(yaml.safe_dump(raw))
    assert train_main(["-opt", str(opt_file)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{victim}: truncated" in err
    assert not (tmp_path / "tiny").exists()


def test_image_check_is_cheap_and_lists_every_problem(data_root: Path, tmp_path: Path) -> None:
    from esrgan.data.paired_dataset import check_image_files

    pairs = [(str(p), str(data_root / "train" / "LR" / p.name)) for p in sorted((data_root / "train" / "HR").iterdir())]
    check_image_files(pairs, 4, 16)  # sound set: silent
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ImageReadError) as exc:
        check_image_files([*pairs, (str(bad), pairs[0][1]), (pairs[0][0], pairs[1][0])], 4, 64)
    msg = str(exc.value)
    assert msg.startswith("6 bad training image(s) found before training")  # 4 too small for 64, bad, mismatch
    assert "patch larger than image" in msg and "(+1 more)" in msg


def test_image_check_reads_past_large_jpeg_metadata(tmp_path: Path) -> None:
    """A photo's frame header can sit after tens of KB of metadata (ICC profile, EXIF thumbnail)."""
    import io

    from PIL import Image

    from esrgan.data.image import inspect_image_file

    buf = io.BytesIO()
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(buf, "JPEG", icc_profile=bytes(range(256)) * 40)
    data = buf.getvalue()
    assert data.find(b"\xff\xc0") > 4096  # the frame header is past the first read
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(data)
    assert inspect_image_file(photo) == (50, 30)
    photo.write_bytes(data[:-100])
    with pytest.raises(ImageReadError, match=r"photo\.jpg: truncated"):
        inspect_image_file(photo)
    # data after the end of the image (a phone's motion photo appends its video) is not a truncation
    photo.write_bytes(data + b"ftypmp42" + bytes(range(256)) * 100)
    assert inspect_image_file(photo) == (50, 30)


def test_real_world_hr_set_is_checked_before_step_1(tmp_path: Path, natural_image: np.ndarray) -> None:
    from esrgan.data.build import build_dataset
    from esrgan.options.datasets import RealESRGANDatasetOptions

    imwrite(tmp_path / "a.png", natural_image[:64, :64])
    imwrite(tmp_path / "b.png", natural_image[:64, :64])
    (tmp_path / "b.png").write_bytes((tmp_path / "b.png").read_bytes()[:-40])
    opt = RealESRGANDatasetOptions.from_dict(
        {"name": "rw", "type": "RealESRGANDataset", "dataroot_gt": str(tmp_path), "gt_size": 64}, "datasets.train"
    )
    with pytest.raises(ImageReadError, match=r"1 bad training image\(s\) .*b\.png: truncated"):
        build_dataset(opt)


def test_ctrl_c_in_any_command_is_one_line(tmp_path: Path, natural_image: np.ndarray, model_file: Path) -> None:
    """A real `esrgan upscale` process interrupted mid-batch: exit 130, one line, no partial output."""
    for i in range(40):
        imwrite(tmp_path / "in" / f"{i:02d}.png", natural_image[:96, :96])
    args = ["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model_file),
            "--tile", "16", "--tile-pad", "4", "--passes", "2"]  # fmt: skip
    # 36 + 576 small windows an image (x16 in two passes): about a minute for the 40, so it cannot end first.
    # As from a terminal, Ctrl-C must reach the program: the pytest worker's children can inherit SIGINT ignored
    # or blocked (twice in the full suite the run went on after the signal), so the child makes sure it is not,
    # and notes what it inherited for the failure message.
    inherited = tmp_path / "inherited.txt"
    start = (
        "import pathlib, runpy, signal, sys; "
        f"pathlib.Path({str(inherited)!r}).write_text(f'{{signal.getsignal(signal.SIGINT)}} "
        "{signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])}'); "
        "signal.signal(signal.SIGINT, signal.default_int_handler); "
        f"sys.argv = ['esrgan', *{args!r}]; runpy.run_module('esrgan', run_name='__main__')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", start], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        t0 = time.monotonic()
        while not (tmp_path / "out").is_dir() or not any((tmp_path / "out").glob("*_x16.png")):
            assert proc.poll() is None and time.monotonic() - t0 < 120
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert proc.returncode == 130, f"inherited SIGINT handler, blocked signals: {inherited.read_text()}\n{err}"
    assert "Traceback" not in err and "esrgan upscale: interrupted" in err
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporaries
