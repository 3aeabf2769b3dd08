"""esrgan serve through its HTTP API (Starlette's TestClient): allowed models, bad uploads, jobs, queue, downloads.

The page itself, in a real browser, is tested in test_browser.py.
"""

from __future__ import annotations

import io
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="esrgan serve's web stack is not installed: pip install 'esrgan[serve]'")
pytest.importorskip("httpx2", reason="Starlette's TestClient needs httpx2 (dev extra)")
pytest.importorskip("multipart", reason="python-multipart is not installed: pip install 'esrgan[serve]'")

from starlette.testclient import TestClient
from tiny_nets import tiny_rrdbnet

from esrgan.checkpoint import save_network
from esrgan.commands import upscale as upscale_cmd
from esrgan.commands.serve import exposure_warning
from esrgan.data.image import imdecode, imencode, imread, imwrite
from esrgan.evaluation.interpolation import load_pair
from esrgan.inference import Upscaler
from esrgan.inference.tiling import tile_grid
from esrgan.inference.upscaler import TILE_PADS
from esrgan.serve import ServeConfig, create_app
from esrgan.serve.jobs import Item, Job, JobQueue, Settings


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    save_network(folder / "a.pth", {"params": tiny_rrdbnet(1, 0.35).state_dict()})
    save_network(folder / "b.pth", {"params": tiny_rrdbnet(2, 0.6).state_dict()})
    (folder / "broken.pth").write_bytes(b"not a checkpoint")
    return folder


@pytest.fixture
def client(tmp_path: Path, model_dir: Path):
    config = ServeConfig(model_dirs=[str(model_dir)], experiments_root=str(tmp_path / "experiments"),
                         zoo_cache=str(tmp_path / "zoo"), device="cpu", work_dir=str(tmp_path / "work"),
                         max_upload_mb=1.0, max_pixels=200 * 200, tile=32)
    with TestClient(create_app(config), base_url="http://127.0.0.1:7860") as c:
        yield c


@pytest.fixture
def png(natural_image: np.ndarray) -> bytes:
    return imencode(natural_image[200:248, 180:236], ".png")


def wait(client: TestClient, job: str, timeout: float = 60) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        st = client.get(f"/api/jobs/{job}").json()
        if st["state"] in ("done", "error", "cancelled"):
            return st
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not finish: {st}")


def submit(client: TestClient, files: list[tuple[str, bytes]], **fields: str):
    return client.post("/api/jobs", files=[("files", (n, d, "application/octet-stream")) for n, d in files],
                       data=fields)


def test_upscale_job_equals_esrgan_upscale(client: TestClient, model_dir: Path, png: bytes, tmp_path: Path) -> None:
    model = str(model_dir / "a.pth")
    r = submit(client, [("crop.png", png)], model=model, tile="32")
    assert r.status_code == 200, r.text
    st = wait(client, r.json()["job"])
    assert st["state"] == "done" and st["fraction"] == 1.0
    # one forward pass per tile: 48x56 in 32-px tiles with the default context (48 px or more: one window here)
    assert st["steps_done"] == st["steps_total"] == len(tile_grid(48, 56, 32, min(TILE_PADS.values())))
    (res,) = st["results"]
    assert res["output_name"] == "crop_x4.png" and res["size"] == [224, 192]
    served = client.get(res["output"] + "?download=1")
    assert served.status_code == 200
    assert 'attachment; filename="crop_x4.png"' in served.headers["content-disposition"]
    # the same file as the command line's, byte for byte
    imwrite(tmp_path / "in" / "crop.png", imdecode(png))
    assert upscale_cmd.main([str(tmp_path / "in" / "crop.png"), "-o", str(tmp_path / "cli"), "--model", model,
                             "--tile", "32"]) == 0
    assert served.content == (tmp_path / "cli" / "crop_x4.png").read_bytes()
    bicubic = imdecode(client.get(res["bicubic"]).content)
    assert bicubic.shape == (192, 224, 3)
    # one by one or all in a zip: the same bytes
    z = zipfile.ZipFile(io.BytesIO(client.get(st["zip"]).content))
    assert z.namelist() == ["crop_x4.png"] and z.read("crop_x4.png") == served.content


def test_models_outside_the_allowed_folders_are_refused(client: TestClient, model_dir: Path, png: bytes,
                                                        tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "x.pth"
    save_network(outside, {"params": tiny_rrdbnet(3, 0.5).state_dict()})
    (model_dir / "link.pth").symlink_to(outside)
    for spec in (str(outside), str(model_dir / ".." / "elsewhere" / "x.pth"), str(model_dir / "link.pth"),
                 "/etc/passwd", "models/a.pth", ""):
        r = submit(client, [("crop.png", png)], model=spec)
        assert r.status_code in (400, 403), spec
        assert "error" in r.json()
    r = submit(client, [("crop.png", png)], model=str(outside))
    assert "outside the allowed model folders" in r.json()["error"] and "--model-dir" in r.json()["error"]
    # the catalog lists only what may be loaded: the model folder's checkpoints and the zoo
    models = client.get("/api/info").json()["models"]
    ids = {m["id"] for m in models}
    assert str((model_dir / "a.pth").resolve()) in ids and str(outside) not in ids
    assert "RealESRGAN_x4plus" in ids
    assert not list((tmp_path / "work").glob("*"))  # refused before anything was stored


def test_bad_uploads_are_named_and_the_rest_still_run(client: TestClient, model_dir: Path, png: bytes,
                                                     natural_image: np.ndarray) -> None:
    model = str(model_dir / "a.pth")
    big = imencode(natural_image[:256, :256], ".png")  # 65536 px > the 40000 px limit
    huge = b"\x89PNG" + bytes(1024 * 1024 + 10)  # over 1 MB
    r = submit(client, [("notes.png", b"hello, not an image"), ("big.png", big), ("huge.png", huge),
                        ("good.png", png)], model=model)
    assert r.status_code == 200
    errors = {x["name"]: x["error"] for x in r.json()["rejected"]}
    assert "notes.png" in errors["notes.png"] and "cannot decode" in errors["notes.png"]
    assert "big.png: 256x256" in errors["big.png"] and "--max-pixels" in errors["big.png"]
    assert "huge.png" in errors["huge.png"] and "upload limit of 1 MB" in errors["huge.png"]
    st = wait(client, r.json()["job"])
    assert st["state"] == "done" and [x["name"] for x in st["results"]] == ["good.png"]
    # nothing usable: an error naming the file, no job
    r = submit(client, [("notes.png", b"hello")], model=model)
    assert r.status_code == 400 and r.json()["error"].startswith("notes.png:")
    r = submit(client, [], model=model)
    assert r.status_code == 400 and "no files" in r.json()["error"]


def test_a_model_that_fails_to_load_is_reported_and_the_server_goes_on(client: TestClient, model_dir: Path,
                                                                      png: bytes) -> None:
    r = submit(client, [("crop.png", png)], model=str(model_dir / "broken.pth"))
    st = wait(client, r.json()["job"])
    assert st["state"] == "error" and "cannot load model broken" in st["message"]
    st = wait(client, submit(client, [("crop.png", png)], model=str(model_dir / "a.pth")).json()["job"])
    assert st["state"] == "done"


def test_live_interpolation_reuses_the_upload(client: TestClient, model_dir: Path, png: bytes) -> None:
    a, b = str(model_dir / "a.pth"), str(model_dir / "b.pth")
    first = wait(client, submit(client, [("crop.png", png)], model=a, model_b=b, alpha="0.3", tile="0").json()["job"])
    assert first["state"] == "done"
    again = client.post("/api/jobs", data={"from_job": first["id"], "model": a, "model_b": b, "alpha": "1",
                                           "tile": "0"})
    second = wait(client, again.json()["job"])
    img = imdecode(png)
    pair = load_pair(a, b)
    for st, alpha in ((first, 0.3), (second, 1.0)):
        got = imdecode(client.get(st["results"][0]["output"]).content)
        want = Upscaler(pair.build(alpha), device="cpu", tile=0, precision="auto", batch_tiles=1).upscale(img)
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        imdecode(client.get(second["results"][0]["output"]).content),
        Upscaler(b, device="cpu", tile=0, batch_tiles=1).upscale(img),  # alpha 1 is the second model
    )
    r = client.post("/api/jobs", data={"model": a, "model_b": b, "alpha": "1.5", "from_job": first["id"]})
    assert r.status_code == 400 and "alpha must be in [0, 1]" in r.json()["error"]


def test_queue_runs_one_job_at_a_time_shows_positions_and_cancels(tmp_path: Path) -> None:
    started = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def run_item(job: Job, item: Item, model: object, progress) -> None:
        order.append(job.id)
        for step in range(1, 4):
            if job.id == "a":
                started.set()
                release.wait(5)
            progress(step, 3)

    queue = JobQueue(lambda job: None, run_item, tmp_path)
    jobs = {k: Job(k, tmp_path / k, Settings("m"), [Item("x.png", tmp_path / "x.png")]) for k in "abcd"}
    queue.submit(jobs["a"])
    assert started.wait(5)
    for k in "bcd":
        queue.submit(jobs[k])
    assert [queue.position(jobs[k]) for k in "abcd"] == [0, 2, 3, 4]
    queue.cancel(jobs["c"])  # waiting: taken out of the queue
    assert jobs["c"].state == "cancelled" and queue.position(jobs["d"]) == 3
    queue.cancel(jobs["a"])  # running: stops at its next progress call
    release.set()
    deadline = time.time() + 5
    while jobs["d"].state != "done" and time.time() < deadline:
        time.sleep(0.01)
    assert [jobs[k].state for k in "abcd"] == ["cancelled", "done", "cancelled", "done"]
    assert order == ["a", "b", "d"]
    assert jobs["a"].steps_done == 1  # cancelled after its first forward pass
    queue.stop()


def test_exposed_host_warning() -> None:
    assert not ServeConfig().exposed and ServeConfig(host="0.0.0.0").exposed
    text = exposure_warning("0.0.0.0", 7860)
    assert "WARNING" in text and "0.0.0.0:7860" in text and "no login" in text


def test_page_is_served_self_contained(client: TestClient) -> None:
    html = client.get("/").text
    assert "class CompareView" in html and 'id="run"' in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html


def test_uploaded_names_cannot_escape_the_job_folder(client: TestClient, model_dir: Path, png: bytes,
                                                     tmp_path: Path) -> None:
    r = submit(client, [("../../evil.png", png), ("evil.png", png)], model=str(model_dir / "a.pth"))
    st = wait(client, r.json()["job"])
    assert [x["name"] for x in st["results"]] == ["evil.png", "evil_2.png"]
    assert not (tmp_path / "evil.png").exists()
    assert sorted(p.name for p in (tmp_path / "work").glob("*/in/*")) == ["evil.png", "evil_2.png"]
    assert imread(next((tmp_path / "work").glob("*/out/evil_2_x4.png"))).shape == (192, 224, 3)


def test_video_job_runs_the_video_pipeline_with_progress_in_frames(client: TestClient, model_dir: Path,
                                                                   tmp_path: Path) -> None:
    pytest.importorskip("av", reason="videos need PyAV (pip install 'esrgan[video]')")
    import av
    from synthetic_video import make_test_clip

    from esrgan.commands import video as video_cmd

    clip = make_test_clip(tmp_path / "clip.mp4", frames=6, width=32, height=24)
    model = str(model_dir / "a.pth")
    r = submit(client, [("clip.mp4", clip.read_bytes()), ("fake.mp4", b"not a video at all")], model=model)
    assert r.status_code == 200, r.text
    assert r.json()["rejected"][0]["error"].startswith("fake.mp4: cannot open as a video")
    st = wait(client, r.json()["job"])
    assert st["state"] == "done", st
    assert st["steps_done"] == st["steps_total"] == 6  # frames
    (res,) = st["results"]
    assert res["kind"] == "video" and res["output_name"] == "clip_x4.mp4" and res["size"] == [128, 96]
    served = tmp_path / "served.mp4"
    served.write_bytes(client.get(res["output"]).content)
    # the frames `esrgan video` writes for the same clip and model
    assert video_cmd.main([str(clip), "-o", str(tmp_path / "cli"), "--model", model, "--batch", "1"]) == 0

    def frames(path: Path) -> list[np.ndarray]:
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    ours, theirs = frames(served), frames(tmp_path / "cli" / "clip_x4.mp4")
    assert len(ours) == len(theirs) == 6 and ours[0].shape == (96, 128, 3)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_oversized_request_refused_before_reading(client: TestClient, model_dir: Path) -> None:
    # 64 files x 1 MB + 1 MB is the most one request may carry here
    r = client.post("/api/jobs", content=b"x" * 10, headers={"content-length": str(70 * 2**20),
                                                              "content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and "--max-upload-mb" in r.json()["error"]


def test_missing_web_stack_is_one_line_with_the_install_command(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from esrgan.commands import serve as serve_cmd

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import fails as when not installed
    assert serve_cmd.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "esrgan serve: " + serve_cmd.INSTALL_HINT and "pip install 'esrgan[serve]'" in err


def test_other_sites_cannot_drive_the_server_through_a_browser(client: TestClient, model_dir: Path,
                                                               png: bytes) -> None:
    model = str(model_dir / "a.pth")
    # a cross-site form post (another origin) and DNS rebinding (a foreign Host name on localhost)
    r = client.post("/api/jobs", files=[("files", ("a.png", png))], data={"model": model},
                    headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and "evil.example" in r.json()["error"]
    r = client.get("/api/info", headers={"host": "evil.example:7860"})
    assert r.status_code == 403 and "not this machine" in r.json()["error"]
    r = client.post("/api/jobs", files=[("files", ("a.png", png))], data={"model": model},
                    headers={"origin": "http://127.0.0.1:7860"})
    assert r.status_code == 200  # the page itself
    assert wait(client, r.json()["job"])["state"] == "done"
    for host in ("localhost:7860", "[::1]:7860"):
        assert client.get("/api/info", headers={"host": host}).status_code == 200


def test_image_over_the_pixel_limit_is_refused_from_its_header(client: TestClient, model_dir: Path, png: bytes,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A small upload can declare a huge image: refused from the PNG header, never decoded."""
    import struct

    import esrgan.serve.app as serve_app

    bomb = bytearray(png)
    bomb[16:24] = struct.pack(">II", 20000, 20000)  # IHDR width and height

    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded an image over the limit")

    monkeypatch.setattr(serve_app, "imdecode", no_decode)
    r = submit(client, [("bomb.png", bytes(bomb))], model=str(model_dir / "a.pth"))
    assert r.status_code == 400
    assert r.json()["error"].startswith("bomb.png: 20000x20000 = 400.0 MP is over the limit")


def test_missing_model_dir_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from esrgan.commands import serve as serve_cmd

    with pytest.raises(SystemExit) as exc:
        serve_cmd.main(["--model-dir", str(tmp_path / "nope")])
    assert exc.value.code == 2 and f"--model-dir {tmp_path / 'nope'}: no such folder" in capsys.readouterr().err
