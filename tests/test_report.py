"""report.html of `esrgan test` and `esrgan interp --sweep`: the data the page draws, its files, no network.

What the page does in a browser (sorting, divider, alpha slider, offline) is tested in test_browser.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from tiny_nets import tiny_rrdbnet

from esrgan.checkpoint import save_network
from esrgan.commands import interp as interp_cmd
from esrgan.commands import test as test_command
from esrgan.data.image import imread, imwrite
from esrgan.report import metric_direction, write_sweep_report, write_test_report
from esrgan.report.pages import THUMB_SIZE, collect_sweep_data, collect_test_data, render_page


def page_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert m, "no embedded report data"
    return json.loads(m.group(1))


def external_references(html: str) -> list[str]:
    """Every src/href/url()/@import that would leave the folder (the SVG namespace string is not a request)."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html) + re.findall(r"url\(([^)]*)\)", html)
    refs += re.findall(r"@import\s+([^;]+)", html)
    return [r for r in refs if re.match(r"\s*['\"]?(https?:|//|ftp:)", r)]


@pytest.fixture
def hr_set(tmp_path: Path, natural_image: np.ndarray) -> Path:
    folder = tmp_path / "Tiny" / "HR"
    imwrite(folder / "p.png", natural_image[200:264, 200:264])
    imwrite(folder / "q.png", natural_image[40:88, 300:356, 1])  # grey
    imwrite(folder / "big.png", natural_image[:240, :200])  # larger than a thumbnail
    return folder


@pytest.fixture
def ckpts(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "psnr.pth", tmp_path / "gan.pth"
    save_network(a, {"params": tiny_rrdbnet(1, 0.35).state_dict()})
    save_network(b, {"params": tiny_rrdbnet(2, 0.6).state_dict()})
    return a, b


def test_esrgan_test_writes_a_self_contained_report(tmp_path: Path, hr_set: Path, ckpts: tuple[Path, Path]) -> None:
    rc = test_command.main(["--model", "bicubic", "--model", f"net={ckpts[0]}", "--scale", "4", "--hr", str(hr_set),
                        "--name", "r", "--experiments-root", str(tmp_path / "exp"), "-q"])
    assert rc == 0
    out = tmp_path / "exp" / "r"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert external_references(html) == []
    assert "<style>" in html and "class CompareView" in html  # styles and scripts inline
    data = page_data(html)
    results = json.loads((out / "results.json").read_text())
    assert data["kind"] == "test" and data["models"] == ["bicubic", "net"]
    assert [m["key"] for m in data["metrics"]] == ["psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"]
    assert all(m["direction"] == 1 for m in data["metrics"])
    (tiny_set,) = data["sets"]
    assert tiny_set["means"]["net"] == results["sets"]["Tiny"]["net"]["mean"]
    assert [im["name"] for im in tiny_set["images"]] == ["big", "p", "q"]
    for im in tiny_set["images"]:
        # bicubic is a model here, so the viewer shows the models' own files, then the mod-cropped HR
        assert [s["label"] for s in im["sources"]] == ["bicubic", "net", "HR"]
        row = next(r for r in results["sets"]["Tiny"]["net"]["images"] if r["image"] == im["name"])
        assert im["scores"]["net"] == {k: row[k] for k in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")}
        files = [out / s["src"] for s in im["sources"]]
        assert all(f.is_file() for f in files)
        hr = imread(files[-1])
        assert all(imread(f).shape == hr.shape for f in files)  # SR and HR drawn at one size
        thumb = imread(out / im["thumb"])
        assert max(thumb.shape[:2]) <= THUMB_SIZE
    big = next(im for im in tiny_set["images"] if im["name"] == "big")
    assert max(imread(out / big["thumb"]).shape[:2]) == THUMB_SIZE  # 240x200 shrunk to 160 on the long side
    # HR display copy equals the mod-cropped HR the scores were computed on
    np.testing.assert_array_equal(imread(out / "Tiny" / "_hr" / "p.png"), imread(hr_set / "p.png"))


def test_bicubic_baseline_is_written_when_not_a_model(tmp_path: Path, hr_set: Path, ckpts: tuple[Path, Path]) -> None:
    rc = test_command.main(["--model", str(ckpts[0]), "--scale", "4", "--hr", str(hr_set), "--name", "nb",
                        "--experiments-root", str(tmp_path / "exp"), "-q", "--no-compare"])
    assert rc == 0
    data = collect_test_data(tmp_path / "exp" / "nb")
    sources = data["sets"][0]["images"][0]["sources"]
    assert [s["label"] for s in sources] == ["bicubic", "psnr", "HR"]
    assert sources[0]["src"] == "Tiny/_bicubic/big.png"


def test_every_metric_in_results_is_shown_with_its_direction(tmp_path: Path, hr_set: Path,
                                                              ckpts: tuple[Path, Path]) -> None:
    # Metrics are found in results.json, not in a list in the report: NIQE/LPIPS appear when present.
    test_command.main(["--model", "bicubic", "--scale", "4", "--hr", str(hr_set), "--name", "m",
                   "--experiments-root", str(tmp_path / "exp"), "-q", "--no-compare"])
    out = tmp_path / "exp" / "m"
    results = json.loads((out / "results.json").read_text())
    entry = results["sets"]["Tiny"]["bicubic"]
    entry["mean"].update(niqe=6.5, lpips=0.31, my_score=2.0)
    for i, row in enumerate(entry["images"]):
        row.update(niqe=6.0 + i, lpips=0.3, my_score=1.0)
    (out / "results.json").write_text(json.dumps(results))
    data = collect_test_data(out)
    info = {m["key"]: (m["label"], m["direction"]) for m in data["metrics"]}
    assert info["niqe"] == ("NIQE", -1) and info["lpips"] == ("LPIPS", -1) and info["psnr_y"] == ("PSNR-Y", 1)
    assert info["my_score"] == ("MY-SCORE", None)
    assert list(info)[:4] == results["metrics"]  # the results file's order first
    results["directions"]["my_score"] = "lower"  # a direction stored in the results file wins
    (out / "results.json").write_text(json.dumps(results))
    assert {m["key"]: m["direction"] for m in collect_test_data(out)["metrics"]}["my_score"] == -1
    assert "grey" not in info  # booleans are not metrics
    assert data["sets"][0]["images"][2]["scores"]["bicubic"]["niqe"] == 8.0
    assert metric_direction("ssim_rgb") == 1 and metric_direction("NIQE") == -1 and metric_direction("foo") is None


def test_sweep_report_has_every_alpha_of_every_image(tmp_path: Path, hr_set: Path, ckpts: tuple[Path, Path]) -> None:
    rc = interp_cmd.main(["--psnr", str(ckpts[0]), "--gan", str(ckpts[1]), "--sweep", "0:1:0.5", "--hr", str(hr_set),
                          "--scale", "4", "--name", "sw", "--experiments-root", str(tmp_path / "exp"), "-q"])
    assert rc == 0
    out = tmp_path / "exp" / "sw"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert external_references(html) == []
    data = page_data(html)
    sweep = json.loads((out / "sweep.json").read_text())
    assert data["kind"] == "sweep" and data["alphas"] == ["0", "0.5", "1"]
    (s,) = data["sets"]
    assert s["means"]["0.5"] == sweep["results"][1]["Tiny"]
    assert sorted(im["name"] for im in s["images"]) == ["big", "p", "q"]
    for im in s["images"]:
        assert set(im["outputs"]) == {"0", "0.5", "1"} and im["hr"] == f"Tiny/_hr/{im['name']}.png"
        outs = {a: imread(out / p) for a, p in im["outputs"].items()}
        assert not np.array_equal(outs["0"], outs["1"])  # the slider shows different pictures
        # per-image scores in sweep.json are the scores of these files
        row = next(r for r in sweep["images"]["Tiny"]["1"] if r["image"] == im["name"])
        assert im["scores"]["1"]["psnr_y"] == row["psnr_y"]
    # the mean of the per-image rows is the table's mean
    rows = sweep["images"]["Tiny"]["0.5"]
    assert np.isclose(np.mean([r["psnr_y"] for r in rows]), sweep["results"][1]["Tiny"]["psnr_y"])


def test_sweep_report_regenerates_with_perceptual_metrics(tmp_path: Path, hr_set: Path,
                                                          ckpts: tuple[Path, Path]) -> None:
    interp_cmd.main(["--psnr", str(ckpts[0]), "--gan", str(ckpts[1]), "--sweep", "0,1", "--hr", str(hr_set),
                     "--scale", "4", "--name", "pd", "--experiments-root", str(tmp_path / "exp"), "-q"])
    out = tmp_path / "exp" / "pd"
    sweep = json.loads((out / "sweep.json").read_text())
    for k, r in enumerate(sweep["results"]):
        r["Tiny"]["niqe"] = 7.0 - k
    (out / "sweep.json").write_text(json.dumps(sweep))
    write_sweep_report(out)
    data = collect_sweep_data(out)
    assert {m["key"]: m["direction"] for m in data["metrics"]}["niqe"] == -1
    assert data["sets"][0]["means"]["1"]["niqe"] == 6.0


def test_embedded_data_cannot_end_the_script(tmp_path: Path) -> None:
    html = render_page("t </title>", {"kind": "test", "name": "</script><script>alert(1)</script> {{SCRIPT}}",
                                      "metrics": [], "sets": [], "models": []})
    assert "<title>t &lt;/title&gt;</title>" in html
    assert page_data(html)["name"] == "</script><script>alert(1)</script> {{SCRIPT}}"
    assert html.count("</script>") == 2  # the data block's and the script block's own


def test_report_of_a_missing_or_broken_results_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"results\.json"):
        write_test_report(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"results\.json: not valid JSON"):
        write_test_report(tmp_path)
