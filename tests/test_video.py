"""``esrgan video``: frame count, fps, timestamps and audio survive; frames in order; interruption leaves no file."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio
from synthetic_video import make_test_clip
from torch import nn
from torch.nn import functional as F

from esrgan.archs import RRDBNet
from esrgan.checkpoint import save_network
from esrgan.cli import main as esrgan_main
from esrgan.inference import Upscaler
from esrgan.inference import video as video_mod
from esrgan.inference.video import EncodeOptions, pick_codec, upscale_video


class Sharpen(nn.Module):
    """x2 nearest upscale plus a fixed 3x3 sharpening: cheap, deterministic, image-preserving."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = torch.tensor([[0.0, -0.1, 0.0], [-0.1, 1.4, -0.1], [0.0, -0.1, 0.0]], dtype=x.dtype)
        y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(3, 1, 3, 3).contiguous(), groups=3)
        return F.interpolate(y, scale_factor=2, mode="nearest")


def _read(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {
            "rate": v.average_rate,
            "time_base": v.time_base,
            "size": (v.codec_context.width, v.codec_context.height),
            "audio_codecs": [a.codec_context.name for a in c.streams.audio],
        }
        frames = [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = [(p.pts, p.duration, p.size) for p in c.demux(audio=0) if p.dts is not None] if c.streams.audio else []
    info["pts"] = [p for p, _ in frames]
    info["frames"] = [f for _, f in frames]
    info["audio"] = audio
    return info


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "mkv_aac": make_test_clip(root / "aac.mkv", frames=14, width=32, height=24, audio="aac"),
        "mkv_pcm": make_test_clip(root / "pcm.mkv", frames=10, width=32, height=24, fps=24, audio="pcm_s16le"),
        "mp4_aac": make_test_clip(root / "aac.mp4", frames=10, width=32, height=24, fps=30, audio="aac"),
    }


@pytest.mark.parametrize("kind", ["mkv_aac", "mkv_pcm", "mp4_aac"])
def test_video_keeps_frames_fps_timestamps_and_audio(clips: dict[str, Path], tmp_path: Path, kind: str) -> None:
    src = clips[kind]
    dst = tmp_path / f"up{src.suffix}"
    up = Upscaler(Sharpen(), device="cpu", batch_tiles=3)
    stats = upscale_video(up, src, dst, batch=3, show_progress=False)
    a, b = _read(src), _read(dst)
    assert stats.frames == len(a["pts"]) == len(b["pts"])
    assert b["rate"] == a["rate"] and b["pts"] == a["pts"] and b["time_base"] == a["time_base"]
    assert b["size"] == (2 * a["size"][0], 2 * a["size"][1])
    # audio copied packet for packet: same codec, count, timestamps, durations and sizes
    assert b["audio_codecs"] == a["audio_codecs"] and len(a["audio"]) > 10
    assert b["audio"] == a["audio"] and stats.audio_packets == len(a["audio"])
    # frames in order: each output frame is closest to the upscale of the input frame at the same index
    expected = [up.upscale(f) for f in a["frames"]]
    for i, got in enumerate(b["frames"]):
        scores = [peak_signal_noise_ratio(e, got) for e in expected]
        assert int(np.argmax(scores)) == i and scores[i] > 30


def test_section_start_duration(clips: dict[str, Path], tmp_path: Path) -> None:
    src = clips["mkv_aac"]  # 25 fps: frames at 0, 40, 80, ... ms
    dst = tmp_path / "part.mkv"
    stats = upscale_video(Upscaler(Sharpen(), device="cpu"), src, dst, start=0.1, duration=0.2, show_progress=False)
    b = _read(dst)
    # frames at 120, 160, 200, 240, 280 ms lie in [100, 300) ms; shifted by the 100 ms start
    assert stats.frames == 5 and b["pts"] == [20, 60, 100, 140, 180]
    assert b["audio"] and all(0 <= pts < 200 for pts, _, _ in b["audio"])


class FailAfter(nn.Module):
    """Works for ``calls`` forward passes once armed, then raises: an error in the middle of a video."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.net, self.calls, self.armed = Sharpen(), calls, False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.armed:
            self.calls -= 1
            if self.calls < 0:
                raise RuntimeError("injected failure mid-stream")
        return self.net(x)


def test_interrupted_run_keeps_its_parts_and_the_same_call_finishes_it(clips: dict[str, Path], tmp_path: Path) -> None:
    src = clips["mkv_aac"]  # 14 frames at 25 fps: parts of 0.12 s = 3 frames
    up = Upscaler(FailAfter(calls=4), device="cpu")
    up.model.armed = True
    dst = tmp_path / "out.mkv"
    with pytest.raises(RuntimeError, match="injected failure mid-stream"):
        upscale_video(up, src, dst, batch=1, part_seconds=0.12, show_progress=False)
    folder = tmp_path / ".out.mkv.parts"
    assert not dst.exists() and [p.name for p in tmp_path.iterdir()] == [folder.name]
    # the first part (3 frames) is done; the 4th frame's part was cut: no temporary of it is left
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "part-000000.json", "part-000000.mkv"]
    up.model.armed = False
    stats = upscale_video(up, src, dst, batch=1, part_seconds=0.12, show_progress=False)
    assert stats.resumed_frames == 3 and stats.frames == 14 and not folder.exists()
    whole = upscale_video(up, src, tmp_path / "whole.mkv", batch=1, part_seconds=0.12, show_progress=False)
    assert whole.resumed_frames == 0
    a, b = _read(dst), _read(tmp_path / "whole.mkv")
    assert a["pts"] == b["pts"] and a["audio"] == b["audio"] and len(a["frames"]) == 14
    assert all(np.array_equal(x, y) for x, y in zip(a["frames"], b["frames"], strict=True))
    # a failure before any part is done leaves nothing, and an existing output stays as it was
    dst.write_bytes(b"previous result")
    up.model.armed, up.model.calls = True, 1
    with pytest.raises(RuntimeError, match="injected failure"):
        upscale_video(up, src, dst, batch=1, part_seconds=0.12, show_progress=False)
    assert dst.read_bytes() == b"previous result" and sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv",
                                                                                                   "whole.mkv"]


def test_a_part_finished_before_a_failure_is_kept_however_slow_the_encoder(clips: dict[str, Path], tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # the encoder lags (a loaded machine): part 0's end is still queued when the network fails on frame 5
    write = video_mod._PartWriters.write

    def slow_write(self, arr: np.ndarray, pts: int) -> None:
        time.sleep(0.15)
        write(self, arr, pts)

    monkeypatch.setattr(video_mod._PartWriters, "write", slow_write)
    up = Upscaler(FailAfter(calls=4), device="cpu")
    up.model.armed = True
    with pytest.raises(RuntimeError, match="injected failure mid-stream"):
        upscale_video(up, clips["mkv_aac"], tmp_path / "out.mkv", batch=1, part_seconds=0.12, show_progress=False)
    assert sorted(p.name for p in (tmp_path / ".out.mkv.parts").iterdir()) == ["manifest.json", "part-000000.json",
                                                                               "part-000000.mkv"]


def test_encoder_failure_in_its_thread_propagates(clips: dict[str, Path], tmp_path: Path) -> None:
    # pal8 is a valid pixel format that libx264 refuses when the encoder opens, in the encoder thread
    with pytest.raises(av.FFmpegError, match="avcodec_open2"):
        upscale_video(
            Upscaler(Sharpen(), device="cpu"),
            clips["mkv_aac"],
            tmp_path / "x.mkv",
            encode=EncodeOptions(pix_fmt="pal8"),
            show_progress=False,
        )
    assert list(tmp_path.iterdir()) == []


def test_codec_fallback(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    assert pick_codec("libx264") == "libx264"  # the PyPI wheel ships it
    monkeypatch.setattr(video_mod, "encoder_available", lambda name: name == "mpeg4")
    with caplog.at_level(logging.WARNING, logger="esrgan.inference.video"):
        assert pick_codec("libx264") == "mpeg4"
    assert "libx264 is not in this PyAV build; using mpeg4" in caplog.text


def test_video_cli(clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    model = tmp_path / "tiny.pth"
    save_network(model, {"params": RRDBNet(3, 3, num_feat=4, num_block=1, num_grow_ch=4, scale=2).state_dict()})
    out = tmp_path / "out"
    out.mkdir()
    code = esrgan_main(["video", str(clips["mp4_aac"]), "-o", str(out), "--model", str(model), "--preset", "ultrafast"])
    assert code == 0
    b = _read(out / "aac_x2.mp4")
    assert len(b["pts"]) == 10 and b["rate"] == 30 and b["size"] == (64, 48) and len(b["audio"]) > 10
    assert "10 frames" in capsys.readouterr().err
    assert esrgan_main(["video", str(tmp_path / "missing.mp4"), "-o", str(out), "--model", str(model)]) == 1
    assert "missing.mp4: no such video file" in capsys.readouterr().err
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(b"not a video")
    assert esrgan_main(["video", str(bad), "-o", str(tmp_path / "o.mkv"), "--model", str(model)]) == 1
    assert "cannot open as a video" in capsys.readouterr().err and not (tmp_path / "o.mkv").exists()


def test_progress_counts_frames_and_its_exception_stops_the_run(clips: dict[str, Path], tmp_path: Path) -> None:
    up = Upscaler(Sharpen(), device="cpu", batch_tiles=4)
    seen: list[tuple[int, int | None]] = []
    stats = upscale_video(up, clips["mkv_aac"], tmp_path / "ok.mkv", batch=4, show_progress=False,
                          progress=lambda done, total: seen.append((done, total)))
    # the total is the container's frame count, or an estimate from its duration (15 for this mkv)
    assert [d for d, _ in seen] == [4, 8, 12, 14] and stats.frames == 14
    assert len({t for _, t in seen}) == 1 and seen[0][1] in (14, 15)

    class Stop(Exception):
        pass

    def stop_at_eight(done: int, total: int | None) -> None:
        if done >= 8:
            raise Stop

    with pytest.raises(Stop):
        upscale_video(up, clips["mkv_aac"], tmp_path / "cancelled.mkv", batch=4, show_progress=False,
                      progress=stop_at_eight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mkv"]  # a cancelled run writes nothing


def test_frames_per_pass_from_device_and_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from esrgan.inference import upscaler as upscaler_module

    # RRDBNet x4 with 64 features: the largest activation (64 channels at the output size) is what a full
    # 23-block model has too; one block keeps the test fast.
    up = Upscaler(RRDBNet(3, 3, num_feat=64, num_block=1, num_grow_ch=32), device="cpu", precision="fp32")
    assert video_mod.frames_per_pass(up, 1080, 1920) == 1  # a CPU: one frame per pass, whatever the memory
    gib = 1 << 30
    monkeypatch.setattr(up, "device", torch.device("cuda"))  # decided from the device type and free memory only
    monkeypatch.setattr(upscaler_module, "free_memory", lambda device: 22 * gib)  # a 24 GB GPU, 22 GB free
    assert video_mod.frames_per_pass(up, 180, 320) == video_mod.MAX_FRAMES_PER_PASS  # small frames: a full batch
    assert 1 < video_mod.frames_per_pass(up, 360, 640) < video_mod.MAX_FRAMES_PER_PASS
    # 1080p: one frame per pass, in tiles whose windows stay within the memory share
    assert video_mod.frames_per_pass(up, 1080, 1920) == 1
    tile = up.auto_tile(1080, 1920)
    assert tile > 0 and (tile + 2 * up.tile_pad) ** 2 * up.bytes_per_pixel() <= upscaler_module.MEMORY_SHARE * 22 * gib


def test_one_tile_layout_for_every_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from esrgan.inference import upscaler as upscaler_module

    windows: list[tuple[int, int]] = []

    class Recording(Sharpen):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            windows.append(tuple(x.shape[-2:]))
            return super().forward(x)

    up = Upscaler(Recording(), device="cpu", precision="fp32", tile_pad=2)  # tile 0: sized from free memory
    per_pixel = up.bytes_per_pixel()
    # Free memory shrinks at every look (as when the allocator keeps what earlier frames freed): windows of 60,
    # 50, 40, 30 pixels fit, so tiles sized per frame would be 56, 40, 32 and 24 pixels.
    sides = iter([60, 50, 40, 30, 30, 30])
    monkeypatch.setattr(
        upscaler_module, "free_memory", lambda device: int(next(sides) ** 2 * per_pixel / upscaler_module.MEMORY_SHARE)
    )
    clip = make_test_clip(tmp_path / "in.mkv", frames=4, width=96, height=64, audio=None)
    windows.clear()
    stats = upscale_video(up, clip, tmp_path / "out.mkv", show_progress=False)
    assert stats.frames == 4 and len(windows) % 4 == 0
    per_frame = len(windows) // 4
    assert per_frame > 1  # tiled: the whole 96x64 frame does not fit
    assert all(windows[i * per_frame : (i + 1) * per_frame] == windows[:per_frame] for i in range(4))
    assert max(max(w) for w in windows) <= 60  # the layout sized from the memory free at the start


def test_nan_weights_fail_the_video_naming_the_model(
    clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = RRDBNet(3, 3, num_feat=4, num_block=1, num_grow_ch=4, scale=2)
    with torch.no_grad():
        net.conv_last.bias[0] = float("nan")
    model = tmp_path / "diverged.pth"
    save_network(model, {"params": net.state_dict()})
    out = tmp_path / "out.mp4"
    assert esrgan_main(["video", str(clips["mp4_aac"]), "-o", str(out), "--model", str(model)]) == 1
    assert "diverged.pth produced NaN/Inf values" in capsys.readouterr().err and not out.exists()


def test_frames_per_pass_measured_on_a_gpu_for_long_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The choice logic of the GPU path, with a fake device whose pass costs ``fixed + per_frame * n`` seconds
    (the GPU check runs the real thing: docs/upscaling.md, "GPU check")."""

    class FakeUpscaler:
        def __init__(self, fixed: float, per_frame: float, clock: list[float], n: int = 1) -> None:
            self.device = torch.device("mps")
            self.fixed, self.per_frame, self.clock, self.n = fixed, per_frame, clock, n
            self.passes: list[int] = []

        def batched(self, n: int) -> FakeUpscaler:
            view = FakeUpscaler(self.fixed, self.per_frame, self.clock, n)
            view.passes = self.passes
            return view

        def upscale_tensor(self, x: torch.Tensor) -> torch.Tensor:
            assert x.shape[0] == self.n
            self.passes.append(self.n)
            self.clock[0] += self.fixed + self.per_frame * self.n
            return x

    def measure(fixed: float, per_frame: float, fits: int) -> tuple[int, dict[int, float], list[int]]:
        clock = [0.0]
        monkeypatch.setattr(video_mod, "frames_per_pass", lambda up, h, w: fits)
        up = FakeUpscaler(fixed, per_frame, clock)
        choice, times = video_mod.measure_frames_per_pass(up, 64, 64, repeats=2, clock=lambda: clock[0])
        return choice, times, up.passes

    # a large fixed cost per pass (launches, a small frame): the largest batch that fits wins
    choice, times, passes = measure(10.0, 1.0, fits=8)
    assert choice == 8 and times == pytest.approx({1: 11, 2: 6, 4: 3.5, 8: 2.25})
    assert passes == [1, 1, 1, 2, 2, 2, 4, 4, 4, 8, 8, 8]  # one untimed pass, two timed, per size
    # almost no fixed cost (a large frame keeps the GPU busy): the smallest within 5% of the best
    assert measure(0.1, 1.0, fits=8)[0] == 2
    # memory allows 4: 8 is never tried
    assert max(measure(10.0, 1.0, fits=4)[1]) == 4
    # the CPU: one frame per pass, nothing measured; a short job on a GPU: the most that fit, not measured
    cpu = Upscaler(Sharpen(), device="cpu")
    assert video_mod.measure_frames_per_pass(cpu, 64, 64) == (1, {})
    clock = [0.0]
    gpu = FakeUpscaler(10.0, 1.0, clock)
    monkeypatch.setattr(video_mod, "frames_per_pass", lambda up, h, w: 4)
    assert video_mod.choose_frames_per_pass(gpu, 64, 64, frames=video_mod.MEASURE_FROM_FRAMES - 1) == 4
    assert gpu.passes == []
