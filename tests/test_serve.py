"""esrgan serve through its HTTP API (Starlette's TestClient): allowed models, uploads, jobs, queue, cancel,
compare and blend, folder batches, downloads.

The page itself, in a real browser, is tested in test_browser.py; hostile inputs in tests/hostile/.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("starlette", reason="esrgan serve's web stack is not installed: pip install 'esrgan[serve]'")
pytest.importorskip("httpx2", reason="Starlette's TestClient needs httpx2 (dev extra)")
pytest.importorskip("multipart", reason="python-multipart is not installed: pip install 'esrgan[serve]'")

from starlette.testclient import TestClient
from tiny_nets import tiny_rrdbnet

from esrgan.archs import MSRResNet
from esrgan.checkpoint import save_network
from esrgan.commands import upscale as upscale_cmd
from esrgan.commands.serve import exposure_warning
from esrgan.data.image import imdecode, imencode, imread, imwrite
from esrgan.evaluation.interpolation import load_pair
from esrgan.inference import Upscaler
from esrgan.inference.color_fix import COLOR_FIXES, DEFAULT_COLOR_FIX
from esrgan.inference.tiling import tile_grid
from esrgan.inference.upscaler import TILE_PADS
from esrgan.serve import ServeConfig, create_app
from esrgan.serve.catalog import ModelCatalog, UpscalerCache
from esrgan.serve.jobs import Item, Job, JobQueue, Settings, Variant
from esrgan.serve.uploads import over_limit, safe_name


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    save_network(folder / "a.pth", {"params": tiny_rrdbnet(1, 0.35).state_dict()})
    save_network(folder / "b.pth", {"params": tiny_rrdbnet(2, 0.6).state_dict()})
    (folder / "broken.pth").write_bytes(b"not a checkpoint")
    return folder


def make_client(tmp_path: Path, model_dir: Path, **changes) -> TestClient:
    settings = dict(model_dirs=[str(model_dir)], experiments_root=str(tmp_path / "experiments"),
                    zoo_cache=str(tmp_path / "zoo"), device="cpu", work_dir=str(tmp_path / "work"),
                    max_upload_mb=1.0, max_pixels=200 * 200, tile=32)
    settings.update(changes)
    return TestClient(create_app(ServeConfig(**settings)), base_url="http://127.0.0.1:7860")


@pytest.fixture
def client(tmp_path: Path, model_dir: Path):
    with make_client(tmp_path, model_dir) as c:
        yield c


@pytest.fixture
def png(natural_image: np.ndarray) -> bytes:
    return imencode(natural_image[200:248, 180:236], ".png")


def wait(client: TestClient, job: str, timeout: float = 60, until: tuple[str, ...] = ("done", "error", "cancelled")):
    end = time.time() + timeout
    while time.time() < end:
        st = client.get(f"/api/jobs/{job}").json()
        if st["state"] in until:
            return st
        time.sleep(0.02)
    raise AssertionError(f"job {job} did not reach {until}: {st}")


def submit(client: TestClient, files: list[tuple[str, bytes]], **fields: str):
    return client.post("/api/jobs", files=[("files", (n, d, "application/octet-stream")) for n, d in files],
                       data=fields)


def out(st: dict, index: int = 0, key: str = "a") -> dict:
    """One output of one file in a job's status."""
    return next(o for o in st["results"][index]["outputs"] if o["key"] == key)


def test_upscale_job_equals_esrgan_upscale(client: TestClient, model_dir: Path, png: bytes, tmp_path: Path) -> None:
    model = str(model_dir / "a.pth")
    r = submit(client, [("crop.png", png)], model=model, tile="32", precision="fp32")
    assert r.status_code == 200, r.text
    st = wait(client, r.json()["job"])
    assert st["state"] == "done" and st["fraction"] == 1.0 and st["message"] == "1 of 1 file(s) done"
    # one forward pass per tile: 48x56 in 32-px tiles with fp32's context
    passes = len(tile_grid(48, 56, 32, TILE_PADS[torch.float32]))
    assert st["steps_done"] == st["steps_total"] == passes
    (res,) = st["results"]
    assert res["state"] == "done" and res["input_size"] == [56, 48]
    o = out(st)
    # the output's name carries the model (two models never both give crop_x4.png); what auto chose is stated
    assert o["name"] == "crop_a_x4.png" and o["size"] == [224, 192] and o["label"] == "a.pth"
    assert o["plan"] == "fp32 on cpu \u00b7 " + ("whole image" if passes == 1 else f"{passes} tiles of 32 px")
    served = client.get(o["url"] + "?download=1")
    assert served.status_code == 200
    assert 'attachment; filename="crop_a_x4.png"' in served.headers["content-disposition"]
    # the same file as the command line's, byte for byte
    imwrite(tmp_path / "in" / "crop.png", imdecode(png))
    assert upscale_cmd.main([str(tmp_path / "in" / "crop.png"), "-o", str(tmp_path / "cli"), "--model", model,
                             "--tile", "32", "--precision", "fp32", "--suffix", "_a_x4"]) == 0
    assert served.content == (tmp_path / "cli" / "crop_a_x4.png").read_bytes()
    assert imdecode(client.get(res["bicubic"]).content).shape == (192, 224, 3)
    np.testing.assert_array_equal(imdecode(client.get(res["input"]).content), imdecode(png))  # the input, as is
    # one by one or all in a zip named after the input: the same bytes
    zipped = client.get(st["zip"])
    assert 'filename="crop_upscaled.zip"' in zipped.headers["content-disposition"]
    z = zipfile.ZipFile(io.BytesIO(zipped.content))
    assert z.namelist() == ["crop_a_x4.png"] and z.read("crop_a_x4.png") == served.content
    # whole image with tile 0 and fp32: said so
    st = wait(client, submit(client, [("crop.png", png)], model=model, tile="0", precision="fp32").json()["job"])
    assert out(st)["plan"] == "fp32 on cpu \u00b7 whole image"


def test_output_format_quality_and_scale_are_chosen_up_front(client: TestClient, model_dir: Path, png: bytes,
                                                            tmp_path: Path) -> None:
    model = str(model_dir / "a.pth")
    st = wait(client, submit(client, [("crop.png", png)], model=model, format="jpg", quality="80",
                             outscale="2").json()["job"])
    o = out(st)
    assert o["name"] == "crop_a_x2.jpg" and o["size"] == [112, 96]
    imwrite(tmp_path / "in" / "crop.png", imdecode(png))
    assert upscale_cmd.main([str(tmp_path / "in" / "crop.png"), "-o", str(tmp_path / "cli"), "--model", model,
                             "--tile", "32", "--outscale", "2", "--ext", "jpg", "--quality", "80",
                             "--suffix", "_a_x2"]) == 0
    assert client.get(o["url"]).content == (tmp_path / "cli" / "crop_a_x2.jpg").read_bytes()
    for field, value, words in (("format", "gif", "format must be one of"), ("quality", "0", "quality must be in"),
                                ("quality", "high", "quality must be a whole number")):
        r = submit(client, [("crop.png", png)], model=model, **{field: value})
        assert r.status_code == 400 and words in r.json()["error"]


def test_color_fix_as_the_command_line_offered_sent_checked_and_stated(client: TestClient, model_dir: Path,
                                                                        png: bytes, tmp_path: Path) -> None:
    info = client.get("/api/info").json()
    assert info["color_fixes"] == list(COLOR_FIXES) and info["defaults"]["color_fix"] == DEFAULT_COLOR_FIX
    model = str(model_dir / "a.pth")
    imwrite(tmp_path / "in" / "crop.png", imdecode(png))
    made = {}
    for fix in (None, *COLOR_FIXES):  # None: not sent, the command's default
        fields = {"color_fix": fix} if fix else {}
        st = wait(client, submit(client, [("crop.png", png)], model=model, tile="0", **fields).json()["job"])
        o = out(st)
        # stated with the result and in the job's settings (a reloaded page shows it)
        assert o["color_fix"] == st["request"]["color_fix"] == (fix or DEFAULT_COLOR_FIX)
        made[fix] = client.get(o["url"]).content
        cli = tmp_path / f"cli_{fix}"
        assert upscale_cmd.main([str(tmp_path / "in" / "crop.png"), "-o", str(cli), "--model", model,
                                 "--suffix", "_a_x4", *(["--color-fix", fix] if fix else [])]) == 0
        assert made[fix] == (cli / "crop_a_x4.png").read_bytes(), fix  # the command line's bytes
    assert made[None] == made[DEFAULT_COLOR_FIX] and len({made[f] for f in COLOR_FIXES}) == 3
    for bad in ("sepia", "Wavelet", "none " * 50):
        r = submit(client, [("crop.png", png)], model=model, color_fix=bad)
        assert r.status_code == 400, r.text
        line = r.json()["error"]
        assert line.startswith("color_fix must be one of none, wavelet, histogram") and "\n" not in line
        assert len(line) < 200 and repr(bad[:40]) in line


def test_another_color_fix_shares_the_loaded_network(model_dir: Path, tmp_path: Path) -> None:
    catalog = ModelCatalog(model_dirs=[model_dir], zoo_cache=tmp_path / "zoo", experiments_root=tmp_path / "none")
    cache = UpscalerCache(catalog, "cpu")
    spec = catalog.resolve(str(model_dir / "a.pth"))
    ups = {fix: cache.upscaler(spec, tile=0, precision="fp32", color_fix=fix) for fix in COLOR_FIXES}
    assert {fix: up.color_fix for fix, up in ups.items()} == {f: f for f in COLOR_FIXES}
    assert len({id(up.model) for up in ups.values()}) == 1  # loaded once: a fix is a setting, not a network
    assert cache.upscaler(spec, tile=0, precision="fp32").color_fix == DEFAULT_COLOR_FIX
    with pytest.raises(ValueError, match="color fix must be one of"):
        cache.upscaler(spec, tile=0, precision="fp32", color_fix="sepia")


def test_compare_two_models_on_the_same_images(client: TestClient, model_dir: Path, png: bytes) -> None:
    a, b = str(model_dir / "a.pth"), str(model_dir / "b.pth")
    st = wait(client, submit(client, [("crop.png", png), ("two.png", png)], model=a, model_b=b,
                             mode="compare", tile="0").json()["job"])
    assert st["state"] == "done" and [v["key"] for v in st["variants"]] == ["a", "b"]
    assert st["settings"] == "a.pth vs b.pth"
    names = [[o["name"] for o in r["outputs"]] for r in st["results"]]
    assert names == [["crop_a_x4.png", "crop_b_x4.png"], ["two_a_x4.png", "two_b_x4.png"]]
    img = imdecode(png)
    for key, model in (("a", a), ("b", b)):
        want = Upscaler(model, device="cpu", batch_tiles=1, color_fix=DEFAULT_COLOR_FIX).upscale(img)
        np.testing.assert_array_equal(imdecode(client.get(out(st, 0, key)["url"]).content), want)
    z = zipfile.ZipFile(io.BytesIO(client.get(st["zip"]).content))
    assert sorted(z.namelist()) == sorted(n for row in names for n in row)
    assert 'filename="crop_and_1_more_upscaled.zip"' in client.get(st["zip"]).headers["content-disposition"]
    r = submit(client, [("crop.png", png)], model=a, model_b=a, mode="compare")
    assert r.status_code == 400 and "two different models" in r.json()["error"]


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
        r = client.get("/api/model", params={"id": spec})
        assert r.status_code == 403, spec
    r = submit(client, [("crop.png", png)], model=str(outside))
    assert "outside the allowed model folders" in r.json()["error"] and "--model-dir" in r.json()["error"]
    # the catalog lists only what may be loaded: the model folder's checkpoints and the zoo
    models = client.get("/api/info").json()["models"]
    ids = {m["id"] for m in models}
    assert str((model_dir / "a.pth").resolve()) in ids and str(outside) not in ids
    assert "RealESRGAN_x4plus" in ids
    assert not list((tmp_path / "work").glob("*"))  # refused: no folder stays behind


def test_bad_uploads_are_named_and_the_rest_still_run(client: TestClient, model_dir: Path, png: bytes,
                                                     natural_image: np.ndarray, tmp_path: Path) -> None:
    model = str(model_dir / "a.pth")
    big = imencode(natural_image[:256, :256], ".png")  # 65536 px > the 40000 px limit
    huge = b"\x89PNG" + bytes(1024 * 1024 + 10)  # over 1 MB
    r = submit(client, [("notes.png", b"hello, not an image"), ("big.png", big), ("huge.png", huge),
                        ("good.png", png)], model=model)
    assert r.status_code == 200
    errors = {x["name"]: x["error"] for x in r.json()["rejected"]}
    assert "notes.png" in errors["notes.png"] and "cannot decode" in errors["notes.png"]
    assert errors["big.png"] == "big.png: 256x256 = 0.0655 MP is over the limit of 0.04 MP per image " \
                                "(esrgan serve --max-pixels)"
    # the size said with as many digits as it takes to be true
    assert errors["huge.png"] == ("huge.png: 1.00001 MB is over the upload limit of 1 MB (esrgan serve "
                                  "--max-upload-mb)")
    st = wait(client, r.json()["job"])
    assert st["state"] == "done" and [x["name"] for x in st["results"]] == ["good.png"]
    (job_folder,) = (tmp_path / "work").iterdir()
    assert sorted(p.name for p in (job_folder / "in").iterdir()) == ["good.png"]  # the refused ones are gone
    # nothing usable: an error naming the file, no job, no folder left behind
    r = submit(client, [("notes.png", b"hello")], model=model)
    assert r.status_code == 400 and r.json()["error"].startswith("notes.png:")
    r = submit(client, [], model=model)
    assert r.status_code == 400 and "no files" in r.json()["error"]
    assert [p.name for p in (tmp_path / "work").iterdir()] == [job_folder.name]


def test_size_messages_have_enough_digits_to_be_true() -> None:
    mb = 2**20
    assert over_limit("x.png", 20 * mb + 1, 20 * mb).startswith("x.png: 20.000001 MB is over the upload limit of 20 MB")
    assert over_limit("x.png", 20 * mb + mb // 10, 20 * mb).startswith("x.png: 20.1 MB is over")
    assert over_limit("x.png", 20 * mb + 1024, 20 * mb).startswith("x.png: 20.001 MB is over")


def test_long_and_strange_names_are_kept_short_and_safe(client: TestClient, model_dir: Path, png: bytes,
                                                       tmp_path: Path) -> None:
    model = str(model_dir / "a.pth")
    long304, long250 = "p" * 300 + ".png", "q" * 246 + ".png"
    st = wait(client, submit(client, [(long304, png), (long250, png), ("x#1?.png", png), ("фото ü.png", png)],
                             model=model).json()["job"])
    assert st["state"] == "done", st
    names = [r["name"] for r in st["results"]]
    assert all(len(n.encode()) <= 200 for n in names) and names[2:] == ["x_1_.png", "фото ü.png"]
    for r in st["results"]:
        o = r["outputs"][0]
        assert len(o["name"].encode()) <= 200 and o["name"].endswith("_a_x4.png")
        assert client.get(o["url"] + "?download=1").status_code == 200
    z = client.get(st["zip"])
    assert z.status_code == 200
    assert len(zipfile.ZipFile(io.BytesIO(z.content)).namelist()) == 4
    assert "filename*=utf-8''" in client.get(out(st, 3)["url"] + "?download=1").headers["content-disposition"]
    # names that differ only past the cut stay apart
    taken: set[str] = set()
    assert safe_name("a" * 300 + "1.png", taken) != safe_name("a" * 300 + "2.png", taken)


def test_chunked_uploads_are_counted_as_they_arrive(tmp_path: Path, model_dir: Path, png: bytes) -> None:
    """No Content-Length: the size check is on the bytes received, not on a header."""
    boundary = "chunky"

    def body(parts: list[tuple[str, bytes]], fields: dict[str, str]):
        for k, v in fields.items():
            yield (f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n').encode()
        for name, data in parts:
            yield (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                   "Content-Type: application/octet-stream\r\n\r\n").encode()
            for i in range(0, len(data), 64 * 1024):
                yield data[i:i + 64 * 1024]
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    fields = {"model": str(model_dir / "a.pth")}
    with make_client(tmp_path, model_dir, max_files=3) as client:
        big = bytes(3 * 2**20)
        r = client.post("/api/jobs", content=body([("big.png", big), ("good.png", png)], fields), headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["rejected"] == [{"name": "big.png", "error": "big.png: 3.0 MB is over the upload limit of "
                                         "1 MB (esrgan serve --max-upload-mb)"}]
        assert wait(client, r.json()["job"])["state"] == "done"
        assert max(p.stat().st_size for p in (tmp_path / "work").rglob("*") if p.is_file()) < 2**20
        # a body larger than max-files files can be: refused as it arrives, nothing left
        endless = body([(f"f{k}.png", bytes(2**20)) for k in range(6)], fields)
        r = client.post("/api/jobs", content=endless, headers=headers)
        assert r.status_code == 413 and "refused while it arrived" in r.json()["error"]
        assert len(list((tmp_path / "work").iterdir())) == 1


def test_a_model_that_fails_to_load_is_reported_and_the_server_goes_on(client: TestClient, model_dir: Path,
                                                                      png: bytes) -> None:
    r = submit(client, [("crop.png", png)], model=str(model_dir / "broken.pth"))
    st = wait(client, r.json()["job"])
    assert st["state"] == "error" and st["message"].startswith("broken.pth could not be loaded: ")
    assert "\n" not in st["message"] and str(model_dir) not in st["message"]  # one line, names not paths
    assert st["message"].endswith("Choose another model.") and str(model_dir) in st["detail"]
    st = wait(client, submit(client, [("crop.png", png)], model=str(model_dir / "a.pth")).json()["job"])
    assert st["state"] == "done"


def test_live_interpolation_reuses_the_upload_and_its_end_points(client: TestClient, model_dir: Path,
                                                                  png: bytes) -> None:
    a, b = str(model_dir / "a.pth"), str(model_dir / "b.pth")
    first = wait(client, submit(client, [("crop.png", png)], model=a, model_b=b, alpha="0.3", tile="0",
                                mode="blend", endpoints="1").json()["job"])
    assert first["state"] == "done" and [v["key"] for v in first["variants"]] == ["blend", "a", "b"]
    assert out(first, key="blend")["name"] == "crop_a-b-a0.30_x4.png"
    again = client.post("/api/jobs", data={"from_job": first["id"], "model": a, "model_b": b, "alpha": "1",
                                           "tile": "0", "mode": "blend", "endpoints": "1"})
    second = wait(client, again.json()["job"])
    img = imdecode(png)
    pair = load_pair(a, b)
    for st, alpha in ((first, 0.3), (second, 1.0)):
        got = imdecode(client.get(out(st, key="blend")["url"]).content)
        want = Upscaler(pair.build(alpha), device="cpu", tile=0, precision="auto", batch_tiles=1,
                        color_fix=DEFAULT_COLOR_FIX).upscale(img)
        np.testing.assert_array_equal(got, want)
    alone_b = Upscaler(b, device="cpu", tile=0, batch_tiles=1, color_fix=DEFAULT_COLOR_FIX).upscale(img)
    np.testing.assert_array_equal(imdecode(client.get(out(second, key="blend")["url"]).content), alone_b)
    # the end points are the models alone; a rerun at another alpha reuses them instead of running them again
    np.testing.assert_array_equal(imdecode(client.get(out(first, key="b")["url"]).content), alone_b)
    assert out(second, key="a")["seconds"] == 0.0 and out(second, key="b")["seconds"] == 0.0
    assert client.get(out(second, key="a")["url"]).content == client.get(out(first, key="a")["url"]).content
    # another colour fix is another picture: the end points are made again with it, not reused
    third = wait(client, client.post("/api/jobs", data={"from_job": first["id"], "model": a, "model_b": b,
                                                        "alpha": "0.3", "tile": "0", "mode": "blend", "endpoints": "1",
                                                        "color_fix": "none"}).json()["job"])
    assert {o["key"]: o["color_fix"] for o in third["results"][0]["outputs"]} == {"blend": "none", "a": "none",
                                                                                  "b": "none"}
    assert client.get(out(third, key="a")["url"]).content != client.get(out(first, key="a")["url"]).content
    r = client.post("/api/jobs", data={"model": a, "model_b": b, "alpha": "1.5", "from_job": first["id"]})
    assert r.status_code == 400 and "alpha must be in [0, 1]" in r.json()["error"]


def test_blending_two_different_networks_is_one_human_line(client: TestClient, model_dir: Path, png: bytes,
                                                          model_file: Path) -> None:
    msr = model_dir / "msr.safetensors"
    shutil.copyfile(model_file, msr)  # an MSRResNet: not the RRDBNet of a.pth
    a = str(model_dir / "a.pth")
    # the page is told what can be blended with a.pth: b.pth (same network), not msr nor the broken file
    info = client.get("/api/model", params={"id": a}).json()
    assert info["network"].startswith("RRDBNet x4") and info["loads"]
    # (zoo models of the same architecture and scale are "unknown" until downloaded)
    assert {k for k, v in info["compatible"].items() if v == "yes"} == {str((model_dir / "b.pth").resolve())}
    assert not any(k.endswith(("msr.safetensors", "broken.pth")) for k in info["compatible"])
    st = wait(client, submit(client, [("crop.png", png)], model=a, model_b=str(msr), alpha="0.5",
                             mode="blend").json()["job"])
    assert st["state"] == "error"
    line = st["message"]
    assert line.startswith("a.pth and msr.safetensors cannot be blended: they are different networks (RRDBNet x4")
    assert "MSRResNet x4" in line and line.endswith("Choose a second model of the same network.")
    assert "\n" not in line and "(PSNR)" not in line and "(GAN)" not in line and "conv" not in line
    assert [r["state"] for r in st["results"]] == ["not_run"]  # not an error of the file


def test_an_offline_zoo_model_is_marked_and_its_error_is_one_line(client: TestClient, png: bytes,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    zoo = {m["id"]: m for m in client.get("/api/info").json()["models"] if m["kind"] == "zoo"}
    assert zoo["RealESRGAN_x4plus"]["available"] is False and "offline" in zoo["RealESRGAN_x4plus"]["why"]
    assert zoo["RealESRGAN_x4plus"]["description"].startswith("Real-ESRGAN x4 for real-world photos")
    st = wait(client, submit(client, [("crop.png", png)], model="RealESRGAN_x4plus").json()["job"])
    assert st["state"] == "error"
    assert st["message"] == ("RealESRGAN_x4plus is not downloaded yet and cannot be now: this server is offline "
                             "(ESRGAN_OFFLINE is set). On a connected machine run `esrgan zoo download "
                             "RealESRGAN_x4plus`, or choose a checkpoint.")


def _slow_model(folder: Path) -> Path:
    """A wide MSRResNet: one whole-image pass over a 256x256 picture takes seconds on a CPU."""
    path = folder / "slow.safetensors"
    save_network(path, {"params": MSRResNet(3, 3, num_feat=64, num_block=8, upscale=4).state_dict()})
    return path


def test_cancel_lands_inside_the_network_and_keeps_what_finished(tmp_path: Path, model_dir: Path, png: bytes,
                                                                natural_image: np.ndarray) -> None:
    slow = _slow_model(model_dir)
    photo = imencode(natural_image[:256, :256], ".png")
    with make_client(tmp_path, model_dir, max_pixels=512 * 512, tile=0) as client:
        r = submit(client, [("small.png", png), ("large.png", photo), ("later.png", png)], model=str(slow),
                   precision="fp32")
        job = r.json()["job"]
        deadline = time.time() + 60
        while True:  # the first file done, the second inside its (single, whole-image) forward pass
            st = client.get(f"/api/jobs/{job}").json()
            if st["results"][0]["state"] == "done" and st["results"][1]["state"] == "running":
                break
            assert time.time() < deadline, st
            time.sleep(0.01)
        time.sleep(0.3)
        asked = time.time()
        st = client.post(f"/api/jobs/{job}/cancel").json()
        assert st["cancelling"] is True and st["eta"] is None  # said at once; no time left shown meanwhile
        st = wait(client, job, timeout=30)
        latency = time.time() - asked
        print(f"cancel landed after {latency:.3f} s")
        assert latency < 1.0  # within one layer, not at the end of the pass
        assert st["steps_done"] == 0  # the pass was stopped inside the network
        assert st["state"] == "cancelled" and st["message"] == "Cancelled: 1 of 3 file(s) done, the rest not run."
        assert [r["state"] for r in st["results"]] == ["done", "cancelled", "cancelled"]
        assert client.get(out(st)["url"]).status_code == 200  # what finished is kept
        assert [r["error"] for r in st["results"]] == [None, None, None]  # cancelled is not an error
        # the server goes on
        assert wait(client, submit(client, [("crop.png", png)], model=str(model_dir / "a.pth")).json()["job"])[
            "state"] == "done"


def test_each_file_shows_its_result_as_it_finishes_and_a_reload_finds_the_job(client: TestClient, model_dir: Path,
                                                                               png: bytes) -> None:
    state = client.app.state.serve
    gate = threading.Event()
    real = state.queue.run_item

    def held(job, item, variant, model, progress) -> None:
        if item.name == "two.png":
            gate.wait(20)  # the second file waits until the test has looked
        real(job, item, variant, model, progress)

    state.queue.run_item = held
    r = submit(client, [("one.png", png), ("two.png", png)], model=str(model_dir / "a.pth"))
    job = r.json()["job"]
    deadline = time.time() + 30
    while (st := client.get(f"/api/jobs/{job}").json())["results"][0]["state"] != "done":
        assert time.time() < deadline
        time.sleep(0.01)
    assert st["state"] == "running" and st["results"][1]["state"] == "running"
    assert out(st)["name"] == "one_a_x4.png" and client.get(out(st)["url"]).status_code == 200
    assert st["zip"] is not None  # what is done can be downloaded already
    # a page reloaded meanwhile finds the job in the server's list (and can cancel it)
    listed = client.get("/api/jobs").json()["jobs"]
    assert listed[0]["id"] == job and listed[0]["state"] == "running" and listed[0]["names"] == ["one.png", "two.png"]
    gate.set()
    assert wait(client, job)["state"] == "done"


def test_queue_runs_one_job_at_a_time_shows_positions_and_cancels(tmp_path: Path) -> None:
    started = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def run_item(job: Job, item: Item, variant: Variant, model: object, progress) -> None:
        order.append(job.id)
        for step in range(1, 4):
            if job.id == "a":
                started.set()
                release.wait(5)
            progress(step, 3)

    queue = JobQueue(lambda job, variant: None, run_item, tmp_path)
    jobs = {k: Job(k, tmp_path / k, Settings("m"), [Item("x.png", tmp_path / "x.png")],
                   variants=[Variant("a", "m", "m")]) for k in "abcd"}
    queue.submit(jobs["a"])
    assert started.wait(5)
    for k in "bcd":
        queue.submit(jobs[k])
    assert [queue.position(jobs[k]) for k in "abcd"] == [0, 2, 3, 4]
    queue.cancel(jobs["c"])  # waiting: taken out of the queue
    assert jobs["c"].state == "cancelled" and queue.position(jobs["d"]) == 3
    assert jobs["c"].items[0].state == "cancelled"
    queue.cancel(jobs["a"])  # running: stops at its next progress call (or layer)
    assert queue.cancelling()
    release.set()
    deadline = time.time() + 5
    while jobs["d"].state != "done" and time.time() < deadline:
        time.sleep(0.01)
    assert [jobs[k].state for k in "abcd"] == ["cancelled", "done", "cancelled", "done"]
    assert order == ["a", "b", "d"]
    assert jobs["a"].steps_done == 1  # cancelled after its first forward pass
    queue.stop()


def test_folder_in_folder_out_never_replaces_a_file(tmp_path: Path, model_dir: Path, png: bytes) -> None:
    root = tmp_path / "mine"
    for name in ("one.png", "two.png", "three.png"):
        imwrite(root / "photos" / name, imdecode(png))
    (root / "photos" / "notes.txt").write_text("not an image: not listed")
    existing = root / "big" / "two_a_x4.png"
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"the user's own file")
    model = str(model_dir / "a.pth")
    with make_client(tmp_path, model_dir, batch_dirs=[str(root)]) as client:
        info = client.get("/api/info").json()["batch"]
        assert info == {"enabled": True, "why": None, "folders": [str(root.resolve())]}
        r = client.post("/api/batch", data={"input": str(root / "photos"), "output": str(root / "big"),
                                            "model": model})
        assert r.status_code == 200, r.text
        st = wait(client, r.json()["job"])
        assert st["batch"] == {"output": str((root / "big").resolve())}
        by_name = {x["name"]: x for x in st["results"]}
        assert sorted(by_name) == ["one.png", "three.png", "two.png"]
        assert by_name["two.png"]["state"] == "skipped" and "exists from before" in by_name["two.png"]["note"]
        assert existing.read_bytes() == b"the user's own file"
        assert st["message"] == "2 of 3 file(s) done, 1 skipped"
        assert upscale_cmd.main([str(root / "photos" / "one.png"), "-o", str(tmp_path / "cli"), "--model", model,
                                 "--tile", "32", "--suffix", "_a_x4"]) == 0
        assert (root / "big" / "one_a_x4.png").read_bytes() == (tmp_path / "cli" / "one_a_x4.png").read_bytes()
        # refused: outside the folders, relative, not a folder, or a new folder with a bad name
        for fields, words in (
            ({"input": str(tmp_path), "output": str(root / "o")}, "outside the allowed batch folders"),
            ({"input": str(root / "photos" / ".." / ".."), "output": str(root / "o")}, "outside the allowed"),
            ({"input": "photos", "output": str(root / "o")}, "full path"),
            ({"input": str(root / "nope"), "output": str(root / "o")}, "no such folder"),
            ({"input": str(root / "photos"), "output": str(root / "photos" / "one.png")}, "not a folder"),
            ({"input": str(root / "photos"), "output": str(root / ("n" * 300))}, "bytes long"),
            ({"input": str(root / "photos")}, "output folder: give the folder's full path"),
        ):
            r = client.post("/api/batch", data={**fields, "model": model})
            assert r.status_code in (400, 403) and words in r.json()["error"], (fields, r.text)
        assert not (root / "o").exists()
    # no --batch-dir, or a server reachable from elsewhere: batches are off, and said why
    with make_client(tmp_path, model_dir) as client:
        r = client.post("/api/batch", data={"input": str(root / "photos"), "output": str(root / "x"), "model": model})
        assert r.status_code == 403 and "--batch-dir" in r.json()["error"]
    with make_client(tmp_path, model_dir, batch_dirs=[str(root)], host="0.0.0.0") as client:
        assert client.get("/api/info").json()["batch"]["enabled"] is False
        r = client.post("/api/batch", data={"input": str(root / "photos"), "output": str(root / "x"), "model": model})
        assert r.status_code == 403 and "only for a server bound to this machine" in r.json()["error"]


def test_batch_dir_is_refused_with_an_exposed_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from esrgan.commands import serve as serve_cmd

    with pytest.raises(SystemExit) as exc:
        serve_cmd.main(["--batch-dir", str(tmp_path), "--host", "0.0.0.0"])
    assert exc.value.code == 2 and "--batch-dir" in capsys.readouterr().err


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
    assert imread(next((tmp_path / "work").glob("*/out/evil_2_a_x4.png"))).shape == (192, 224, 3)


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
    assert res["kind"] == "video" and out(st)["name"] == "clip_a_x4.mp4" and out(st)["size"] == [128, 96]
    served = tmp_path / "served.mp4"
    served.write_bytes(client.get(out(st)["url"]).content)
    # the frames `esrgan video` writes for the same clip and model
    assert video_cmd.main([str(clip), "-o", str(tmp_path / "cli"), "--model", model, "--batch", "1"]) == 0

    def frames(path: Path) -> list[np.ndarray]:
        with av.open(str(path)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    ours, theirs = frames(served), frames(tmp_path / "cli" / "clip_x4.mp4")
    assert len(ours) == len(theirs) == 6 and ours[0].shape == (96, 128, 3)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_oversized_request_refused_before_reading(client: TestClient, model_dir: Path, tmp_path: Path) -> None:
    # 64 files x 1 MB + 1 MB is the most one request may carry here
    r = client.post("/api/jobs", content=b"x" * 10, headers={"content-length": str(70 * 2**20),
                                                              "content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and "--max-upload-mb" in r.json()["error"]
    assert not list((tmp_path / "work").iterdir())


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
    """A small upload can declare a huge image: refused from its header by esrgan.data.image's one probe (the
    decoder is never called), in this server's words."""
    import struct

    import esrgan.data.image as image_io

    bomb = bytearray(png)
    bomb[16:24] = struct.pack(">II", 20000, 20000)  # IHDR width and height

    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded an image over the limit")

    monkeypatch.setattr(image_io.cv2, "imdecode", no_decode)
    r = submit(client, [("bomb.png", bytes(bomb))], model=str(model_dir / "a.pth"))
    assert r.status_code == 400
    assert r.json()["error"] == ("bomb.png: 20000x20000 = 400 MP is over the limit of 0.04 MP per image "
                                 "(esrgan serve --max-pixels)")


def test_missing_model_dir_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from esrgan.commands import serve as serve_cmd

    with pytest.raises(SystemExit) as exc:
        serve_cmd.main(["--model-dir", str(tmp_path / "nope")])
    assert exc.value.code == 2 and f"--model-dir {tmp_path / 'nope'}: no such folder" in capsys.readouterr().err
