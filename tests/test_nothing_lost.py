"""Issue 13, data loss: outputs never replace inputs or earlier files, one training per experiment folder
(real processes), experiment names stay under experiments/, and a failed start leaves the earlier run as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from tiny_training import make_tiny_data, tiny_options_dict

from esrgan.cli import main as esrgan_main
from esrgan.data.image import imread, imwrite
from esrgan.options import OptionsError, options_from_dict
from esrgan.training.dist import DistInfo
from esrgan.training.trainer import Trainer
from esrgan.utils.folders import check_experiment_name, experiment_dir
from esrgan.utils.lock import ExperimentInUseError, ExperimentLock, lock_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_data(tmp_path_factory.mktemp("tinydata"), n_train=4, n_val=1)


def upscale(*argv: str | Path) -> int:
    return esrgan_main(["upscale", *map(str, argv)])


# ---- esrgan upscale: planned outputs ------------------------------------------------------------


def test_upscale_into_its_own_folder_never_replaces_an_input(
    tmp_path: Path, natural_image: np.ndarray, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The probe: DIR holds a.png and a_x4.png; `upscale DIR -o DIR` wrote a.png's result over a_x4.png."""
    d = tmp_path / "photos"
    imwrite(d / "a.png", natural_image[:16, :16])
    imwrite(d / "a_x4.png", natural_image[100:116, 100:116])
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(SystemExit) as exc:
        upscale(d, "-o", d, "--model", model_file)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "would replace input images of this run" in err and "a_x4.png" in err
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # nothing written, nothing replaced
    # --overwrite does not make an input writable
    with pytest.raises(SystemExit):
        upscale(d, "-o", d, "--model", model_file, "--overwrite")
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    # --skip-existing: a.png's output exists (it is the input a_x4.png): left alone; a_x4.png is upscaled
    assert upscale(d, "-o", d, "--model", model_file, "--skip-existing") == 0
    assert (d / "a_x4.png").read_bytes() == before["a_x4.png"]
    assert imread(d / "a_x4_x4.png").shape == (64, 64, 3)


def test_upscale_refuses_files_from_before_unless_overwrite(
    tmp_path: Path, natural_image: np.ndarray, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    imwrite(src / "a.png", natural_image[:16, :16])
    imwrite(src / "b.png", natural_image[:12, :12])
    out.mkdir()
    (out / "a_x4.png").write_bytes(b"someone's file")
    with pytest.raises(SystemExit) as exc:
        upscale(src, "-o", out, "--model", model_file)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "1 output file(s) exist from before" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["a_x4.png"]  # refused before writing anything
    assert (out / "a_x4.png").read_bytes() == b"someone's file"
    assert upscale(src, "-o", out, "--model", model_file, "--overwrite") == 0
    assert imread(out / "a_x4.png").shape == (64, 64, 3) and imread(out / "b_x4.png").shape == (48, 48, 3)
    # the same for one input and an explicit output file
    (tmp_path / "one.png").write_bytes(b"keep")
    with pytest.raises(SystemExit):
        upscale(src / "a.png", "-o", tmp_path / "one.png", "--model", model_file)
    assert (tmp_path / "one.png").read_bytes() == b"keep"


def test_upscale_format_switch_cannot_land_on_an_input(
    tmp_path: Path, natural_image: np.ndarray, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--ext jpg on an RGBA image writes PNG instead: that late name is checked as well (by file identity)."""
    d = tmp_path / "d"
    imwrite(d / "logo.png", np.dstack([natural_image[:8, :8], np.full((8, 8), 255, np.uint8)]))
    imwrite(d / "logo_x4.png", natural_image[:8, :8])
    before = (d / "logo_x4.png").read_bytes()
    assert upscale(d / "logo.png", d / "logo_x4.png", "-o", d, "--ext", "jpg", "--model", model_file) == 1
    assert "logo.png: not written: its output" in capsys.readouterr().err
    assert (d / "logo_x4.png").read_bytes() == before
    assert imread(d / "logo_x4_x4.jpg").shape == (32, 32, 3)  # the other input still ran


def test_upscale_sees_through_links(tmp_path: Path, natural_image: np.ndarray, model_file: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    imwrite(src / "a.png", natural_image[:8, :8])
    out.mkdir()
    os.link(src / "a.png", out / "a_x4.png")  # the output name is a hard link to the input
    before = (src / "a.png").read_bytes()
    with pytest.raises(SystemExit):
        upscale(src / "a.png", "-o", out, "--model", model_file, "--overwrite")
    assert (src / "a.png").read_bytes() == before


def test_video_output_from_before_needs_overwrite(tmp_path: Path, model_file: Path) -> None:
    pytest.importorskip("av")
    from synthetic_video import make_test_clip

    clip = make_test_clip(tmp_path / "c.mkv", frames=4, width=16, height=16, audio=None)
    (tmp_path / "o.mkv").write_bytes(b"mine")
    with pytest.raises(SystemExit):
        esrgan_main(["video", str(clip), "-o", str(tmp_path / "o.mkv"), "--model", str(model_file)])
    assert (tmp_path / "o.mkv").read_bytes() == b"mine"
    args = ["video", str(clip), "-o", str(tmp_path / "o.mkv"), "--model", str(model_file), "--overwrite"]
    assert esrgan_main(args) == 0 and (tmp_path / "o.mkv").stat().st_size > 4


# ---- experiment names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", " ", ".", "..", "../../x", "a/b", "a\\b", "x\0y", "tab\tname"])
def test_bad_experiment_names_are_refused(name: str, data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        check_experiment_name(name)
    raw = tiny_options_dict(data_root, tmp_path)
    raw["name"] = name
    del raw["path"]  # the name decides the folder: experiments/<name>
    with pytest.raises(OptionsError) as exc:
        options_from_dict(raw)
    assert exc.value.key == "name"
    assert experiment_dir("experiments", "ok..name_1") == Path("experiments/ok..name_1")


def test_empty_name_does_not_archive_the_experiments_folder(data_root: Path, tmp_path: Path) -> None:
    """The probe: `name: ''` archived all of experiments/; `name: '../../x'` wrote outside it."""
    from esrgan.commands.train import main as train_main

    (tmp_path / "experiments" / "earlier_run").mkdir(parents=True)
    for name in ("", "../../x"):
        raw = tiny_options_dict(data_root, tmp_path)
        raw["name"] = name
        del raw["path"]
        opt_file = tmp_path / "o.yml"
        opt_file.write_text(yaml.safe_dump(raw))
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            assert train_main(["-opt", str(opt_file)]) == 2
        finally:
            os.chdir(cwd)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["experiments", "o.yml"]
        assert [p.name for p in (tmp_path / "experiments").iterdir()] == ["earlier_run"]
    # the test runner and the sweep resolve names the same way
    from esrgan.evaluation.tester import run_tests

    with pytest.raises(ValueError, match="experiment name"):
        run_tests([], [], 4, name="", experiments_root=tmp_path / "experiments")
    assert [p.name for p in (tmp_path / "experiments").iterdir()] == ["earlier_run"]


# ---- a failed start leaves the earlier run as it was ---------------------------------------------


def _opt(data_root: Path, exp: Path, *overrides: str, **kw):
    return options_from_dict(tiny_options_dict(data_root, exp, **kw), list(overrides))


@pytest.mark.slow
def test_failed_start_archives_nothing_and_auto_resume_finds_the_earlier_run(data_root: Path, tmp_path: Path) -> None:
    opt = _opt(data_root, tmp_path, "train.total_iter=2", "logger.save_checkpoint_freq=1", "val.val_freq=0")
    assert Trainer(opt, interactive=False).run() == 0
    root = tmp_path / "tiny"
    first = sorted(p.name for p in root.rglob("*"))
    assert "2.state" in first

    # dataroot_gt names a file, not a folder: refused before the folder is touched
    bad = _opt(data_root, tmp_path, "train.total_iter=4")
    bad.datasets["train"].dataroot_gt = str(data_root / "train" / "HR" / "000.png")
    with pytest.raises(FileNotFoundError, match=r"dataroot_gt: .*000\.png is a file, expected a folder"):
        Trainer(bad, interactive=False)
    # a data error found while reading the data (an HR image without its LR partner)
    (data_root / "train" / "LR" / "003.png").rename(tmp_path / "away.png")
    try:
        with pytest.raises(FileNotFoundError, match=r"003\.png has no LR partner"):
            Trainer(_opt(data_root, tmp_path, "train.total_iter=4"), interactive=False)
    finally:
        (tmp_path / "away.png").rename(data_root / "train" / "LR" / "003.png")
    assert sorted(p.name for p in root.rglob("*")) == first
    assert not list(tmp_path.glob("tiny_archived_*")) and not lock_path(root).exists()

    trainer = Trainer(_opt(data_root, tmp_path, "train.total_iter=4", "val.val_freq=0"), auto_resume=True,
                      interactive=False)
    assert trainer.start_iter == 2
    assert trainer.run() == 0


# ---- one training per experiment folder (real processes) -----------------------------------------


def _wait_for(cond, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.mark.slow
def test_second_training_with_the_same_name_refuses_and_a_killed_run_does_not_block(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from esrgan.commands.train import main as train_main

    raw = tiny_options_dict(data_root, tmp_path, total_iter=10**6)
    raw["val"]["val_freq"] = 0
    raw["logger"].update(print_freq=1, save_checkpoint_freq=10**6)
    opt_file = tmp_path / "long.yml"
    opt_file.write_text(yaml.safe_dump(raw))
    root = tmp_path / "tiny"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "esrgan.commands.train", "-opt", str(opt_file)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: any(root.glob("train_*.log")) or first.poll() is not None)
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        assert f"pid {first.pid} on " in lock_path(root).read_text()
        logs = sorted(root.glob("train_*.log"))

        # a second training with the same name, in another process: refused, the first's folder untouched
        assert train_main(["-opt", str(opt_file), "--set", "train.total_iter=2"]) == 2
        err = capsys.readouterr().err
        assert "is in use by another training run" in err and f"pid {first.pid} on " in err
        assert not list(tmp_path.glob("tiny_archived_*")) and sorted(root.glob("train_*.log")) == logs
        assert first.poll() is None
        with pytest.raises(ExperimentInUseError):  # --auto-resume too
            Trainer(_opt(data_root, tmp_path, "train.total_iter=2"), auto_resume=True, interactive=False)
        # another rank of a DDP job does not take the lock (only rank 0 does): it is not refused
        opt = _opt(data_root, tmp_path, "train.total_iter=2")
        rank1 = Trainer(opt, dist_info=DistInfo(rank=1, world_size=2), interactive=False)
        assert rank1._lock is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    # the killed run left its lock file behind; the kernel released the lock: the next run starts
    assert lock_path(root).exists()
    code = train_main(["-opt", str(opt_file), "--set", "train.total_iter=1"])
    assert code == 0
    assert len(list(tmp_path.glob("tiny_archived_*"))) == 1  # the killed run's folder, archived as always
    assert not lock_path(root).exists()  # released and removed at the end


def test_lock_is_exclusive_between_open_files_and_released_on_close(tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    with ExperimentLock(folder) as held:
        assert held.held and "pid" in lock_path(folder).read_text()
        with pytest.raises(ExperimentInUseError, match=f"pid {os.getpid()} on "):
            ExperimentLock(folder).acquire()
    assert not lock_path(folder).exists()
    ExperimentLock(folder).acquire().release()


def test_test_runs_and_sweeps_refuse_a_folder_in_use(tmp_path: Path, natural_image: np.ndarray) -> None:
    from tiny_nets import tiny_rrdbnet

    from esrgan.checkpoint import save_network
    from esrgan.evaluation.sweep import run_sweep
    from esrgan.evaluation.tester import run_tests
    from esrgan.evaluation.testsets import make_test_set

    hr_dir = tmp_path / "hr"
    imwrite(hr_dir / "a.png", natural_image[:64, :64])
    test_set = make_test_set("s", hr_dir, None)
    ckpt = tmp_path / "g.pth"
    save_network(ckpt, {"params": tiny_rrdbnet(0).state_dict()})
    root = tmp_path / "experiments"
    for name, run in (
        ("t", lambda: run_tests(["bicubic"], [test_set], 4, "t", experiments_root=root, progress=False)),
        ("sw", lambda: run_sweep(str(ckpt), str(ckpt), "0,1", [test_set], 4, "sw", experiments_root=root,
                                 progress=False)),
    ):
        run()  # a finished run leaves its folder and no lock
        assert (root / name).is_dir() and not lock_path(root / name).exists()
        # e.g. a training of the same name is running
        with ExperimentLock(root / name), pytest.raises(ExperimentInUseError,
                                                        match=r"in use by another training run \(pid \d+ on "):
            run()
        assert not list(root.glob(f"{name}_archived_*")), "a refused run must not archive the folder in use"
        run()  # free again: the finished folder is archived as before
        assert len(list(root.glob(f"{name}_archived_*"))) == 1
