"""The web app and the HTML reports in a real headless Chromium (the system's `chromium`, driven by Playwright).

Run locally: `apt-get install chromium` (Debian/Ubuntu) and `pip install -e '.[dev]'` (Playwright for Python;
no `playwright install`: the system browser is used), then `pytest tests/test_browser.py`. Without them these
tests skip, saying what is missing. Tiny networks keep every job short; one wide network makes a job long
enough to cancel. Screenshots of the main states go to the test's temporary folder (the path is printed;
`pytest --basetemp=DIR` keeps them in DIR) or to $ESRGAN_SCREENSHOTS when set.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from esrgan.archs import MSRResNet
from esrgan.checkpoint import save_network
from esrgan.data.image import imread, imwrite

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


def shoot(page, path: Path, record_property, full_page: bool = True) -> None:
    page.wait_for_timeout(300)  # the progress bar's width transition
    page.screenshot(path=str(path), full_page=full_page)
    record_property(path.stem, str(path))
    print(f"screenshot: {path}")


class Page:
    """A page with its console errors and every request that tried to leave (for offline checks)."""

    def __init__(self, browser, offline: bool = False, width: int = 1280, height: int = 900,
                 context=None) -> None:
        self.context = context or browser.new_context(viewport={"width": width, "height": height},
                                                      accept_downloads=True, offline=offline)
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

    def real_errors(self) -> list[str]:
        # a refused upload or job is an HTTP 4xx the page shows in words; the console notes the status too
        return [e for e in self.errors if not any(code in e for code in ("400", "403", "404", "413"))]

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


def labels(page, select: str) -> list[str]:
    return page.locator(f"{select} option").evaluate_all("os => os.map(o => o.textContent)")


# ----------------------------------------------------------------------------------------------- esrgan serve


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """photo (a tiny MSRResNet: real pictures out), psnr and gan (two of another size: they blend), slow (a wide
    MSRResNet: a 256 px image takes seconds on a CPU, long enough to cancel), broken (not a checkpoint)."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_network(folder / "photo.safetensors",
                 {"params_ema": MSRResNet(3, 3, num_feat=8, num_block=1, upscale=4).state_dict()})
    for seed, name in ((1, "psnr.pth"), (2, "gan.pth")):  # one network, two weights: they blend
        torch.manual_seed(seed)
        save_network(folder / name, {"params": MSRResNet(3, 3, num_feat=16, num_block=1, upscale=4).state_dict()})
    save_network(folder / "slow.safetensors", {"params": MSRResNet(3, 3, num_feat=64, num_block=8,
                                                                   upscale=4).state_dict()})
    (folder / "broken.pth").write_bytes(b"not a checkpoint")
    return folder


@contextmanager
def serving(tmp_path: Path, models: Path, **changes) -> Iterator[str]:
    import uvicorn

    from esrgan.serve import ServeConfig, create_app

    settings = dict(model_dirs=[str(models)], experiments_root=str(tmp_path / "experiments"),
                    zoo_cache=str(tmp_path / "zoo"), device="cpu", work_dir=str(tmp_path / "work"))
    settings.update(changes)
    app = create_app(ServeConfig(**settings))
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
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def photos_in(tmp_path: Path, natural_image: np.ndarray) -> dict[str, Path]:
    up = tmp_path / "upload"
    files = {"astronaut": (natural_image[120:232, 180:308]), "rocket": natural_image[300:364, 380:444],
             "large": natural_image[:256, :256], "tiny": natural_image[200:232, 200:232]}
    out = {}
    for name, img in files.items():
        out[name] = up / f"{name}.png"
        imwrite(out[name], img)
    return out


def open_app(p: Page, url: str) -> None:
    p.page.goto(url)
    p.page.wait_for_selector("body[data-ready]", state="attached")  # models listed, a job of this page found


def choose(page, models: Path, name: str, select: str = "#model") -> None:
    page.select_option(select, str((models / name).resolve()))


def statuses_of(page) -> list[dict]:
    seen: list[dict] = []

    def on_response(resp) -> None:
        if "/api/jobs/" in resp.url and resp.request.method == "GET" and "/files/" not in resp.url and resp.ok:
            with contextlib.suppress(Exception):  # a response already gone (page reloaded)
                seen.append(resp.json())

    page.on("response", on_response)
    return seen


def test_upload_progress_results_compare_and_download(browser, tmp_path: Path, models: Path,
                                                      photos_in: dict[str, Path], shots: Path,
                                                      record_property) -> None:
    from esrgan.commands import upscale as upscale_cmd

    with serving(tmp_path, models) as url:
        p = Page(browser)
        page = p.page
        statuses = statuses_of(page)
        open_app(p, url)
        # empty: no progress bar, no zip link, a word of what to do
        assert page.is_hidden("#progress") and page.is_hidden("#zip") and page.is_hidden("#viewer")
        shoot(page, shots / "serve_empty.png", record_property)
        # files chosen twice add up, each with a thumbnail and its pixel size; one can be removed
        page.set_input_files("#files", str(photos_in["astronaut"]))
        page.set_input_files("#files", [str(photos_in["rocket"]), str(photos_in["tiny"])])
        page.wait_for_function("() => [...document.querySelectorAll('#chosen li .meta')]"
                               ".filter(m => m.textContent.includes('\u00d7')).length === 3")
        assert page.locator("#chosen li .name").all_text_contents() == ["astronaut.png", "rocket.png", "tiny.png"]
        assert page.text_content("#chosen li:first-child .meta").startswith("128\u00d7112")
        page.click("#chosen li:last-child .remove")
        assert page.locator("#chosen li").count() == 2
        # settings up front: model (with what it is), scale, format
        choose(page, models, "photo.safetensors")
        page.wait_for_function("() => document.querySelector('#model-a-about').textContent.includes('MSRResNet x4')")
        page.click("#scale [data-scale='2']")
        page.select_option("#format", "jpg")
        assert page.is_visible("#quality")
        page.fill("#quality", "90")
        # the colour fix: the command line's values and default, in words, with a hint of what it does
        assert page.locator("#color-fix option").evaluate_all("os => os.map(o => o.value)") == ["none", "wavelet",
                                                                                               "histogram"]
        assert page.input_value("#color-fix") == "wavelet" and "(default)" in labels(page, "#color-fix")[1]
        assert "input's colours back" in page.text_content("#color-fix-hint")
        page.select_option("#color-fix", "histogram")
        page.locator("#h-output").scroll_into_view_if_needed()
        page.locator("#h-output").locator("xpath=..").screenshot(path=str(shots / "colorfix_control.png"))
        page.click("details.more summary")
        page.fill("#tile", "16")  # several tiles: the bar moves
        page.select_option("#precision", "fp32")
        page.click("#run")
        page.wait_for_selector("#status[data-state='done']", timeout=60_000)
        assert page.get_attribute("#progress", "aria-valuenow") == "100"
        assert "Done: 2 of 2 file(s) done" in page.text_content("#status")
        fractions = [s["fraction"] for s in statuses]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        # each file: its output named after the model, its size, what auto chose, a download
        rows = page.locator("#results li")
        assert rows.count() == 2
        first = rows.nth(0).text_content()
        assert "256\u00d7224" in first and "fp32 on cpu" in first and "tiles of 16 px" in first
        assert "colour fix histogram" in first
        # the viewer: input (nearest), bicubic, the model; bicubic | model to start with
        page.wait_for_function("() => document.querySelector('#viewer .cmp-b').naturalWidth === 256")
        assert labels(page, "#viewer .cmp-left") == ["input (nearest)", "bicubic", "photo.safetensors"]
        assert page.text_content("#viewer .cmp-tag.l") == "bicubic"
        drag_divider(page, "#viewer")
        assert "Drag the divider" in page.text_content("#viewer .cmp-help")
        page.click("#viewer button[data-mode='grid']")
        assert page.locator("#viewer .cmp-pane").count() == 3
        assert "divider" not in page.text_content("#viewer .cmp-help")  # side by side has no divider
        page.click("#viewer button[data-mode='slider']")
        shoot(page, shots / "serve_results.png", record_property)
        # downloads: one file (the command line's bytes), and all in a zip named after the inputs
        with page.expect_download() as info:
            page.click("#results li:first-child a.download")
        download = info.value
        assert download.suggested_filename == "astronaut_photo_x2.jpg"
        cli = [str(photos_in["astronaut"]), "-o", str(tmp_path / "cli"), "--model", str(models / "photo.safetensors"),
               "--tile", "16", "--precision", "fp32", "--outscale", "2", "--ext", "jpg", "--quality", "90",
               "--suffix", "_photo_x2", "--color-fix", "histogram"]
        assert upscale_cmd.main(cli) == 0
        assert Path(download.path()).read_bytes() == (tmp_path / "cli" / "astronaut_photo_x2.jpg").read_bytes()
        assert page.is_visible("#zip") and page.get_attribute("#zip", "href")  # the zip link works
        with page.expect_download() as info:
            page.click("#zip")
        assert info.value.suggested_filename == "astronaut_and_1_more_upscaled.zip"
        assert sorted(zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes())).namelist()) == [
            "astronaut_photo_x2.jpg", "rocket_photo_x2.jpg"]
        # a keyboard user picks the other file in the list: the viewer shows it
        page.focus("#results li:nth-child(2)")
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('#viewer .cmp-b').naturalWidth === 128")
        assert page.get_attribute("#results li:nth-child(2)", "aria-pressed") == "true"
        assert p.real_errors() == [], p.errors
        p.close()


def test_a_new_job_clears_the_last_one_and_failures_are_one_line(browser, tmp_path: Path, models: Path,
                                                                 photos_in: dict[str, Path], shots: Path,
                                                                 record_property) -> None:
    with serving(tmp_path, models) as url:
        p = Page(browser)
        page = p.page
        open_app(p, url)
        page.set_input_files("#files", str(photos_in["rocket"]))
        choose(page, models, "photo.safetensors")
        page.click("#run")
        page.wait_for_selector("#status[data-state='done']", timeout=60_000)
        assert page.locator("#results li").count() == 1 and page.is_visible("#viewer")
        # a file that is not an image: named; the last job's picture, list and zip are gone at once
        bad = tmp_path / "upload" / "notes.png"
        bad.write_text("these are my notes, not a picture")
        page.click("#clear-files")
        page.set_input_files("#files", str(bad))
        page.click("#run")
        page.wait_for_selector("#messages .error")
        assert page.text_content("#messages .error .line").startswith("notes.png:")
        assert page.locator("#results li").count() == 0 and page.is_hidden("#viewer") and page.is_hidden("#zip")
        assert page.is_hidden("#progress") and "Cancelled" not in page.text_content("#status")
        # a model that does not load: one line naming it and what to do, the details folded, no empty red bar
        page.click("#clear-files")
        page.set_input_files("#files", str(photos_in["rocket"]))
        choose(page, models, "broken.pth")
        page.click("#run")
        page.wait_for_selector("#status[data-state='error']", timeout=60_000)
        line = page.text_content("#messages .job-error .line")
        assert line.startswith("broken.pth could not be loaded: ") and line.endswith("Choose another model.")
        assert str(models) not in line
        assert page.locator("#messages .job-error details").count() == 1
        assert page.get_attribute("#messages .job-error details", "open") is None
        assert page.is_hidden("#progress") and page.text_content("#status") == "Failed."
        assert page.text_content("#results li.not_run .badge") == "not run"
        assert page.locator("#results .badge.error").count() == 0
        # the red box holds its text (long words wrap instead of running out)
        box = page.locator("#messages .job-error")
        assert box.evaluate("b => b.scrollWidth <= b.clientWidth")
        page.click("#messages .job-error summary")
        assert box.evaluate("b => b.scrollWidth <= b.clientWidth")
        shoot(page, shots / "serve_failed.png", record_property)
        assert p.real_errors() == [], p.errors
        p.close()


def test_per_file_results_reload_mid_job_queue_and_cancel(browser, tmp_path: Path, models: Path,
                                                          photos_in: dict[str, Path], shots: Path,
                                                          record_property) -> None:
    with serving(tmp_path, models, tile=0) as url:
        p = Page(browser)
        page = p.page
        open_app(p, url)
        page.set_input_files("#files", [str(photos_in["tiny"]), str(photos_in["large"]), str(photos_in["rocket"])])
        choose(page, models, "slow.safetensors")
        page.click("details.more summary")
        page.select_option("#precision", "fp32")
        page.click("#run")
        # the first file's result shows while the second runs (a single whole-image pass of some seconds)
        page.wait_for_selector("#results li.done a.download", timeout=60_000)
        assert page.get_attribute("#status", "data-state") == "running"
        assert page.locator("#results li.running").count() == 1 and page.is_visible("#viewer")
        assert page.text_content("#status").startswith("File 2 of 3")
        shoot(page, shots / "serve_running.png", record_property)
        # a reload mid-job: the page finds its job again, with what is done
        page.reload()
        page.wait_for_selector("#results li.done a.download")
        assert page.get_attribute("#status", "data-state") == "running"
        assert "Reconnected to your job" in page.text_content("#messages")
        shoot(page, shots / "serve_after_reload.png", record_property)
        # someone else (another browser) meanwhile: queued behind it, and sees the running job listed
        q = Page(browser)
        open_app(q, url)
        q.page.wait_for_selector("#others li")
        assert "tiny.png, large.png, rocket.png" in q.page.text_content("#others li")
        q.page.set_input_files("#files", str(photos_in["tiny"]))
        q.page.click("#run")
        q.page.wait_for_selector("#status[data-state='queued']")
        assert q.page.text_content("#status") == "Queued: position 2 (1 job(s) ahead on this device)"
        q.page.click("#cancel")
        q.page.wait_for_selector("#status[data-state='cancelled']")
        # Cancel: said at once, landed inside the network's pass (the second file is cancelled, not finished
        # first; no step of it completed), what finished kept. How soon is a time, so it is printed, not asserted.
        page.click("#cancel")
        assert page.text_content("#status") == "Cancelling\u2026" and page.is_disabled("#cancel")
        clicked = time.time()
        page.wait_for_selector("#status[data-state='cancelled']", timeout=10_000)
        seen = time.time() - clicked
        st = json.loads(page.evaluate("async () => JSON.stringify(await (await fetch("
                                      "'/api/jobs/' + localStorage.getItem('esrgan-serve-job'))).json())"))
        print(f"cancel: stopped {st['cancelled_in']:.3f} s after the click (server); page showed it after {seen:.3f} s")
        assert st["cancelled_in"] >= 0 and st["steps_done"] == 0
        assert [r["state"] for r in st["results"]] == ["done", "cancelled", "cancelled"]
        assert page.locator("#results li.done a.download").count() == 1  # kept
        assert page.locator("#results .badge.cancelled").count() == 2 and page.locator("#results .error").count() == 0
        assert page.text_content("#status").startswith("Cancelled: 1 of 3 file(s) done, the rest not run.")
        assert not page.is_disabled("#run")
        shoot(page, shots / "serve_cancelled.png", record_property)
        # an orphan: a job whose page was closed keeps the queue; another page lists it and cancels it
        q.page.click("#clear-files")
        q.page.set_input_files("#files", str(photos_in["large"]))
        q.page.select_option("#model", str((models / "slow.safetensors").resolve()))
        q.page.click("#run")
        q.page.wait_for_selector("#status[data-state='running']")
        q.close()
        page.reload()
        page.wait_for_selector("#others li")
        assert "large.png" in page.text_content("#others li")
        page.click("#others li button:text('Cancel')")
        page.wait_for_selector("#others", state="hidden", timeout=10_000)
        assert p.real_errors() == [], p.errors
        p.close()


def test_compare_a_vs_b_and_blend_with_end_points(browser, tmp_path: Path, models: Path, photos_in: dict[str, Path],
                                                  shots: Path, record_property,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    with serving(tmp_path, models) as url:
        p = Page(browser)
        page = p.page
        open_app(p, url)
        # offline: zoo models not downloaded are shown, but cannot be chosen, and say why
        zoo = page.locator("#model option[value='RealESRGAN_x4plus']")
        assert zoo.is_disabled() and "offline" in zoo.text_content()
        page.set_input_files("#files", [str(photos_in["astronaut"]), str(photos_in["rocket"])])
        page.click("#mode-compare")
        choose(page, models, "psnr.pth")
        choose(page, models, "photo.safetensors", "#model-b")
        page.click("#run")
        page.wait_for_selector("#status[data-state='done']", timeout=60_000)
        assert page.locator("#results li:first-child .out").count() == 2
        names = page.locator("#results li:first-child a.download").evaluate_all("a => a.map(x => x.download)")
        assert names == ["astronaut_psnr_x4.png", "astronaut_photo_x4.png"]  # two models, two names
        page.wait_for_function("() => document.querySelector('#viewer .cmp-b').naturalWidth === 512")
        assert page.text_content("#viewer .cmp-tag.l") == "psnr.pth" and page.text_content("#viewer .cmp-tag.r") == \
            "photo.safetensors"
        assert labels(page, "#viewer .cmp-left") == ["input (nearest)", "bicubic", "psnr.pth", "photo.safetensors"]
        page.click("#viewer button[data-mode='grid']")
        grid = page.locator("#viewer .cmp-grid").bounding_box()
        assert grid["height"] <= 0.8 * 900  # the 2x2 grid fits the window
        page.click("#viewer button[data-mode='slider']")
        shoot(page, shots / "serve_compare.png", record_property)
        # blend: the second model is one of the same network only (gan.pth), never photo or broken
        page.click("#mode-blend")
        page.wait_for_function("() => [...document.querySelectorAll('#model-b option')]"
                               ".some(o => o.value.endsWith('gan.pth'))")
        offered = page.locator("#model-b option").evaluate_all("os => os.filter(o => !o.disabled).map(o => o.value)")
        assert offered == [str((models / "gan.pth").resolve())]
        page.check("#endpoints")
        page.click("#run")
        page.wait_for_selector("#status[data-state='done']", timeout=60_000)
        page.wait_for_function("() => document.querySelector('#viewer .cmp-b').naturalWidth === 512")
        assert page.text_content("#viewer .cmp-tag.l") == "psnr.pth"
        assert page.text_content("#viewer .cmp-tag.r") == "blend \u03b1 = 0.8"
        assert labels(page, "#viewer .cmp-left")[2:] == ["blend \u03b1 = 0.8", "psnr.pth", "gan.pth"]
        first_job = page.evaluate("localStorage.getItem('esrgan-serve-job')")
        # live: moving alpha reruns the blend (the end points are reused) and the viewer shows the new one
        page.focus("#alpha")
        page.keyboard.press("Home")
        page.wait_for_function(f"() => localStorage.getItem('esrgan-serve-job') !== '{first_job}'")
        page.wait_for_selector("#status[data-state='done']", timeout=60_000)
        page.wait_for_function("() => document.querySelector('#viewer .cmp-tag.r').textContent === 'blend \u03b1 = 0'")
        shoot(page, shots / "serve_blend.png", record_property)
        assert p.real_errors() == [], p.errors
        p.close()


def test_keyboard_only(browser, tmp_path: Path, models: Path, photos_in: dict[str, Path]) -> None:
    """Everything from choosing files to downloading, with Tab, Enter, Space and the arrows only."""
    with serving(tmp_path, models) as url:
        p = Page(browser)
        page = p.page
        open_app(p, url)

        def tab_to(predicate: str, limit: int = 60) -> None:
            for _ in range(limit):
                page.keyboard.press("Tab")
                if page.evaluate(f"(() => {{ const e = document.activeElement; return !!({predicate}); }})()"):
                    return
            raise AssertionError(f"Tab never reached {predicate}")

        tab_to("e.id === 'files'")  # the file chooser is in the tab order, and its drop zone shows the focus
        assert page.evaluate("getComputedStyle(document.getElementById('drop')).borderColor") != \
            page.evaluate("getComputedStyle(document.querySelector('.card')).borderColor")
        with page.expect_file_chooser() as chooser:
            page.keyboard.press("Space")
        chooser.value.set_files([str(photos_in["astronaut"]), str(photos_in["rocket"])])
        page.wait_for_selector("#chosen li:nth-child(2)")
        tab_to("e.id === 'mode-compare'")
        page.keyboard.press("Enter")
        assert page.is_visible("#model-b")
        tab_to("e.id === 'model'")
        page.keyboard.type("photo")  # a select takes the first letters of an option
        tab_to("e.id === 'model-b'")
        page.keyboard.type("psnr")
        assert page.input_value("#model").endswith("photo.safetensors")
        assert page.input_value("#model-b").endswith("psnr.pth")
        tab_to("e.dataset.scale === '3'")
        page.keyboard.press("Enter")
        assert page.get_attribute("#scale [data-scale='3']", "aria-checked") == "true"
        tab_to("e.id === 'run'")
        page.keyboard.press("Enter")
        page.wait_for_selector("#status[data-state='done']", timeout=60_000)
        tab_to("e.matches('#results li[role=button]')")
        tab_to("e.matches('#results li[data-index=\"1\"]')")
        page.keyboard.press("Enter")
        assert page.get_attribute("#results li[data-index='1']", "aria-pressed") == "true"
        tab_to("e.matches('#results li[data-index=\"1\"] a.download')")
        with page.expect_download() as info:
            page.keyboard.press("Enter")
        assert info.value.suggested_filename.startswith("rocket_") and info.value.suggested_filename.endswith("_x3.png")
        # the divider moves with the arrows
        tab_to("e.classList.contains('cmp-divider')")
        before = float(page.get_attribute("#viewer .cmp-stage", "data-split"))
        page.keyboard.press("ArrowRight")
        assert float(page.get_attribute("#viewer .cmp-stage", "data-split")) > before
        assert p.real_errors() == [], p.errors
        p.close()


def test_phone_width(browser, tmp_path: Path, models: Path, photos_in: dict[str, Path], shots: Path,
                     record_property) -> None:
    with serving(tmp_path, models) as url:
        p = Page(browser, width=390, height=844)
        page = p.page
        open_app(p, url)
        page.set_input_files("#files", str(photos_in["astronaut"]))
        choose(page, models, "photo.safetensors")
        # nothing wider than the screen: no sideways scrolling, labels within their boxes
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        select = page.locator("#model").bounding_box()
        assert select["x"] >= 0 and select["x"] + select["width"] <= 390
        page.click("#run")
        page.wait_for_selector("#status[data-state='done']", timeout=60_000)
        # the page went down to the results by itself
        page.wait_for_function("() => document.getElementById('results-card').getBoundingClientRect().top < 200")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.wait_for_function("() => document.querySelector('#viewer .cmp-b').naturalWidth === 512")
        shoot(page, shots / "serve_phone.png", record_property, full_page=False)
        assert p.real_errors() == [], p.errors
        p.close()


def test_folder_in_folder_out(browser, tmp_path: Path, models: Path, photos_in: dict[str, Path]) -> None:
    mine = tmp_path / "mine"
    shutil.copytree(photos_in["astronaut"].parent, mine / "photos")
    (mine / "photos" / "large.png").unlink()
    with serving(tmp_path, models, batch_dirs=[str(mine)]) as url:
        p = Page(browser)
        page = p.page
        open_app(p, url)
        page.click("#src-folder")
        page.fill("#batch-input", str(mine / "photos"))
        page.fill("#batch-output", str(mine / "big"))
        choose(page, models, "photo.safetensors")
        page.click("#run")
        page.wait_for_selector("#status[data-state='done']", timeout=60_000)
        assert page.locator("#results li.done").count() == 3
        assert sorted(x.name for x in (mine / "big").iterdir()) == ["astronaut_photo_x4.png", "rocket_photo_x4.png",
                                                                    "tiny_photo_x4.png"]
        assert str((mine / "big").resolve()) in page.text_content("#batch-note")
        # again: nothing is replaced, each file says why it was skipped
        page.click("#run")
        page.wait_for_selector("#status[data-state='done']", timeout=60_000)
        assert page.locator("#results .badge.skipped").count() == 3
        assert "exists from before" in page.text_content("#results li:first-child")
        # a path outside the allowed folders: one line
        page.fill("#batch-input", str(tmp_path))
        page.click("#run")
        page.wait_for_selector("#messages .error")
        assert "outside the allowed batch folders" in page.text_content("#messages .error")
        assert p.real_errors() == [], p.errors
        p.close()


# ----------------------------------------------------------------------------------------------- report.html


@pytest.fixture
def photos(tmp_path: Path, natural_image: np.ndarray) -> Path:
    """A small test set: three 48x48 crops of a real photograph and a flat one (PSNR infinite for bicubic)."""
    hr = tmp_path / "Photos" / "HR"
    imwrite(hr / "face.png", natural_image[76:124, 196:244])
    imwrite(hr / "rocket #2.png", natural_image[300:348, 380:428])  # '#' must not break the image's link
    imwrite(hr / "flag.png", natural_image[20:68, 40:88])
    imwrite(hr / "sky <!--.png", np.full((48, 48, 3), 150, np.uint8))  # '<!--' must not blank the page
    return hr


def _cells(page, table: str, key: str) -> list[str]:
    keys = page.locator(f"{table} thead th").evaluate_all("ths => ths.map(t => t.dataset.key)")
    col = keys.index(key) + 1
    return page.locator(f"{table} tbody tr td:nth-child({col})").all_text_contents()


def test_test_report_opens_offline_and_its_table_and_viewer_work(browser, tmp_path: Path, models: Path,
                                                                 photos: Path, shots: Path, record_property) -> None:
    from esrgan.commands import test as test_cmd

    rc = test_cmd.main(["--model", "bicubic", "--model", f"net={models / 'photo.safetensors'}", "--scale", "4",
                        "--hr", str(photos), "--name", "browser", "--experiments-root", str(tmp_path / "exp"), "-q"])
    assert rc == 0
    report = tmp_path / "exp" / "browser" / "report.html"
    p = Page(browser, offline=True)
    p.block_network()
    page = p.page
    page.goto(report.as_uri())
    page.wait_for_selector("#image-table tbody tr")
    assert p.errors == [] and p.outside == []
    # what was compared: the checkpoint by path and SHA-256
    prov = page.text_content(".provenance")
    assert str((models / "photo.safetensors").resolve()) in prov and "MSRResNet" in prov
    # which way is better is written, apart from the sort order (a triangle, only on the sorted column)
    th = page.locator("#image-table th[data-key='psnr_y']")
    assert th.locator(".dir").text_content() == "higher is better" and th.locator(".arrow").text_content() == ""
    page.click("#image-table th[data-key='psnr_y']")
    assert th.locator(".arrow").text_content() == "\u25be" and th.get_attribute("aria-sort") == "descending"
    values = [v for v in _cells(page, "#image-table", "psnr_y")]
    numbers = [float(v) for v in values if v not in ("\u221e", "n/a")]
    assert len(values) == 8 and numbers == sorted(numbers, reverse=True)
    # the flat image: bicubic's PSNR is infinite, shown as such with the reason, and left out of the mean
    sky = page.locator("#image-table tbody tr", has_text="sky <!--").filter(has_text="bicubic")
    cell = sky.locator("td.noted").first
    assert cell.text_content() == "\u221e" and "left out of the mean" in cell.get_attribute("title")
    assert "left out: sky <!--" in page.text_content("#summary")
    # the numbers are results.json's
    results = json.loads((report.parent / "results.json").read_text())
    face = next(r for r in results["sets"]["Photos"]["net"]["images"] if r["image"] == "face")
    assert f"{face['psnr_y']:.2f}" in values
    # viewer: the images load from the folder (a '#' in a name too), the divider drags
    page.wait_for_function("() => document.querySelector('#viewer .cmp-b').naturalWidth === 48")
    drag_divider(page, "#viewer")
    # a row of model X shows X: here bicubic's row of 'rocket #2' (the left side then is another picture)
    page.click("#image-table th[data-key='image']")
    row = page.locator("#image-table tbody tr", has_text="rocket #2").filter(has_text="bicubic")
    row.click()
    assert page.input_value("#compare .image-select") == "2"  # rocket #2
    assert page.text_content("#viewer .cmp-tag.r") == "bicubic"
    page.wait_for_function("() => document.querySelector('#viewer .cmp-b').naturalWidth === 48")
    assert page.get_attribute("#viewer .cmp-b", "src") == "Photos/bicubic/rocket%20%232.png"
    page.locator("#image-table tbody tr", has_text="rocket #2").filter(has_text="net").click()
    assert page.text_content("#viewer .cmp-tag.r") == "net"
    # side by side: zoom one pane, every pane follows; the grid fits the window
    page.click("#viewer button[data-mode='grid']")
    panes = page.locator("#viewer .cmp-pane")
    assert panes.count() == 3  # bicubic, net, HR
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


def test_sweep_report_alpha_slider_and_plots(browser, tmp_path: Path, photos: Path, models: Path, shots: Path,
                                            record_property) -> None:
    from esrgan.commands import interp as interp_cmd

    (photos / "sky <!--.png").unlink()
    rc = interp_cmd.main(["--psnr", str(models / "psnr.pth"), "--gan", str(models / "gan.pth"), "--sweep",
                          "0:1:0.25", "--hr", str(photos), "--scale", "4", "--name", "sw", "--experiments-root",
                          str(tmp_path / "exp"), "-q"])
    assert rc == 0
    report = tmp_path / "exp" / "sw" / "report.html"
    p = Page(browser, offline=True)
    p.block_network()
    page = p.page
    page.goto(report.as_uri())
    page.wait_for_selector("#alpha-slider")
    # the end points by name, with their files' digests
    assert "from 0 (psnr) to 1 (gan)" in page.text_content("header")
    assert str((models / "gan.pth").resolve()) in page.text_content(".provenance")
    assert page.get_attribute("#viewer .cmp-a", "src") == "Photos/alpha0.00/face.png"
    assert labels(page, "#viewer .cmp-left") == ["\u03b1 = 0", "HR", "bicubic", "\u03b1 = 0 (psnr)", "\u03b1 = 1 (gan)"]
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
    assert "no perceptual metric" in page.text_content("#plot-pd")
    # with NIQE in sweep.json the perception-distortion plane is drawn, one labelled point per alpha
    sweep = json.loads((report.parent / "sweep.json").read_text())
    for k, row in enumerate(sweep["results"]):
        row["Photos"]["niqe"] = 9.0 - k * 0.5
    (report.parent / "sweep.json").write_text(json.dumps(sweep))
    from esrgan.report import write_sweep_report

    write_sweep_report(report.parent)
    page.reload()
    page.wait_for_selector("#plot-pd svg")
    assert page.locator("#plot-pd svg text.pt-label").all_text_contents() == [
        f"\u03b1={a}" for a in ("0", "0.25", "0.5", "0.75", "1")]
    assert page.locator("#plot-pd svg circle[r='6']").count() == 1
    # the 2x2 grid (alpha, HR, bicubic... ) fits the window even when the window is small (a zoomed page)
    page.set_viewport_size({"width": 900, "height": 560})
    page.locator("#viewer").scroll_into_view_if_needed()
    page.click("#viewer button[data-mode='grid']")
    grid = page.locator("#viewer .cmp-grid").bounding_box()
    assert grid["height"] <= 0.8 * 560
    page.click("#viewer button[data-mode='slider']")
    page.set_viewport_size({"width": 1280, "height": 900})
    shoot(page, shots / "sweep_report.png", record_property)
    assert p.errors == [] and p.outside == []
    p.close()


def test_sweep_report_shows_the_selected_alpha(browser, tmp_path: Path, photos: Path, models: Path) -> None:
    from esrgan.commands import interp as interp_cmd

    (photos / "sky <!--.png").unlink()
    select = "lowest color_drift with psnr_y no more than 40 dB below the PSNR model"
    rc = interp_cmd.main(["--psnr", str(models / "psnr.pth"), "--gan", str(models / "gan.pth"), "--sweep",
                          "0:1:0.5", "--hr", str(photos), "--scale", "4", "--name", "sel", "--experiments-root",
                          str(tmp_path / "exp"), "-q", "--select", select])
    assert rc == 0
    report = tmp_path / "exp" / "sel" / "report.html"
    chosen = json.loads((report.parent / "sweep.json").read_text())["selection"]["alpha"]
    alphas = [0.0, 0.5, 1.0]
    p = Page(browser, offline=True)
    p.block_network()
    page = p.page
    page.goto(report.as_uri())
    page.wait_for_selector("#selection")
    text = page.text_content("#selection")
    assert select in text and f"Photos: \u03b1 = {chosen:g}" in text
    assert page.input_value("#alpha-slider") == str(alphas.index(chosen))  # the page opens at the choice
    page.keyboard.press("Home")
    page.focus("#alpha-slider")
    page.keyboard.press("End")
    page.click("#selection button:text('show')")
    assert page.input_value("#alpha-slider") == str(alphas.index(chosen))
    assert p.errors == [] and p.outside == []
    p.close()


def test_training_pairs_page_shows_lr_against_its_target(browser, tmp_path: Path) -> None:
    from esrgan.report.gallery import write_degradation_gallery
    from esrgan.training.preview import TrainingPair

    torch_ = pytest.importorskip("torch")
    gen = torch_.Generator().manual_seed(0)
    pairs = [TrainingPair(it, k, torch_.rand(3, 8, 8, generator=gen), torch_.rand(3, 32, 32, generator=gen))
             for it in (1, 2) for k in (0, 1)]
    page_path = write_degradation_gallery(pairs, tmp_path / "g", name="demo", scale=4,
                                          description="what the trainer sees")
    p = Page(browser, offline=True)
    p.block_network()
    page = p.page
    page.goto(page_path.as_uri())
    page.wait_for_selector("#gallery .pair")
    assert page.locator("#gallery .pair").count() == 4 and "what the trainer sees" in page.text_content("#about")
    assert page.get_attribute("#viewer .cmp-a", "src") == "images/it0001_00_lq_x4.png"
    assert page.text_content("#pair-sizes").startswith("LR 8x8")
    page.locator("#gallery .pair").nth(3).click()
    assert page.get_attribute("#viewer .cmp-a", "src") == "images/it0002_01_lq_x4.png"
    assert p.errors == [] and p.outside == []
    p.close()


def test_report_images_load_with_strange_names(browser, tmp_path: Path, photos: Path) -> None:
    from esrgan.commands import test as test_cmd

    assert test_cmd.main(["--model", "bicubic", "--scale", "4", "--hr", str(photos), "--name", "names",
                          "--experiments-root", str(tmp_path / "exp"), "-q"]) == 0
    p = Page(browser, offline=True)
    p.block_network()
    page = p.page
    page.goto((tmp_path / "exp" / "names" / "report.html").as_uri())
    page.wait_for_selector("#image-table tbody tr")
    for index in range(4):  # every picture of every image, '#' and '<!--' in their names, loads
        page.select_option("#compare .image-select", str(index))
        page.wait_for_function("() => [...document.querySelectorAll('#viewer img.cmp-a, #viewer img.cmp-b')]"
                               ".every(i => i.complete && i.naturalWidth === 48)")
    assert p.errors == [] and p.outside == []
    assert imread(photos / "sky <!--.png").shape == (48, 48, 3)
    p.close()
