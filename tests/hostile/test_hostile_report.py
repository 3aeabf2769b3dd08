"""report.html, results.json and sweep.json as a hostile user feeds them: names that are HTML, comment openers
or URL syntax; flat images whose scores are infinite or undefined; result files from an older version holding
Infinity/NaN; missing or broken result files.

Every JSON written must be valid JSON (no Infinity, no NaN: a browser's JSON.parse refuses them and the page
opens blank), every image link of the page must lead to its file, and a name is text, never markup.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from harness import Arena

from esrgan.archs import MSRResNet
from esrgan.checkpoint import save_network
from esrgan.data.image import imwrite
from esrgan.report import write_sweep_report, write_test_report

pytestmark = pytest.mark.slow


def strict_json(text: str):
    def refuse(token: str):
        raise AssertionError(f"not valid JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def page_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert m, "no inline data"
    assert "<!--" not in m.group(1) and "<script" not in m.group(1).lower()
    return strict_json(m.group(1))


def _images(folder: Path, names: list[str], flat: tuple[str, ...] = (), size: int = 40) -> None:
    rng = np.random.default_rng(0)
    for name in names:
        img = np.full((size, size, 3), 90, np.uint8) if name in flat else \
            rng.integers(0, 256, (size, size, 3), np.uint8)
        imwrite(folder / f"{name}.png", img)


def _links_lead_to_files(out: Path, data: dict) -> None:
    for s in data["sets"]:
        for image in s["images"]:
            links = [src["src"] for src in image.get("sources", [])]
            links += [v for v in image.get("outputs", {}).values() if v] + [image.get("hr"), image.get("bicubic")]
            for link in filter(None, links):
                assert "#" not in link and "?" not in link, link
                assert (out / unquote(link)).is_file(), link


NAMES = ["a<!--b", "<img src=x onerror=alert(1)><script>", "x#1?y=2", "100%", "&amp; \"q\" 'q'", "<!---->", "é"]


@pytest.mark.hostile("correct")
def test_test_report_with_markup_and_url_syntax_in_names(arena: Arena) -> None:
    folder = arena.work / "set <!-- #1" / "HR"
    _images(folder, NAMES)
    arena.input(folder)
    result = arena.run("test", "--hr", str(folder), "--model", "bicubic", "--model", "<!--m#?=bicubic",
                       "--scale", "4", "--name", "names", "-q")
    result.assert_ok()
    out = arena.work / "experiments" / "names"
    strict_json((out / "results.json").read_text())
    data = page_data((out / "report.html").read_text(encoding="utf-8"))
    assert sorted(i["name"] for i in data["sets"][0]["images"]) == sorted(NAMES)
    assert data["sets"][0]["name"] == "set <!-- #1" and "<!--m#?" in data["models"]
    _links_lead_to_files(out, data)


@pytest.mark.hostile("correct")
def test_flat_images_keep_every_json_valid_and_means_finite(arena: Arena) -> None:
    folder = arena.work / "flat" / "HR"
    _images(folder, ["sky", "wall", "grain"], flat=("sky", "wall"), size=112)  # NIQE needs 96 px after the crop
    arena.input(folder)
    result = arena.run("test", "--hr", str(folder), "--model", "bicubic", "--scale", "4", "--metrics",
                       "psnr,ssim,niqe", "--name", "flat", "-q")
    result.assert_ok()
    out = arena.work / "experiments" / "flat"
    entry = strict_json((out / "results.json").read_text())["sets"]["flat"]["bicubic"]
    assert entry["left_out"]["psnr_y"] == ["sky", "wall"]
    assert all(v is None or np.isfinite(v) for v in entry["mean"].values())
    page_data((out / "report.html").read_text(encoding="utf-8"))
    assert "left out" in result.out  # the console table says so too


@pytest.mark.hostile("correct")
def test_every_image_flat_gives_no_mean_not_a_wrong_one(arena: Arena) -> None:
    folder = arena.work / "allflat" / "HR"
    _images(folder, ["sky", "wall"], flat=("sky", "wall"))
    result = arena.run("test", "--hr", str(folder), "--model", "bicubic", "--scale", "4", "--name", "af", "-q")
    result.assert_ok()
    entry = strict_json((arena.work / "experiments" / "af" / "results.json").read_text())["sets"]["allflat"]["bicubic"]
    assert entry["mean"]["psnr_y"] is None and entry["mean"]["ssim_y"] == 1.0
    assert "n/a" in result.out


@pytest.mark.hostile("correct")
def test_sweep_with_flat_images_and_odd_names(arena: Arena) -> None:
    folder = arena.work / "sw#<!--" / "HR"
    _images(folder, ["sky?", "grain#"], flat=("sky?",), size=112)
    for seed, name in ((1, "a.pth"), (2, "b.pth")):
        import torch

        torch.manual_seed(seed)
        save_network(arena.work / name, {"params": MSRResNet(3, 3, num_feat=4, num_block=1, upscale=4).state_dict()})
    result = arena.run("interp", "--psnr", "a.pth", "--gan", "b.pth", "--sweep", "0,1", "--hr", str(folder),
                       "--scale", "4", "--metrics", "psnr,niqe", "--name", "sw", "-q")
    result.assert_ok()
    out = arena.work / "experiments" / "sw"
    strict_json((out / "sweep.json").read_text())
    data = page_data((out / "report.html").read_text(encoding="utf-8"))
    _links_lead_to_files(out, data)


@pytest.mark.hostile("correct")
def test_an_older_results_file_with_infinity_and_nan(arena: Arena) -> None:
    out = arena.work / "old"
    out.mkdir()
    (out / "results.json").write_text(
        '{"name": "old", "scale": 4, "metrics": ["psnr_y", "niqe"], "models": ["bicubic"], "sets": {"S": {"bicubic":'
        ' {"mean": {"psnr_y": Infinity, "niqe": NaN}, "images": [{"image": "flat", "psnr_y": Infinity, "niqe": NaN},'
        ' {"image": "x<!--", "psnr_y": -Infinity, "niqe": 5.0}]}}}}')
    html = write_test_report(out).read_text(encoding="utf-8")
    data = page_data(html)
    flat = next(i for i in data["sets"][0]["images"] if i["name"] == "flat")
    assert flat["scores"]["bicubic"] == {} and flat["notes"]["bicubic"]["psnr_y"][0] == "\u221e"
    assert data["sets"][0]["means"]["bicubic"] == {}


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("content", [None, "", "{not json", "[]", '{"sets": 5}', '{"alphas": "x", "results": 3}'])
def test_missing_or_broken_result_files_are_named(arena: Arena, content: str | None) -> None:
    out = arena.work / "broken"
    out.mkdir()
    if content is not None:
        (out / "results.json").write_text(content)
        (out / "sweep.json").write_text(content)
    for write, name in ((write_test_report, "results.json"), (write_sweep_report, "sweep.json")):
        with pytest.raises((FileNotFoundError, ValueError)) as info:
            write(out)
        message = str(info.value)
        assert name in message and "\n" not in message and "Traceback" not in message
    assert not (out / "report.html").exists()
