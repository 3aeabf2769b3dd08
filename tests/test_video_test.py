"""`esrgan test --video`: temporal stability, colour drift and (with HR) PSNR/SSIM per model, strips, report."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic_video import make_pan_clip

from esrgan.cli import main as esrgan_main
from esrgan.data.image import imread, imwrite
from esrgan.evaluation.video_test import read_frames, run_video_test


@pytest.fixture(scope="module")
def pan(tmp_path_factory: pytest.TempPathFactory, natural_image: np.ndarray) -> dict[str, Path]:
    """A 6-frame pan as HR frames (a folder), its x4 LR frames (a folder) and the LR as an H.264 clip."""
    root = tmp_path_factory.mktemp("pan")
    smooth = cv2.GaussianBlur(natural_image, (0, 0), 2)
    for i in range(6):
        hr = np.ascontiguousarray(smooth[100:196, 40 + 4 * i : 168 + 4 * i])
        imwrite(root / "hr" / f"f{i:03d}.png", hr)
        imwrite(root / "lr" / f"f{i:03d}.png", cv2.resize(hr, (32, 24), interpolation=cv2.INTER_AREA))
    clip = make_pan_clip(root / "lr.mp4", smooth[100:124, 40:], frames=6, width=32, height=24, step=1, crf=0)
    return {"hr": root / "hr", "lr": root / "lr", "clip": clip}


def test_scores_strips_and_report_with_hr(pan: dict[str, Path], model_file: Path, tmp_path: Path) -> None:
    report = run_video_test([("tiny", str(model_file)), "bicubic"], pan["lr"], pan["hr"], 4, "v",
                            experiments_root=tmp_path, progress=False)
    assert report.frames == 6 and [m.label for m in report.models] == ["tiny", "bicubic"]
    bicubic = report.models[1]
    # a pan enlarged with bicubic: motion the flow explains, colours kept, close to HR
    assert bicubic.temporal["warping_error"] < 2 and abs(bicubic.temporal["flicker_index"]) < 0.5
    assert bicubic.color_drift < 2 and bicubic.psnr > 25
    assert report.hr_temporal is not None and report.hr_temporal["warping_error"] < 2
    data = json.loads((tmp_path / "v" / "results.json").read_text())
    assert data["kind"] == "video" and data["frames"] == 6 and len(data["models"][0]["warping_per_pair"]) == 5
    assert {"psnr_y", "ssim_y", "warping_error", "flicker_index", "color_drift"} <= set(data["models"][0])
    strip = imread(tmp_path / "v" / "strips" / "bicubic.png")
    assert strip.shape == (6, 128, 3)  # one row of 128 output pixels per frame
    assert np.abs(strip[2, :-8].astype(int) - strip[0, 8:]).mean() < 4  # the pan: rows shift 4 px a frame
    from esrgan.report.video_page import write_video_report

    html = write_video_report(tmp_path / "v").read_text()
    assert "strips/tiny.png" in html and "strips/_hr.png" in html and "warping error" in html and "<svg" in html
    assert "Traceback" not in report.format_table() and "(HR itself)" in report.format_table()


def test_a_video_file_without_hr_and_hr_alone(pan: dict[str, Path], tmp_path: Path) -> None:
    frames = list(read_frames(pan["clip"]))
    assert len(frames) == 6 and frames[0].shape == (24, 32, 3)
    alone = run_video_test(["bicubic"], pan["clip"], None, 4, "lr_only", experiments_root=tmp_path, progress=False)
    assert alone.models[0].psnr is None and alone.hr_temporal is None and alone.models[0].color_drift < 2
    hr_only = run_video_test(["bicubic"], None, pan["hr"], 4, "hr_only", experiments_root=tmp_path, progress=False)
    assert hr_only.frames == 6 and hr_only.models[0].psnr > 25  # LR made from HR with MATLAB bicubic


def test_cli_and_its_refusals(pan: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["test", "--model", "bicubic", "--scale", "4", "--experiments-root", str(tmp_path), "-q"]
    assert esrgan_main([*args, "--video", str(pan["lr"]), "--name", "cli"]) == 0
    out = capsys.readouterr().out
    assert "x4 video results (cli, 6 frames)" in out and "report.html" in out
    assert (tmp_path / "cli" / "report.html").exists()
    assert esrgan_main([*args, "--video", str(tmp_path / "nope.mp4")]) == 1
    assert "nope.mp4: no such video file or folder of frames" in capsys.readouterr().err
    short = tmp_path / "short"
    imwrite(short / "a.png", imread(pan["hr"] / "f000.png"))
    assert esrgan_main([*args, "--video", str(pan["lr"]), "--video-hr", str(short), "--name", "mismatch"]) == 1
    assert "different numbers of frames" in capsys.readouterr().err
    assert esrgan_main(["test", "--video", str(pan["lr"]), "--scale", "4"]) == 2
    assert "missing --model" in capsys.readouterr().err
