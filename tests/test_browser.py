"""The web app and the HTML reports in a real headless Chromium (the system's `chromium`, driven by Playwright).

Run locally: `apt-get install chromium` (Debian/Ubuntu) and `pip install -e '.[dev]'` (Playwright for Python;
no `playwright install`: the system browser is used), then `pytest tests/test_browser.py`. Without them these
tests skip, saying what is missing. Screenshots of both pages go to the test's temporary folder (the path is
printed; `pytest --basetemp=DIR` keeps them in DIR) or to $ESRGAN_SCREENSHOTS when set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tiny_nets import tiny_rrdbnet

from esrgan.checkpoint import save_network
from esrgan.data.image import imread, imwrite

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = REPO_ROOT.parent / "shared" / "models"
# The small real models of ../shared/models: SRVGGNetCompact (fast) when this checkout can load it,
# else the 6-block RRDBNet on a small picture.
REAL_MODELS = ("realesr-animevideov3_x4.pth", "RealESRGAN_x4plus_anime_6B.pth")
CHROMIUM = os.environ.get("ESRGAN_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set ESRGAN_CHROMIUM)"
    for mod in ("starlette", "uvicorn", "multipart"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install -e '.[serve]')"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=f"browser tests: {_missing()}")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ["ESRGAN_SCREENSHOTS"]) if os.environ.get("ESRGAN_SCREENSHOTS") else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(page, path: Path, record_property) -> None:
    page.screenshot(path=str(path), full_page=True)
    record_property(path.stem, str(path))
    print(f"screenshot: {path}")


@pytest.fixture(scope="module")
def real_model() -> Path:
    from esrgan.loading import load_generator

    for name in REAL_MODELS:
        path = SHARED_MODELS / name
        if not path.is_file():
            continue
        try:
            load_generator(str(path))
        except Exception:  # architecture not in this checkout yet: take the next
            continue
        return path
    pytest.skip(f"no loadable real model in {SHARED_MODELS} ({', '.join(REAL_MODELS)})")


class Page:
    """A page with its console errors and every request that tried to leave (for offline checks)."""

    def __init__(self, browser, offline: bool = False) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                                           offline=offline)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def block_network(self) -> None:
        def route(r) -> None:
            if r.request.url.startswith("file:"):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        self.context.route("**/*", route)

    def close(self) -> None:
        self.context.close()


def drag_divider(page, viewer: str) -> tuple[float, float]:
    stage = page.locator(f"{viewer} .cmp-stage")
    before = float(stage.get_attribute("data-split"))
    stage.scroll_into_view_if_needed()
    box = page.locator(f"{viewer} .cmp-handle").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y, steps=4)
    page.mouse.move(x + 150, y, steps=4)
    page.mouse.up()
    after = float(stage.get_attribute("data-split"))
    width = stage.bounding_box()["width"]
    assert after == pytest.approx(before + 150 / width, abs=0.01)
    clip = page.locator(f"{viewer} .cmp-top").evaluate("e => e.style.clipPath")
    assert clip == f"inset(0px 0px 0px {after * 100:.2f}%)"
    return before, after


# ----------------------------------------------------------------------------------------------- esrgan serve


@pytest.fixture
def server(tmp_path: Path, real_model: Path) -> Iterator[str]:
    import uvicorn

    from esrgan.serve import ServeConfig, create_app

    bad_models = tmp_path / "bad_models"
    bad_models.mkdir()
    (bad_models / "broken.pth").write_bytes(b"not a checkpoint")
    config = ServeConfig(model_dirs=[str(real_model.parent), str(bad_models)],
                         experiments_root=str(tmp_path / "experiments"),
                         zoo_cache=str(tmp_path / "zoo"), device="cpu", work_dir=str(tmp_path / "work"), tile=512)
    app = create_app(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.mark.slow
def test_serve_upload_progress_compare_download(browser, server: str, real_model: Path, tmp_path: Path,
                                                natural_image: np.ndarray, shots: Path, record_property) -> None:
    from esrgan.commands import upscale as upscale_cmd

    photo = tmp_path / "upload" / "astronaut_crop.png"
    imwrite(photo, natural_image[120:232, 180:308])  # a real photograph, 128x112
    p = Page(browser)
    page = p.page
    statuses: list[dict] = []

    def on_response(resp) -> None:
        if "/api/jobs/" in resp.url and resp.request.method == "GET" and "/files/" not in resp.url:
            statuses.append(resp.json())

    page.on("response", on_response)
    page.goto(server)
    page.wait_for_selector(f"#model option[value='{real_model}']", state="attached")
    page.set_input_files("#files", str(photo))
    page.select_option("#model", str(real_model))
    page.click("details.more summary")
    page.fill("#tile", "16")  # two windows (16-pixel cores with fp32's 48 pixels of context): progress steps
    page.select_option("#precision", "fp32")  # the default pad follows the precision (80 px in bf16: one window)
    page.click("#run")
    page.wait_for_selector("#status[data-state='done']", timeout=120_000)
    assert page.get_attribute("#progress", "aria-valuenow") == "100"
    assert page.text_content("#percent") == "100%"
    assert "Done: 1 of 1 file(s)" in page.text_content("#status")
    # the page polled while it ran: fractions never go back, and the last is the whole job
    fractions = [s["fraction"] for s in statuses]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert statuses[-1]["steps_done"] == statuses[-1]["steps_total"] > 1

    page.wait_for_function("() => document.querySelector('#viewer .cmp-b').naturalWidth > 0")
    assert page.text_content("#viewer .cmp-tag.l") == "bicubic"
    drag_divider(page, "#viewer")
    shoot(page, shots / "serve.png", record_property)

    with page.expect_download() as info:
        page.click("#results a.download")
    download = info.value
    assert download.suggested_filename == "astronaut_crop_x4.png"
    got = Path(download.path()).read_bytes()
    cli = [str(photo), "-o", str(tmp_path / "cli"), "--model", str(real_model), "--tile", "16", "--precision", "fp32"]
    assert upscale_cmd.main(cli) == 0
    assert got == (tmp_path / "cli" / "astronaut_crop_x4.png").read_bytes()
    assert imread(tmp_path / "cli" / "astronaut_crop_x4.png").shape == (448, 512, 3)

    # A file that is not an image: the page names it, the server stays up
    bad = tmp_path / "upload" / "notes.png"
    bad.write_text("these are my notes, not a picture")
    page.set_input_files("#files", str(bad))
    page.click("#run")
    page.wait_for_selector("#messages .error")
    message = page.text_content("#messages .error")
    assert message.startswith("notes.png:") and "cannot decode" in message
    shoot(page, shots / "serve_bad_upload.png", record_property)
    # A model that does not load: said in the page, and the next job runs
    page.set_input_files("#files", str(photo))
    page.select_option("#model", str((tmp_path / "bad_models" / "broken.pth").resolve()))
    page.click("#run")
    page.wait_for_selector("#status[data-state='error']", timeout=60_000)
    assert "cannot load model broken" in page.text_content("#messages")
    page.select_option("#model", str(real_model))
    # Cancel while it runs: the job stops between two tiles, the bar stays where it was
    long_job = tmp_path / "upload" / "long.png"
    imwrite(long_job, natural_image[100:356, 150:406])  # 256x256 in 16-pixel tiles: 6 x 6 passes or more
    page.set_input_files("#files", str(long_job))
    page.fill("#tile", "16")
    page.click("#run")
    page.wait_for_selector("#status:has-text('tile ')", timeout=120_000)
    # a second user meanwhile waits in the queue, and sees where
    other = p.context.new_page()
    other.goto(server)
    other.wait_for_selector(f"#model option[value='{real_model}']", state="attached")
    other.set_input_files("#files", str(photo))
    other.select_option("#model", str(real_model))
    other.click("#run")
    other.wait_for_selector("#status[data-state='queued']")
    assert other.text_content("#status") == "Queued: position 2 (1 job(s) ahead on this device)"
    other.click("#cancel")
    other.wait_for_selector("#status[data-state='cancelled']")
    page.click("#cancel")
    page.wait_for_selector("#status[data-state='cancelled']", timeout=120_000)
    assert int(page.get_attribute("#progress", "aria-valuenow")) < 100
    assert page.is_disabled("#cancel") and not page.is_disabled("#run")
    assert p.errors == [] or all("400" in e for e in p.errors), p.errors  # the refused upload's HTTP 400 only
    p.close()


# ----------------------------------------------------------------------------------------------- report.html


@pytest.fixture
def photos(tmp_path: Path, natural_image: np.ndarray) -> Path:
    """A small test set of three 48x48 crops of a real photograph."""
    hr = tmp_path / "Photos" / "HR"
    imwrite(hr / "face.png", natural_image[76:124, 196:244])
    imwrite(hr / "rocket.png", natural_image[300:348, 380:428])
    imwrite(hr / "flag.png", natural_image[20:68, 40:88])
    return hr


def _cells(page, table: str, key: str) -> list[str]:
    keys = page.locator(f"{table} thead th").evaluate_all("ths => ths.map(t => t.dataset.key)")
    col = keys.index(key) + 1
    return page.locator(f"{table} tbody tr td:nth-child({col})").all_text_contents()


def test_test_report_opens_offline_and_its_table_and_viewer_work(browser, tmp_path: Path, real_model: Path,
                                                                 photos: Path, shots: Path, record_property) -> None:
    from esrgan.commands import test as test_cmd

    hr = photos
    rc = test_cmd.main(["--model", "bicubic", "--model", f"real={real_model}", "--scale", "4", "--hr", str(hr),
                        "--name", "browser", "--experiments-root", str(tmp_path / "exp"), "-q"])
    assert rc == 0
    report = tmp_path / "exp" / "browser" / "report.html"
    p = Page(browser, offline=True)
    p.block_network()
    page = p.page
    page.goto(report.as_uri())
    page.wait_for_selector("#image-table tbody tr")
    assert p.errors == [] and p.outside == []

    # sorting: PSNR-Y opens best first (descending), a second click reverses
    page.click("#image-table th[data-key='psnr_y']")
    values = [float(v) for v in _cells(page, "#image-table", "psnr_y")]
    assert len(values) == 6 and values == sorted(values, reverse=True)
    page.click("#image-table th[data-key='psnr_y']")
    values = [float(v) for v in _cells(page, "#image-table", "psnr_y")]
    assert values == sorted(values)
    page.click("#image-table th[data-key='image']")
    assert _cells(page, "#image-table", "image") == ["face", "face", "flag", "flag", "rocket", "rocket"]
    # the numbers are results.json's
    results = json.loads((report.parent / "results.json").read_text())
    face = next(r for r in results["sets"]["Photos"]["real"]["images"] if r["image"] == "face")
    psnrs = _cells(page, "#image-table", "psnr_y")
    assert f"{face['psnr_y']:.2f}" in psnrs

    # viewer: the images load from the folder, the divider drags, a row click opens its image
    page.wait_for_function("() => document.querySelector('#viewer .cmp-b').naturalWidth === 48")
    drag_divider(page, "#viewer")
    page.click("#image-table tbody tr:last-child")
    assert page.input_value("#compare .image-select") == "2"  # rocket
    assert page.get_attribute("#viewer .cmp-a", "src") == "Photos/bicubic/rocket.png"
    # side by side: zoom one pane, every pane follows
    page.click("#viewer button[data-mode='grid']")
    panes = page.locator("#viewer .cmp-pane")
    assert panes.count() == 3  # bicubic, real, HR
    panes.nth(1).scroll_into_view_if_needed()
    box = panes.nth(1).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    transforms = page.locator("#viewer .cmp-pane img").evaluate_all("imgs => imgs.map(i => i.style.transform)")
    assert len(set(transforms)) == 1 and "scale(" in transforms[0]
    assert page.text_content("#viewer .zoom") != "fit"
    page.click("#viewer button[data-mode='slider']")
    page.select_option("#compare .image-select", "0")
    page.click("#viewer button:text('Fit')")
    shoot(page, shots / "test_report.png", record_property)
    assert p.errors == [] and p.outside == []
    p.close()



def test_sweep_report_alpha_slider_and_plots(browser, tmp_path: Path, photos: Path, shots: Path,
                                            record_property) -> None:
    from esrgan.commands import interp as interp_cmd

    hr = photos
    a, b = tmp_path / "psnr.pth", tmp_path / "gan.pth"
    save_network(a, {"params": tiny_rrdbnet(1, 0.35).state_dict()})
    save_network(b, {"params": tiny_rrdbnet(2, 0.6).state_dict()})
    rc = interp_cmd.main(["--psnr", str(a), "--gan", str(b), "--sweep", "0:1:0.25", "--hr", str(hr), "--scale", "4",
                          "--name", "sw", "--experiments-root", str(tmp_path / "exp"), "-q"])
    assert rc == 0
    report = tmp_path / "exp" / "sw" / "report.html"
    p = Page(browser, offline=True)
    p.block_network()
    page = p.page
    page.goto(report.as_uri())
    page.wait_for_selector("#alpha-slider")
    assert page.get_attribute("#viewer .cmp-a", "src") == "Photos/alpha0.00/face.png"
    assert page.locator("#plot-alpha svg polyline").count() == 1
    # scrub: each step shows that alpha's picture, its scores, and moves the plot's marker
    page.focus("#alpha-slider")
    for k, alpha in enumerate(("0.25", "0.5", "0.75", "1"), start=1):
        page.keyboard.press("ArrowRight")
        assert page.input_value("#alpha-slider") == str(k)
        assert page.get_attribute("#viewer .cmp-a", "src") == f"Photos/alpha{float(alpha):.2f}/face.png"
        assert page.text_content("#alpha-value").startswith(f"\u03b1 = {alpha}")
        assert page.text_content("#viewer .cmp-tag.l") == f"\u03b1 = {alpha}"
    marker_x = page.locator("#plot-alpha svg line.current").get_attribute("x1")
    page.keyboard.press("Home")
    assert page.locator("#plot-alpha svg line.current").get_attribute("x1") != marker_x
    page.wait_for_function("() => document.querySelector('#viewer .cmp-a').naturalWidth === 48")
    drag_divider(page, "#viewer")
    # the table sorts too, and a row click moves the slider
    page.click("#sweep-table th[data-key='Photos|psnr_y']")
    psnr = [float(v) for v in _cells(page, "#sweep-table", "Photos|psnr_y")]
    assert psnr == sorted(psnr, reverse=True)
    page.click("#sweep-table tbody tr:first-child")
    best_alpha = _cells(page, "#sweep-table", "alpha")[0]
    assert page.text_content("#alpha-value").startswith(f"\u03b1 = {float(best_alpha):g}")
    # no perceptual metric in this sweep: the page says so instead of drawing an empty plot
    assert "no perceptual metric" in page.text_content("#plot-pd")
    # with NIQE in sweep.json (as `--metrics psnr,niqe` writes it) the perception-distortion plane is drawn,
    # one labelled point per alpha, the current one marked
    sweep = json.loads((report.parent / "sweep.json").read_text())
    for k, row in enumerate(sweep["results"]):
        row["Photos"]["niqe"] = 9.0 - k * 0.5
    (report.parent / "sweep.json").write_text(json.dumps(sweep))
    from esrgan.report import write_sweep_report

    write_sweep_report(report.parent)
    page.reload()
    page.wait_for_selector("#plot-pd svg")
    labels = page.locator("#plot-pd svg text.pt-label").all_text_contents()
    assert labels == [f"\u03b1={a}" for a in ("0", "0.25", "0.5", "0.75", "1")]
    assert page.locator("#plot-pd svg circle[r='6']").count() == 1
    shoot(page, shots / "sweep_report.png", record_property)
    assert p.errors == [] and p.outside == []
    p.close()
