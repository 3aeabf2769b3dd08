"""esrgan serve as a hostile visitor uses it: upload names, job ids from a reloaded page, folder-batch paths, zip
names, chunked and oversized uploads, malformed bodies, images that declare more pixels than they hold.

Each scenario talks to the app in process (Starlette's TestClient) with its work folder, model folder and batch
folder inside the arena: nothing may be written outside them (the arena's victim folder stays byte-identical),
no request may answer HTTP 500, and a refusal is one line (JSON ``error``) naming what was refused. The 81 MP
HDR runs in a child process under the arena's memory limit, measuring what the upload cost.
"""

from __future__ import annotations

import io
import json
import struct
import textwrap
import time
import zipfile

import numpy as np
import pytest
from harness import Arena

pytest.importorskip("starlette", reason="esrgan serve's web stack is not installed: pip install 'esrgan[serve]'")
pytest.importorskip("httpx2", reason="Starlette's TestClient needs httpx2 (dev extra)")

from starlette.testclient import TestClient

from esrgan.archs import MSRResNet
from esrgan.checkpoint import save_network
from esrgan.data.image import ImageReadError, imdecode, imencode
from esrgan.serve import ServeConfig, create_app

pytestmark = pytest.mark.slow


def _png(size: int = 24) -> bytes:
    rng = np.random.default_rng(0)
    return imencode(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), ".png")


def _client(arena: Arena, **changes) -> TestClient:
    models = arena.work / "models"
    for name in ("m.safetensors", "m2.safetensors"):  # two of one network: they blend
        if not (models / name).is_file():
            save_network(models / name, {"params": MSRResNet(3, 3, num_feat=4, num_block=1, upscale=4).state_dict()})
    (arena.work / "mine" / "in").mkdir(parents=True, exist_ok=True)
    settings = dict(model_dirs=[str(models)], experiments_root=str(arena.work / "experiments"),
                    zoo_cache=str(arena.work / "zoo"), device="cpu", work_dir=str(arena.work / "serve"),
                    batch_dirs=[str(arena.work / "mine")], max_upload_mb=1.0, max_files=4)
    settings.update(changes)
    return TestClient(create_app(ServeConfig(**settings)), base_url="http://127.0.0.1:7860",
                      raise_server_exceptions=False)


def _model(arena: Arena) -> str:
    return str((arena.work / "models" / "m.safetensors").resolve())


def _wait(client: TestClient, job: str) -> dict:
    end = time.time() + 60
    while time.time() < end:
        st = client.get(f"/api/jobs/{job}").json()
        if st["state"] in ("done", "error", "cancelled"):
            return st
        time.sleep(0.02)
    raise AssertionError(f"job {job} did not end")


def _refused(r, status: tuple[int, ...] = (400, 403, 404, 413), *mentions: str) -> None:
    assert r.status_code in status, f"HTTP {r.status_code}: {r.text[:400]}"
    message = r.json()["error"]
    assert "\n" not in message and len(message) < 600 and "Traceback" not in message, message
    for m in mentions:
        assert m.lower() in message.lower(), message


def _no_orphans(arena: Arena, keep: int = 0) -> None:
    folders = list((arena.work / "serve").iterdir()) if (arena.work / "serve").exists() else []
    assert len(folders) == keep, f"folders left in --work-dir: {folders}"


# ------------------------------------------------------------------------------------------------- upload names

HOSTILE_NAMES = [
    "../../outside/victim.txt", "/etc/passwd", "..\\..\\outside\\x.png", "\x07bell.png", "p" * 300 + ".png",
    "q" * 246 + ".png", ".png", "..", " ", "a/b/c.png", "x#y?z.png", "<img src=x onerror=alert(1)>.png",
    "名前" * 60 + ".png", "con.png", "x.png" + "." * 40, "-rf.png", "a\u202eb.png",
]


@pytest.mark.hostile("correct")
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_upload_names_become_one_short_file_in_the_job(arena: Arena, name: str) -> None:
    with _client(arena) as client:
        r = client.post("/api/jobs", files=[("files", (name, _png(), "image/png"))], data={"model": _model(arena)})
        assert r.status_code == 200, r.text
        st = _wait(client, r.json()["job"])
        assert st["state"] == "done", st
        (job,) = (arena.work / "serve").iterdir()
        stored = [p for p in (job / "in").iterdir()]
        assert len(stored) == 1 and stored[0].parent == job / "in"
        assert len(stored[0].name.encode()) <= 200 and "/" not in st["results"][0]["name"]
        for o in st["results"][0]["outputs"]:
            assert len(o["name"].encode()) <= 200
            assert client.get(o["url"] + "?download=1").status_code == 200
        z = client.get(st["zip"])
        assert z.status_code == 200 and len(zipfile.ZipFile(io.BytesIO(z.content)).namelist()) == 1


@pytest.mark.hostile("correct")
def test_two_long_names_that_meet_when_cut_stay_apart(arena: Arena) -> None:
    names = ["a" * 290 + "1.png", "a" * 290 + "2.png", "A" * 290 + "1.png"]
    with _client(arena) as client:
        r = client.post("/api/jobs", files=[("files", (n, _png(), "image/png")) for n in names],
                        data={"model": _model(arena)})
        st = _wait(client, r.json()["job"])
        outs = [o["name"] for res in st["results"] for o in res["outputs"]]
        assert len({o.lower() for o in outs}) == 3
        assert len(zipfile.ZipFile(io.BytesIO(client.get(st["zip"]).content)).namelist()) == 3


# ------------------------------------------------------------------------------------------------- job ids

@pytest.mark.hostile("refused")
@pytest.mark.parametrize("job_id", ["..%2F..%2Foutside", "%2e%2e", "x" * 5000, "' OR 1=1 --", "\u202e",
                                    "null", "0"])
def test_job_ids_from_a_reloaded_page(arena: Arena, job_id: str) -> None:
    with _client(arena) as client:
        for method, path in (("GET", ""), ("POST", "/cancel"), ("GET", "/files/0/a"), ("GET", "/files/0/input"),
                             ("GET", "/zip")):
            _refused(client.request(method, f"/api/jobs/{job_id}{path}"), (403, 404, 405))
        r = client.post("/api/jobs", data={"from_job": job_id, "model": _model(arena)})
        _refused(r, (400, 404), "upload again")
    _no_orphans(arena)


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("kind", ["../../outside/victim.txt", "output", "A", "%2e%2e", "b"])
def test_file_kinds_and_indexes(arena: Arena, kind: str) -> None:
    with _client(arena) as client:
        st = _wait(client, client.post("/api/jobs", files=[("files", ("a.png", _png(), "image/png"))],
                                       data={"model": _model(arena)}).json()["job"])
        _refused(client.get(f"/api/jobs/{st['id']}/files/0/{kind}"), (404,))
        _refused(client.get(f"/api/jobs/{st['id']}/files/7/a"), (404,))
        assert client.get(f"/api/jobs/{st['id']}/files/-1/a").status_code == 404


# ------------------------------------------------------------------------------------------------- folder batches

@pytest.mark.hostile("refused")
@pytest.mark.parametrize("case", ["relative", "dotdot", "link_out", "file", "nul", "long", "outside_out",
                                  "victim_as_output", "root_slash", "empty"])
def test_batch_paths_stay_in_the_allowed_folders(arena: Arena, case: str) -> None:
    mine = arena.work / "mine"
    (mine / "in").mkdir(parents=True)
    (mine / "in" / "a.png").write_bytes(_png())
    (mine / "out_link").symlink_to(arena.outside, target_is_directory=True)
    given = {
        "relative": ("in", str(mine / "o")), "dotdot": (str(mine / "in" / ".." / ".." / ".."), str(mine / "o")),
        "link_out": (str(mine / "in"), str(mine / "out_link")), "file": (str(mine / "in" / "a.png"), str(mine / "o")),
        "nul": (str(mine / "in") + "\x00", str(mine / "o")), "long": (str(mine / "in"), str(mine / ("x" * 5000))),
        "outside_out": (str(mine / "in"), str(arena.outside / "new")),
        "victim_as_output": (str(mine / "in"), str(arena.outside / "victim.txt")),
        "root_slash": ("/", str(mine / "o")), "empty": ("", ""),
    }[case]
    with _client(arena) as client:
        r = client.post("/api/batch", data={"input": given[0], "output": given[1], "model": _model(arena)})
        _refused(r, (400, 403))
    assert not (mine / "o").exists()
    _no_orphans(arena)


@pytest.mark.hostile("refused")
def test_batch_refused_when_the_server_is_reachable_from_elsewhere(arena: Arena) -> None:
    (arena.work / "mine" / "in").mkdir(parents=True)
    (arena.work / "mine" / "in" / "a.png").write_bytes(_png())
    with _client(arena, host="0.0.0.0") as client:
        r = client.post("/api/batch", data={"input": str(arena.work / "mine" / "in"),
                                            "output": str(arena.work / "mine" / "o"), "model": _model(arena)})
        _refused(r, (403,), "only for a server bound to this machine")
    result = arena.run("serve", "--batch-dir", str(arena.work / "mine"), "--host", "0.0.0.0")
    result.assert_refused("--batch-dir", "--host 127.0.0.1")


@pytest.mark.hostile("correct")
def test_batch_never_replaces_a_file_and_leaves_links_out(arena: Arena) -> None:
    mine = arena.work / "mine"
    (mine / "in").mkdir(parents=True)
    (mine / "in" / "a.png").write_bytes(_png())
    (mine / "in" / "b.png").write_bytes(_png())
    (mine / "in" / "victim.png").symlink_to(arena.outside / "victim.png")  # a link leading out: not read
    (mine / "o").mkdir()
    (mine / "o" / "a_m_x4.png").write_bytes(b"mine")
    arena.input(mine / "o" / "a_m_x4.png")
    with _client(arena) as client:
        r = client.post("/api/batch", data={"input": str(mine / "in"), "output": str(mine / "o"),
                                            "model": _model(arena)})
        assert r.status_code == 200, r.text
        st = _wait(client, r.json()["job"])
    states = {x["name"]: x["state"] for x in st["results"]}
    assert states == {"a.png": "skipped", "b.png": "done"}
    assert sorted(p.name for p in (mine / "o").iterdir()) == ["a_m_x4.png", "b_m_x4.png"]


# ------------------------------------------------------------------------------------------------- bodies and sizes

def _multipart(boundary: str, parts: list[tuple[str, bytes]], fields: dict[str, str]):
    for k, v in fields.items():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    for name, data in parts:
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n\r\n').encode()
        for i in range(0, len(data), 256 * 1024):
            yield data[i:i + 256 * 1024]
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


@pytest.mark.hostile("refused")
def test_chunked_file_over_the_limit_is_counted_and_dropped(arena: Arena) -> None:
    with _client(arena) as client:
        r = client.post("/api/jobs", content=_multipart("b0", [("big.png", bytes(40 * 2**20 // 10)),
                                                              ("ok.png", _png())], {"model": _model(arena)}),
                        headers={"content-type": "multipart/form-data; boundary=b0"})
        assert r.status_code == 200, r.text
        (rejected,) = r.json()["rejected"]
        assert rejected["error"].startswith("big.png: 4.0 MB is over the upload limit of 1 MB")
        _wait(client, r.json()["job"])
    sizes = [p.stat().st_size for p in (arena.work / "serve").rglob("*") if p.is_file()]
    assert max(sizes) < 2**20  # never spooled past the limit


@pytest.mark.hostile("refused")
def test_chunked_body_over_the_total_is_cut_while_it_arrives(arena: Arena) -> None:
    def endless():
        yield b'--b1\r\nContent-Disposition: form-data; name="files"; filename="x.png"\r\n\r\n'
        for _ in range(300):  # 300 MB offered: 4 files x 1 MB (+1 MB) is the most one upload may be
            yield bytes(2**20)

    with _client(arena) as client:
        r = client.post("/api/jobs", content=endless(), headers={"content-type": "multipart/form-data; boundary=b1"})
        _refused(r, (413,), "refused while it arrived", "--max-files")
    _no_orphans(arena)  # (uvicorn stops reading there; the test client hands over the whole body first)


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("body,ctype", [
    (b"garbage", "multipart/form-data; boundary=zz"), (b"--zz\r\nno headers", "multipart/form-data; boundary=zz"),
    (b"x" * 100, "multipart/form-data"), (b"{}", "application/json"), (b"", "text/plain"),
    (b'--zz\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n\x89PNG',
     "multipart/form-data; boundary=zz"),
])
def test_malformed_bodies_are_one_line_and_leave_nothing(arena: Arena, body: bytes, ctype: str) -> None:
    with _client(arena) as client:
        _refused(client.post("/api/jobs", content=body, headers={"content-type": ctype}), (400, 403, 413))
    _no_orphans(arena)


@pytest.mark.hostile("refused")
def test_too_many_files_and_huge_fields(arena: Arena) -> None:
    with _client(arena) as client:
        r = client.post("/api/jobs", files=[("files", (f"{k}.png", _png(), "image/png")) for k in range(5)],
                        data={"model": _model(arena)})
        _refused(r, (413,), "--max-files")
        r = client.post("/api/jobs", files=[("files", ("a.png", _png(), "image/png"))],
                        data={"model": "m" * 2**20})
        _refused(r, (400, 403, 413))
        r = client.post("/api/jobs", files=[("files", ("a.png", _png(), "image/png"))],
                        data={"model": _model(arena), **{f"f{k}": "1" for k in range(80)}})
        _refused(r, (400,), "more than")
    _no_orphans(arena)


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("field,value", [("alpha", "nan"), ("alpha", "1e309"), ("alpha", "-0.1"),
                                         ("outscale", "inf"), ("outscale", "-1"), ("outscale", "nan"),
                                         ("quality", "1e9"), ("tile", "-4"), ("mode", "../../x"), ("format", "../png"),
                                         ("precision", "fp8"), ("model_b", "/etc/passwd")])
def test_settings_out_of_range(arena: Arena, field: str, value: str) -> None:
    second = str((arena.work / "models" / "m2.safetensors").resolve())
    fields = {"model": _model(arena), "mode": "blend", "model_b": second, "alpha": "0.5", field: value}
    with _client(arena) as client:
        _refused(client.post("/api/jobs", files=[("files", ("a.png", _png(), "image/png"))], data=fields),
                 (400, 403))
    _no_orphans(arena)


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("value", ["sepia", "WAVELET", "wavelet ", "../none", "none\x00", "\u00fc" * 300,
                                   "histogram;none", "1"])
def test_color_fix_values_the_page_does_not_offer(arena: Arena, value: str) -> None:
    """The colour fix of an upload and of a folder batch: anything but none|wavelet|histogram is one line naming
    the field and the allowed values (the value cut short), HTTP 400, before a file is kept or a model loaded."""
    (arena.work / "mine" / "in").mkdir(parents=True, exist_ok=True)
    with _client(arena) as client:
        for r in (client.post("/api/jobs", files=[("files", ("a.png", _png(), "image/png"))],
                              data={"model": _model(arena), "color_fix": value}),
                  client.post("/api/batch", data={"model": _model(arena), "color_fix": value,
                                                  "input": str(arena.work / "mine" / "in"),
                                                  "output": str(arena.work / "mine" / "out")})):
            _refused(r, (400,), "color_fix must be one of none, wavelet, histogram")
            assert len(r.json()["error"]) < 200
    assert not (arena.work / "mine" / "out").exists()
    _no_orphans(arena)


@pytest.mark.hostile("refused")
def test_png_declaring_a_huge_image_is_refused_from_its_header(arena: Arena) -> None:
    bomb = bytearray(_png())
    bomb[16:24] = struct.pack(">II", 30000, 30000)
    with _client(arena) as client:
        r = client.post("/api/jobs", files=[("files", ("bomb.png", bytes(bomb), "image/png"))],
                        data={"model": _model(arena)})
        _refused(r, (400,), "bomb.png", "30000x30000", "--max-pixels")
    _no_orphans(arena)


def _hdr(width: int, height: int) -> bytes:
    """A flat Radiance HDR (new-style run-length scanlines): a few MB that decode to width x height x 3 floats."""
    head = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n".encode()
    runs = []
    left = width
    while left:
        n = min(127, left)
        runs.append(bytes([128 + n, 128]))
        left -= n
    channel = b"".join(runs)
    line = bytes([2, 2, width >> 8, width & 0xFF]) + channel * 4
    return head + line * height


def _probe_knows_hdr() -> bool:
    """Whether esrgan.data.image checks an HDR's size before decoding it (the `hostile` helper's fix)."""
    try:
        imdecode(_hdr(64, 64), "probe.hdr", max_pixels=100)
    except ImageReadError:
        return True
    return False


@pytest.mark.hostile("refused")
@pytest.mark.xfail(not _probe_knows_hdr(), strict=True,
                   reason="esrgan.data.image has no header probe for Radiance HDR yet: serve's check comes after the "
                   "decode (issue 19; the fix to the one probe is the hostile helper's)")
def test_an_81_megapixel_hdr_is_refused_before_it_is_decoded(arena: Arena) -> None:
    (arena.work / "hdr.png").write_bytes(_hdr(9000, 9000))  # named .png, as in the report
    models = arena.work / "models"
    save_network(models / "m.safetensors", {"params": MSRResNet(3, 3, num_feat=4, num_block=1, upscale=4).state_dict()})
    script = textwrap.dedent(f"""
        import json, resource, sys
        from starlette.testclient import TestClient
        from esrgan.serve import ServeConfig, create_app
        app = create_app(ServeConfig(model_dirs=[{str(models)!r}], work_dir="serve", zoo_cache="zoo",
                                     experiments_root="experiments", device="cpu"))
        data = open("hdr.png", "rb").read()
        with TestClient(app, base_url="http://127.0.0.1:7860") as client:
            client.get("/api/info")
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            r = client.post("/api/jobs", files=[("files", ("hdr.png", data, "image/png"))],
                            data={{"model": {str((models / "m.safetensors").resolve())!r}}})
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"status": r.status_code, "body": r.json(), "grew_mb": (after - before) / 1024}}))
    """)
    result = arena.run(module=("-c", script), timeout=300)
    result.assert_ok()
    answer = json.loads(result.out.strip().splitlines()[-1])
    assert answer["status"] == 400 and answer["body"]["error"].startswith("hdr.png")
    assert answer["grew_mb"] < 300, f"the upload cost {answer['grew_mb']:.0f} MB: it was decoded"


@pytest.mark.hostile("refused")
def test_video_and_image_names_that_lie(arena: Arena) -> None:
    with _client(arena) as client:
        r = client.post("/api/jobs", files=[("files", ("clip.mp4", bytes(200), "video/mp4")),
                                            ("files", ("photo.png", b"RIFF\x00\x00", "image/png"))],
                        data={"model": _model(arena)})
        _refused(r, (400,))
        assert "clip.mp4" in r.json()["error"] and "photo.png" in r.json()["error"]
    _no_orphans(arena)


@pytest.mark.hostile("correct")
def test_a_zip_of_many_long_names(arena: Arena) -> None:
    with _client(arena) as client:
        r = client.post("/api/jobs", files=[("files", ("z" * 250 + f"{k}.png", _png(), "image/png")) for k in range(4)],
                        data={"model": _model(arena)})
        st = _wait(client, r.json()["job"])
        z = client.get(st["zip"])
        assert z.status_code == 200
        names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
        assert len(names) == 4 and all(len(n.encode()) <= 200 for n in names)
        assert len(st["zip_name"].encode()) <= 200

