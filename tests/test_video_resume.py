"""Long jobs that survive: kill -9 at several points of a real `esrgan video` process, the same command
continues, and the output's frames, timestamps and audio equal an uninterrupted run's; other settings are
refused; torchrun with 2 CPU processes writes what one process writes (video and images); `esrgan upscale`
over a folder killed mid-write never takes the cut output as done."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
from synthetic_video import make_test_clip

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
ENV.pop("PYTEST_XDIST_WORKER", None)
# 24 frames at 25 fps, parts of 0.16 s = 4 frames: 6 parts.
PART = ["--part-seconds", "0.16"]

# Runs `esrgan ARGS...` in this process after arranging a kill -9 of itself at one point of the job.
KILLER = textwrap.dedent(
    """
    import os, runpy, signal, sys

    from esrgan.inference import video, video_parts

    point, n, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    count = [0]

    def kill_at(owner, name, before):
        original = getattr(owner, name)

        def wrapper(*a, **k):
            if before:
                os.kill(os.getpid(), signal.SIGKILL)
            out = original(*a, **k)
            count[0] += 1
            if count[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        setattr(owner, name, wrapper)

    if point == "frame":  # in the middle of a part, after its n-th frame was encoded
        kill_at(video._PartWriters, "write", before=False)
    elif point == "commit":  # right after the n-th part was committed
        kill_at(video_parts.PartsFolder, "commit", before=False)
    elif point == "assemble":  # the output written under its temporary name, not yet renamed
        kill_at(video_parts.PartsFolder, "mark_finished", before=True)
    elif point == "cleanup":  # the output renamed into place, the parts not yet removed
        kill_at(video_parts.PartsFolder, "remove", before=True)
    sys.argv = ["esrgan", *args]
    runpy.run_module("esrgan", run_name="__main__")
    """
)


def _esrgan(*args: str | Path, kill: tuple[str, int] | None = None, cwd: Path) -> subprocess.CompletedProcess:
    argv = [str(a) for a in args]
    cmd = [sys.executable, "-m", "esrgan", *argv] if kill is None else [sys.executable, "-c", KILLER, kill[0],
                                                                          str(kill[1]), *argv]
    return subprocess.run(cmd, env=ENV, cwd=cwd, capture_output=True, text=True, timeout=300)


def _decoded(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
        rate = v.average_rate
    with av.open(str(path)) as c:
        audio = [(p.pts, p.dts, p.duration, bytes(p)) for p in c.demux(audio=0) if p.dts is not None]
    return {"rate": rate, "pts": [p for p, _ in frames], "frames": [f for _, f in frames], "audio": audio}


def _same_video(a: Path, b: Path) -> None:
    x, y = _decoded(a), _decoded(b)
    assert x["rate"] == y["rate"] and x["pts"] == y["pts"] and len(x["frames"]) == 24
    assert all(np.array_equal(f, g) for f, g in zip(x["frames"], y["frames"], strict=True))
    assert x["audio"] == y["audio"] and len(x["audio"]) > 10


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, model_file: Path) -> dict[str, Path]:
    """A clip with sound, and the output of an uninterrupted run of the command the tests interrupt."""
    root = tmp_path_factory.mktemp("resume")
    clip = make_test_clip(root / "clip.mkv", frames=24, width=48, height=32, audio="aac")
    ref = root / "reference.mkv"
    done = _esrgan("video", clip, "-o", ref, "--model", model_file, *PART, cwd=root)
    assert done.returncode == 0, done.stderr
    return {"clip": clip, "reference": ref, "model": model_file}


@pytest.mark.slow
def test_kill_9_at_several_points_then_the_same_command_finishes_the_job(job: dict, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    args = ("video", job["clip"], "-o", out, "--model", job["model"], *PART)
    parts = tmp_path / ".out.mkv.parts"
    records = lambda: sorted(p.name for p in parts.glob("part-*.json"))  # noqa: E731
    # in the middle of part 1 (frame 6 of 24): part 0 is kept, part 1's temporary is not
    killed = _esrgan(*args, kill=("frame", 6), cwd=tmp_path)
    assert killed.returncode == -9 and not out.exists()
    assert records() == ["part-000000.json"]
    # the same command again, killed after it committed two more parts (1 and 2)
    killed = _esrgan(*args, kill=("commit", 2), cwd=tmp_path)
    assert killed.returncode == -9 and records() == [f"part-00000{i}.json" for i in range(3)]
    assert "resuming: 4 of about 25 frames (1 part) already done" in killed.stderr  # the count from the duration
    # again, killed with the whole output written under its temporary name, not yet renamed
    killed = _esrgan(*args, kill=("assemble", 0), cwd=tmp_path)
    assert killed.returncode == -9 and not out.exists() and len(records()) == 6
    assert any(p.name.startswith(".out.tmp-") for p in tmp_path.iterdir())
    # again: nothing left to upscale; the stale temporary is removed, the output put together; killed before
    # the parts are removed
    killed = _esrgan(*args, kill=("cleanup", 0), cwd=tmp_path)
    assert killed.returncode == -9 and out.exists() and parts.exists()
    assert "resuming: 24 of 24 frames (6 parts)" in killed.stderr
    assert not any(p.name.startswith(".out.tmp-") for p in tmp_path.iterdir())
    finished = out.read_bytes()
    # the same command once more: the output is finished; it is left as it is and the parts go
    again = _esrgan(*args, cwd=tmp_path)
    assert again.returncode == 0 and "already finished" in again.stderr
    assert out.read_bytes() == finished and sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]
    _same_video(out, job["reference"])


@pytest.mark.slow
def test_other_settings_are_refused_or_restarted(job: dict, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    args = ["video", job["clip"], "-o", out, "--model", job["model"], *PART]
    assert _esrgan(*args, kill=("commit", 2), cwd=tmp_path).returncode == -9
    refused = _esrgan(*args, "--crf", "30", cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert "settings crf: 18 -> 30" in last and "--restart" in last and str(out) in last
    assert not out.exists() and len(list((tmp_path / ".out.mkv.parts").glob("part-*.json"))) == 2
    fresh = _esrgan(*args, "--crf", "30", "--restart", cwd=tmp_path)
    assert fresh.returncode == 0 and "discarding the 2 part(s) an earlier run left" in fresh.stderr
    assert "resuming" not in fresh.stderr and sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]


@pytest.mark.slow
def test_torchrun_two_processes_write_what_one_writes(job: dict, tmp_path: Path) -> None:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "esrgan"]
    out = tmp_path / "two.mkv"
    run = subprocess.run([*torchrun, "video", str(job["clip"]), "-o", str(out), "--model", str(job["model"]), *PART],
                         env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "across 2 processes (torchrun)" in run.stderr
    _same_video(out, job["reference"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.mkv"]
    # images: each process takes every other image; the folder equals one process's, byte for byte
    from esrgan.data.image import imwrite

    rng = np.random.default_rng(0)
    for i in range(5):
        imwrite(tmp_path / "imgs" / f"i{i}.png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    one = _esrgan("upscale", tmp_path / "imgs", "-o", tmp_path / "one", "--model", job["model"], cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([*torchrun, "upscale", str(tmp_path / "imgs"), "-o", str(tmp_path / "two"), "--model",
                          str(job["model"])], env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "upscaled 5, skipped 0 (existing), failed 0" in two.stderr
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir()) and len(names) == 5
    assert all((tmp_path / "one" / n).read_bytes() == (tmp_path / "two" / n).read_bytes() for n in names)


@pytest.mark.slow
def test_torchrun_finishes_a_job_one_process_began_and_redoes_a_lost_part(job: dict, tmp_path: Path) -> None:
    out = tmp_path / "out.mkv"
    args = ["video", str(job["clip"]), "-o", str(out), "--model", str(job["model"]), *PART]
    assert _esrgan(*args, kill=("commit", 3), cwd=tmp_path).returncode == -9
    (tmp_path / ".out.mkv.parts" / "part-000001.mkv").unlink()  # a part lost (its record stays)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "esrgan"]
    run = subprocess.run([*torchrun, *args], env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "part 1 is damaged" in run.stderr and "resuming: 8 of about 25 frames (2 parts)" in run.stderr
    _same_video(out, job["reference"])


UPSCALE_KILLER = textwrap.dedent(
    """
    import os, runpy, signal, sys

    from esrgan.utils import atomic

    n, args = int(sys.argv[1]), sys.argv[2:]
    count = [0]
    replace = atomic.os.replace

    def dying_replace(src, dst):
        count[0] += 1
        if count[0] == n:  # the n-th output fully written under its temporary name, not yet renamed
            os.kill(os.getpid(), signal.SIGKILL)
        return replace(src, dst)

    atomic.os.replace = dying_replace
    sys.argv = ["esrgan", *args]
    runpy.run_module("esrgan", run_name="__main__")
    """
)


@pytest.mark.slow
def test_upscale_folder_killed_mid_write_then_skip_existing_finishes_it(model_file: Path, tmp_path: Path) -> None:
    from esrgan.data.image import imwrite

    rng = np.random.default_rng(0)
    for i in range(6):
        imwrite(tmp_path / "imgs" / f"i{i}.png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    clean = _esrgan("upscale", tmp_path / "imgs", "-o", tmp_path / "clean", "--model", model_file, cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    args = ["upscale", str(tmp_path / "imgs"), "-o", str(tmp_path / "out"), "--model", str(model_file)]
    killed = subprocess.run([sys.executable, "-c", UPSCALE_KILLER, "3", *args], env=ENV, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9
    out = tmp_path / "out"
    # two outputs whole under their names; the third only as a hidden temporary: never taken as done
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["i0_x4.png", "i1_x4.png"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".i2_x4.tmp-")]
    again = _esrgan(*args, "--skip-existing", cwd=tmp_path)
    assert again.returncode == 0 and "upscaled 4, skipped 2 (existing), failed 0" in again.stderr
    assert "removed 1 temporary file(s) left by an interrupted run" in again.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "clean").iterdir()) and len(names) == 6
    assert all((out / n).read_bytes() == (tmp_path / "clean" / n).read_bytes() for n in names)


TRANSFER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch.distributed as dist

    from esrgan.inference.ranks import Ranks
    from esrgan.inference.video import _gather_parts
    from esrgan.inference.video_parts import PartRecord, PartsFolder

    dist.init_process_group("gloo")
    ranks = Ranks.current()
    # each rank its own disk: rank 0 made part 0, rank 1 part 1 (and rank 0 cannot see rank 1's folder)
    parts = PartsFolder(Path(sys.argv[1]) / f"disk{ranks.rank}" / "out.mkv")
    parts.path.mkdir(parents=True)
    i = ranks.rank
    with parts.writing(i) as tmp:
        tmp.write_bytes(bytes([i]) * (3_000_000 + i))  # larger than one message
    size, sha = parts.sealed(i)
    parts.commit(PartRecord(index=i, first_frame=4 * i, frame_pts=[0, 1, 2, 3], packets=[[0, 0, 1]],
                            time_base=[1, 25], extradata="", size=size, sha256=sha))
    records = _gather_parts(parts, 2, ranks, Path("clip.mkv"))
    if ranks.rank == 0:
        assert [r.index for r in records] == [0, 1]
        assert parts.part_path(1).read_bytes() == bytes([1]) * 3_000_001
        print("rank 0 holds both parts")
    else:
        assert records is None
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_ranks_without_a_shared_disk_send_their_parts_to_rank_0(tmp_path: Path) -> None:
    script = tmp_path / "transfer.py"
    script.write_text(TRANSFER)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(tmp_path)], env=ENV, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "rank 0 holds both parts" in run.stdout
