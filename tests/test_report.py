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
    assert [m["key"] for m in data["metrics"]] == ["psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "color_drift"]
    assert [m["direction"] for m in data["metrics"]] == [1, 1, 1, 1, -1]
    (tiny_set,) = data["sets"]
    assert tiny_set["means"]["net"] == results["sets"]["Tiny"]["net"]["mean"]
    assert [im["name"] for im in tiny_set["images"]] == ["big", "p", "q"]
    for im in tiny_set["images"]:
        # bicubic is a model here, so the viewer shows the models' own files, then the mod-cropped HR
        assert [s["label"] for s in im["sources"]] == ["bicubic", "net", "HR"]
        row = next(r for r in results["sets"]["Tiny"]["net"]["images"] if r["image"] == im["name"])
        assert im["scores"]["net"] == {k: row[k] for k in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "color_drift")}
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
    assert list(info)[:5] == results["metrics"]  # the results file's order first
    assert info["color_drift"] == ("ColorDrift", -1)
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


def strict_json(text: str):
    """json.loads that refuses what JSON does not have (Infinity, NaN), as a browser's JSON.parse does."""
    def refuse(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def flat_set(tmp_path: Path, natural_image: np.ndarray) -> Path:
    """A set whose second image is flat: bicubic reproduces it exactly (PSNR infinite), NIQE is not defined."""
    folder = tmp_path / "Flat" / "HR"
    imwrite(folder / "photo.png", natural_image[100:228, 100:228])
    imwrite(folder / "sky.png", np.full((128, 128, 3), 140, np.uint8))
    imwrite(folder / "wall.png", natural_image[300:428, 200:328])
    return folder


def test_a_flat_image_is_left_out_of_the_mean_with_its_reason_and_every_json_stays_valid(
        tmp_path: Path, flat_set: Path) -> None:
    rc = test_command.main(["--model", "bicubic", "--scale", "4", "--hr", str(flat_set), "--metrics", "psnr,ssim,niqe",
                            "--name", "flat", "--experiments-root", str(tmp_path / "exp"), "-q"])
    assert rc == 0
    out = tmp_path / "exp" / "flat"
    results = strict_json((out / "results.json").read_text())
    entry = results["sets"]["Flat"]["bicubic"]
    sky = next(r for r in entry["images"] if r["image"] == "sky")
    assert sky["psnr_y"] is None and sky["psnr_rgb"] is None and sky["niqe"] is None
    assert "PSNR is infinite" in sky["notes"]["psnr_y"] and "not defined" in sky["notes"]["niqe"]
    assert sky["ssim_y"] == 1.0  # a finite score of the same image stays
    others = [r for r in entry["images"] if r["image"] != "sky"]
    assert entry["mean"]["psnr_y"] == pytest.approx(np.mean([r["psnr_y"] for r in others]), abs=1e-9)
    assert entry["mean"]["ssim_y"] == pytest.approx(np.mean([r["ssim_y"] for r in entry["images"]]), abs=1e-9)
    assert entry["left_out"] == {"psnr_y": ["sky"], "psnr_rgb": ["sky"], "niqe": ["sky"]}
    assert entry["counts"]["psnr_y"] == 2 and entry["counts"]["ssim_y"] == 3
    csv_row = next(line for line in (out / "results.csv").read_text().splitlines() if ",sky," in line)
    assert csv_row.split(",")[3] == ""  # psnr_y: an empty cell, not 'inf'
    # the page: valid inline JSON, the cell says why
    html = (out / "report.html").read_text(encoding="utf-8")
    data = page_data(html)
    image = next(i for i in data["sets"][0]["images"] if i["name"] == "sky")
    assert image["notes"]["bicubic"]["psnr_y"][0] == "\u221e" and image["notes"]["bicubic"]["niqe"][0] == "n/a"
    assert "mean of 2 of 3 images; left out: sky" in data["sets"][0]["mean_notes"]["bicubic"]["psnr_y"][1]


def test_a_sweep_with_a_flat_image_writes_valid_json(tmp_path: Path, flat_set: Path, ckpts: tuple[Path, Path]) -> None:
    rc = interp_cmd.main(["--psnr", str(ckpts[0]), "--gan", str(ckpts[1]), "--sweep", "0,1", "--hr", str(flat_set),
                          "--scale", "4", "--metrics", "psnr,niqe", "--name", "sw", "--experiments-root",
                          str(tmp_path / "exp"), "-q"])
    assert rc == 0
    sweep = strict_json((tmp_path / "exp" / "sw" / "sweep.json").read_text())
    assert all(isinstance(v, float) or v is None for r in sweep["results"] for v in r["Flat"].values())
    page_data((tmp_path / "exp" / "sw" / "report.html").read_text(encoding="utf-8"))


def test_names_with_comment_openers_and_url_characters_keep_the_page_and_its_links(
        tmp_path: Path, natural_image: np.ndarray) -> None:
    hr = tmp_path / "a<!--b" / "HR"
    names = ["x#1?y", "<!--c-->", "100%", "é & </script>"]
    for k, name in enumerate(names):
        imwrite(hr / f"{name}.png", natural_image[k * 60:k * 60 + 48, 100:148])
    rc = test_command.main(["--model", "bicubic", "--scale", "4", "--hr", str(hr), "--name", "names",
                            "--experiments-root", str(tmp_path / "exp"), "-q"])
    assert rc == 0
    out = tmp_path / "exp" / "names"
    html = (out / "report.html").read_text(encoding="utf-8")
    data = page_data(html)  # the inline data is valid JSON
    assert "<!--" not in html.split('id="report-data">')[1].split("</script>")[0]
    from urllib.parse import unquote

    (set_data,) = data["sets"]
    assert set_data["name"] == "a<!--b"  # the set is named after the folder above HR/
    for image in set_data["images"]:
        for source in image["sources"]:
            assert "#" not in source["src"] and "?" not in source["src"]
            assert (out / unquote(source["src"])).is_file()  # the link leads to the file
    sources = {i["name"]: i["sources"][0]["src"] for i in set_data["images"]}
    assert sources["x#1?y"] == "a%3C%21--b/bicubic/x%231%3Fy.png"


def test_results_and_sweep_name_every_checkpoint_by_path_and_content(tmp_path: Path, hr_set: Path,
                                                                    ckpts: tuple[Path, Path]) -> None:
    import hashlib

    import esrgan

    rc = test_command.main(["--model", "bicubic", "--model", f"net={ckpts[0]}", "--scale", "4", "--hr", str(hr_set),
                            "--name", "prov", "--experiments-root", str(tmp_path / "exp"), "-q"])
    assert rc == 0
    prov = json.loads((tmp_path / "exp" / "prov" / "results.json").read_text())["provenance"]
    bic, net = prov["models"]
    assert bic["label"] == "bicubic" and bic["source"] == "bicubic"
    assert net["label"] == "net" and net["path"] == str(ckpts[0].resolve())
    assert net["sha256"] == hashlib.sha256(ckpts[0].read_bytes()).hexdigest()
    assert net["network"] == "RRDBNet" and net["network_options"]["num_block"] == 1
    assert net["scale"] == 4 and net["precision"] == "fp32" and net["device"] == "cpu"
    assert prov["esrgan_version"] == esrgan.__version__ and "PSNR/SSIM on Y" in prov["conventions"]
    assert prov["command"]
    rc = interp_cmd.main(["--psnr", str(ckpts[0]), "--gan", str(ckpts[1]), "--sweep", "0,1", "--hr", str(hr_set),
                          "--scale", "4", "--name", "sw", "--experiments-root", str(tmp_path / "exp"), "-q"])
    assert rc == 0
    out = tmp_path / "exp" / "sw"
    ends = json.loads((out / "sweep.json").read_text())["provenance"]["models"]
    assert [(e["label"], e["path"]) for e in ends] == [("psnr", str(ckpts[0].resolve())),
                                                       ("gan", str(ckpts[1].resolve()))]
    assert [e["sha256"] for e in ends] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in ckpts]
    data = page_data((out / "report.html").read_text(encoding="utf-8"))
    assert [m["label"] for m in data["provenance"]["models"]] == ["psnr", "gan"]
    # the sweep viewer has the bicubic baseline
    image = data["sets"][0]["images"][0]
    assert image["bicubic"] == f"Tiny/_bicubic/{image['name']}.png" and (out / image["bicubic"]).is_file()
