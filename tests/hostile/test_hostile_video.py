"""`esrgan video` against hostile parts folders, inputs, flags and signals: the parts of an unfinished job are
trusted only when they prove themselves (manifest, sizes, SHA-256), never mixed with another job's, and never
a way to write or delete a file outside the job."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from harness import Arena
from sigterm import sigterm_when

pytestmark = pytest.mark.slow

PART = ["--part-seconds", "0.16"]  # 4 frames a part at 25 fps


def _job(arena: Arena) -> list[str]:
    """A clip with sound and a tiny model in the arena; the command's arguments (output out.mkv)."""
    from synthetic_video import make_test_clip

    from esrgan.archs import MSRResNet
    from esrgan.checkpoint import save_network

    make_test_clip(arena.work / "clip.mkv", frames=16, width=32, height=24, audio="aac")
    save_network(arena.work / "m.safetensors", {"params": MSRResNet(3, 3, num_feat=4, num_block=1, upscale=4)
                                                .state_dict()})
    arena.input("clip.mkv")
    arena.input("m.safetensors")
    return ["video", "clip.mkv", "-o", "out.mkv", "--model", "m.safetensors", *PART]


@pytest.fixture(scope="module")
def half_done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A job stopped by SIGTERM after its first part (clip, model and parts folder), made once and copied into
    each scenario's arena (the parts travel: the manifest holds the input's content, not its place)."""
    maker = Arena(tmp_path_factory.mktemp("half_done"))
    _half_done(maker, _job(maker))
    return maker.work


def _copy_half_done(arena: Arena, source: Path) -> list[str]:
    for name in ("clip.mkv", "m.safetensors"):
        shutil.copy2(source / name, arena.work / name)
        arena.input(name)
    shutil.copytree(source / ".out.mkv.parts", arena.work / ".out.mkv.parts")
    return ["video", "clip.mkv", "-o", "out.mkv", "--model", "m.safetensors", *PART]


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _half_done(arena: Arena, args: list[str]) -> Path:
    """Run the job until its first part is committed, then SIGTERM it (exit 143); return its parts folder."""
    parts = arena.work / ".out.mkv.parts"
    patch = ("from esrgan.inference import video_parts\ncommit = video_parts.PartsFolder.commit\n"
             "def slow(self, record):\n    commit(self, record)\n    time.sleep(3)\n"
             "video_parts.PartsFolder.commit = slow")
    sigterm_when(arena, args, patch, ready=lambda: (parts / "part-000000.json").exists())
    return parts


@pytest.mark.hostile("correct")
def test_sigterm_is_one_line_keeps_finished_parts_and_leaves_no_temporary(arena: Arena) -> None:
    args = _job(arena)
    parts = _half_done(arena, args)
    assert not (arena.work / "out.mkv").exists()
    hidden = [p.name for p in arena.work.rglob(".*tmp-*")]
    assert hidden == [], hidden  # issue 19: a .tmp-*.mp4 was left after SIGTERM
    assert sorted(p.name for p in parts.iterdir()) == ["manifest.json", "part-000000.json", "part-000000.mkv"]
    arena.run(*args).assert_ok()
    assert len(_frames(arena.work / "out.mkv")) == 16 and not parts.exists()


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("content", [b"\xff\xfe{not json", b'{"format": "esrgan-video-parts", "version": 99}'])
def test_tampered_manifest_is_refused_then_restart_starts_afresh(arena: Arena, half_done: Path,
                                                                 content: bytes) -> None:
    args = _copy_half_done(arena, half_done)
    parts = arena.work / ".out.mkv.parts"
    (parts / "manifest.json").write_bytes(content)
    arena.run(*args).assert_refused("manifest.json", "--restart")
    assert not (arena.work / "out.mkv").exists() and (parts / "part-000000.mkv").exists()
    result = arena.run(*args, "--restart")
    result.assert_ok()
    assert "resuming" not in result.err and len(_frames(arena.work / "out.mkv")) == 16


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("chosen", [{"batch": 1, "tile": -3, "part_frames": "4"}, "x"])
def test_damaged_choices_in_the_manifest_are_refused(arena: Arena, half_done: Path, chosen: object) -> None:
    args = _copy_half_done(arena, half_done)
    parts = arena.work / ".out.mkv.parts"
    manifest = json.loads((parts / "manifest.json").read_text())
    manifest["chosen"] = chosen
    (parts / "manifest.json").write_text(json.dumps(manifest))
    arena.run(*args).assert_refused("manifest.json", "chosen", "--restart")


@pytest.mark.hostile("correct")
def test_tampered_or_linked_parts_are_redone_and_nothing_outside_is_touched(arena: Arena, half_done: Path) -> None:
    args = _copy_half_done(arena, half_done)
    clean = arena.run("video", "clip.mkv", "-o", "clean.mkv", "--model", "m.safetensors", *PART)
    clean.assert_ok()
    parts = arena.work / ".out.mkv.parts"
    part = parts / "part-000000.mkv"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the size still matches, the SHA-256 does not
    part.write_bytes(bytes(data))
    # a record that names another file and carries unknown keys, and a part that is a link to the victim
    (parts / "part-000001.json").write_text(json.dumps({"index": 1, "path": "../../outside/victim.txt", "x": 1}))
    (parts / "part-000002.mkv").symlink_to(arena.outside / "victim.txt")
    (parts / "part-000002.json").write_text((parts / "part-000000.json").read_text())
    result = arena.run(*args)
    result.assert_ok()
    assert "part 0 does not match its record" in result.err and "part 1 is damaged" in result.err
    assert all(np.array_equal(a, b) for a, b in zip(_frames(arena.work / "out.mkv"),
                                                    _frames(arena.work / "clean.mkv"), strict=True))
    assert not parts.exists()  # the link removed, its target (checked by the arena) untouched


@pytest.mark.hostile("refused")
def test_a_changed_input_is_refused_then_restarted(arena: Arena, half_done: Path) -> None:
    from synthetic_video import make_test_clip

    args = _copy_half_done(arena, half_done)
    make_test_clip(arena.work / "clip.mkv", frames=16, width=32, height=24, audio="aac", fps=24)  # re-cut
    arena.input("clip.mkv")
    arena.run(*args).assert_refused("out.mkv", "another input", "input", "--restart")
    arena.run(*args, "--restart").assert_ok()


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("flag, value, mention", [
    ("--color-fix", "none", "color_fix: wavelet -> none"), ("--part-seconds", "0.4", "part_seconds: 0.16 -> 0.4"),
])
def test_other_settings_are_refused(arena: Arena, half_done: Path, flag: str, value: str, mention: str) -> None:
    args = _copy_half_done(arena, half_done)
    arena.run(*args, flag, value).assert_refused(mention, "--restart")


@pytest.mark.hostile("refused")
def test_another_model_is_refused(arena: Arena, half_done: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from esrgan.archs import MSRResNet
    from esrgan.checkpoint import save_network

    args = _copy_half_done(arena, half_done)
    # the same file name and network, one weight changed: the weights' SHA-256 decides, not the name
    net = MSRResNet(3, 3, num_feat=4, num_block=1, upscale=4)
    net.load_state_dict({k.removeprefix("params."): v for k, v in load_file(arena.work / "m.safetensors").items()})
    with torch.no_grad():
        net.conv_last.bias[0] += 0.01
    save_network(arena.work / "m.safetensors", {"params": net.state_dict()})
    arena.input("m.safetensors")
    arena.run(*args).assert_refused("model weights_sha256", "--restart")


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("extra, mention", [(["--color-fix", "sepia"], "--color-fix"),
                                            (["--part-seconds", "nan"], "--part-seconds")])
def test_bad_flags_are_one_line(arena: Arena, extra: list[str], mention: str) -> None:
    args = _job(arena)
    arena.run(*args, *extra).assert_refused(mention)
    assert not any(p.name.startswith(".out") for p in arena.work.iterdir())


@pytest.mark.hostile("refused")
def test_output_on_the_input_is_refused(arena: Arena) -> None:
    _job(arena)
    arena.run("video", "clip.mkv", "-o", "clip.mkv", "--model", "m.safetensors").assert_refused("overwrite",
                                                                                                "input")
    arena.run("video", "clip.mkv", "-o", "./clip.mkv", "--model", "m.safetensors",
              "--overwrite").assert_refused("overwrite", "input")


@pytest.mark.hostile("refused")
def test_parts_folder_that_is_a_file_is_refused_and_kept(arena: Arena) -> None:
    args = _job(arena)
    (arena.work / ".out.mkv.parts").write_text("a user's file with this name")
    arena.input(".out.mkv.parts")
    arena.run(*args).assert_refused(".out.mkv.parts", "found a file")


@pytest.mark.hostile("refused")
def test_a_second_job_on_the_same_output_is_refused(arena: Arena) -> None:
    from esrgan.utils.lock import ExperimentLock

    args = _job(arena)
    with ExperimentLock(arena.work / "out.mkv", what="esrgan video job"):
        arena.run(*args).assert_refused("out.mkv", "another", "writing this output")
    assert not (arena.work / ".out.mkv.parts").exists()


@pytest.mark.hostile("refused")
def test_assembly_with_a_part_missing_everywhere_names_it(tmp_path: Path) -> None:
    """What rank 0 says when a part is on no rank (a rank's disk lost it after it was made): in process."""
    from esrgan.inference.ranks import Ranks
    from esrgan.inference.video import _gather_parts
    from esrgan.inference.video_parts import PartsFolder

    parts = PartsFolder(tmp_path / "out.mkv")
    parts.path.mkdir()
    with pytest.raises(ValueError, match=r"part\(s\) 0, 1, 2 of 3 are missing or damaged in .*run the same command"):
        _gather_parts(parts, 3, Ranks(), tmp_path / "clip.mkv")
