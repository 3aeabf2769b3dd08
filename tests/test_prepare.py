"""`esrgan prepare`: sub-images, LR images, downloads (local and loopback HTTP sources), demo data."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import threading
import zipfile

import numpy as np
import pytest

from esrgan.cli import main as esrgan_main
from esrgan.commands.prepare import main
from esrgan.data import download as dl
from esrgan.data.image import imread, imwrite, list_images
from esrgan.data.paired_dataset import PairedImageDataset
from esrgan.data.subimages import crop_positions
from esrgan.imageops.imresize import imresize
from esrgan.options.datasets import DatasetOptions


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------ sub-images


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (2040, [0, 240, 480, 720, 960, 1200, 1440, 1560]),  # 1440+480=1920, 120 px left > 48: flush crop at 1560
        (1356, [0, 240, 480, 720, 876]),  # 720+480=1200, 156 left: flush crop at 876
        (1008, [0, 240, 480]),  # 960, 48 left: not more than 48, dropped
        (1009, [0, 240, 480, 529]),  # 49 left: kept
        (480, [0]),
        (479, []),
    ],
)
def test_crop_positions_div2k_recipe(length, expected):
    assert crop_positions(length, 480, 240, 48) == expected


def test_extract_subimages_hr_and_lr_stay_aligned(tmp_path):
    hr = _noise(100, 92)
    lr = imresize(hr, 1 / 4)
    imwrite(tmp_path / "HR" / "0001.png", hr)
    imwrite(tmp_path / "LR" / "0001x4.png", lr)
    sizes = ["--crop-size", "40", "--step", "20", "--thresh-size", "8", "--workers", "2"]
    extract = ["extract-subimages", "--input"]
    assert main([*extract, str(tmp_path / "HR"), "--output", str(tmp_path / "HRsub"), *sizes]) == 0
    assert main([*extract, str(tmp_path / "LR"), "--output", str(tmp_path / "LRsub"), *sizes, "--scale", "4"]) == 0
    ys, xs = crop_positions(100, 40, 20, 8), crop_positions(92, 40, 20, 8)
    assert ys == [0, 20, 40, 60] and xs == [0, 20, 40, 52]  # 92 - 80 = 12 > 8: flush crop at 52
    names = [p.name for p in list_images(tmp_path / "HRsub")]
    assert names == [f"0001_s{i:03d}.png" for i in range(1, 17)]
    assert [p.name for p in list_images(tmp_path / "LRsub")] == names  # 'x4' dropped: same names
    index = 0
    for y in ys:
        for x in xs:
            index += 1
            name = f"0001_s{index:03d}.png"
            np.testing.assert_array_equal(imread(tmp_path / "HRsub" / name), hr[y : y + 40, x : x + 40])
            lr_patch = lr[y // 4 : y // 4 + 10, x // 4 : x // 4 + 10]
            np.testing.assert_array_equal(imread(tmp_path / "LRsub" / name), lr_patch)


def test_extract_subimages_errors(tmp_path, capsys):
    imwrite(tmp_path / "HR" / "a.png", _noise(50, 50))
    args = ["extract-subimages", "--input", str(tmp_path / "HR"), "--output", str(tmp_path / "out"), "--workers", "1"]
    assert main([*args, "--crop-size", "30", "--step", "15", "--thresh-size", "6", "--scale", "4"]) == 1
    assert "--crop-size 30 is not divisible by --scale 4" in capsys.readouterr().err
    assert main([*args, "--crop-size", "20", "--step", "20"]) == 0
    assert main([*args, "--crop-size", "20", "--step", "20"]) == 1
    assert "output folder exists and is not empty; pass --overwrite" in capsys.readouterr().err
    (tmp_path / "HR" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert main([*args, "--crop-size", "20", "--step", "20", "--overwrite"]) == 1
    assert re.search(r"b\.png: cannot decode image data .* truncated or not an image", capsys.readouterr().err)


# ------------------------------------------------------------------ make-lr


def test_make_lr_reproduces_set5_bit_exactly(shared_data, tmp_path):
    assert main(["make-lr", "--input", str(shared_data / "Set5" / "HR"), "--output", str(tmp_path / "X4"),
                 "--scale", "4", "--workers", "2"]) == 0  # fmt: skip
    published = sorted((shared_data / "Set5" / "LR_bicubic" / "X4").iterdir())
    assert [p.name for p in published] == sorted(p.name for p in (tmp_path / "X4").iterdir())
    for path in published:
        np.testing.assert_array_equal(imread(tmp_path / "X4" / path.name), imread(path))


def test_make_lr_mod_crops_hr_first(tmp_path):
    hr = _noise(37, 42)
    imwrite(tmp_path / "HR" / "x.png", hr)
    assert main(["make-lr", "--input", str(tmp_path / "HR"), "--output", str(tmp_path / "X3"), "--scale", "3",
                 "--filename-tmpl", "{}", "--hr-output", str(tmp_path / "GTmod3"), "--workers", "1"]) == 0  # fmt: skip
    np.testing.assert_array_equal(imread(tmp_path / "GTmod3" / "x.png"), hr[:36, :42])
    np.testing.assert_array_equal(imread(tmp_path / "X3" / "x.png"), imresize(hr[:36, :42], 1 / 3))


# ------------------------------------------------------------------ download


class _Server:
    """Loopback HTTP server with Range support; ``cut_after`` drops the first response midway."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.ranges: list[str | None] = []
        self.cut_after: int | None = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = server.files.get(self.path.lstrip("/"))
                server.ranges.append(self.headers.get("Range"))
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(re.match(r"bytes=(\d+)-", self.headers["Range"]).group(1))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    body, server.cut_after = body[: server.cut_after], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_http_download_resumes_after_interruption(tmp_path):
    payload = np.random.default_rng(0).bytes(300_000)
    sha = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "f.bin"
    with _Server({"f.bin": payload}) as server:
        server.cut_after = 100_000
        with pytest.raises(dl.DownloadError, match=r"interrupted after 100000 of 300000 bytes; run again to resume"):
            dl.fetch(f"{server.url}/f.bin", dest, sha, progress=False)
        assert not dest.exists() and (tmp_path / "f.bin.part").stat().st_size == 100_000
        assert dl.fetch(f"{server.url}/f.bin", dest, sha, len(payload), progress=False) == sha
        assert server.ranges == [None, "bytes=100000-"]
    assert dest.read_bytes() == payload and not (tmp_path / "f.bin.part").exists()


def test_checksum_mismatch_removes_the_file(tmp_path):
    mismatch = rf"SHA-256 .* does not match the expected {'0' * 64}"
    with _Server({"f.bin": b"not what was published"}) as server, pytest.raises(dl.DownloadError, match=mismatch):
            dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", "0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_message_names_url_and_destination(tmp_path, monkeypatch, capsys):
    with _Server({}) as server:
        url = server.url
    dest = tmp_path / "downloads" / "DIV2K_valid_HR.zip"
    with pytest.raises(dl.DownloadError, match=r"cannot download .*no network\? .*place it at .*DIV2K_valid_HR.zip"):
        dl.fetch(f"{url}/DIV2K_valid_HR.zip", dest, progress=False)  # the server is gone: connection refused
    assert list(tmp_path.iterdir()) == []  # no empty folder left that a later step would take for a data set
    # the console command: exit status 1 and the same message (a source that refuses connections: offline)
    rc = main(["download", "Set5", "--root", str(tmp_path / "datasets"), "--source", url + "/"])
    err = capsys.readouterr().err
    assert rc == 1 and "no network?" in err and f"place it at {tmp_path / 'datasets' / 'Set5' / 'HR'}" in err
    assert not (tmp_path / "datasets" / "Set5").exists()
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    with pytest.raises(dl.DownloadError, match="offline"):
        dl.fetch("https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip", dest, progress=False)


def test_download_from_local_source_extracts_and_skips_second_time(tmp_path, monkeypatch, capsys):
    archive = _zip({"Tiny_HR/0001.png": b"a", "Tiny_LR_bicubic/X4/0001x4.png": b"b"})
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "Tiny.zip").write_bytes(archive)
    remote = dl.RemoteFile("Tiny.zip", "https://example.invalid/", hashlib.sha256(archive).hexdigest(), len(archive),
                           extract_to="Tiny")  # fmt: skip
    monkeypatch.setitem(dl.DATASETS, "Tiny", [remote])
    root = tmp_path / "datasets"
    for source in (str(tmp_path / "mirror"), (tmp_path / "mirror").as_uri()):
        assert main(["download", "Tiny", "--root", str(root), "--source", source]) == 0
        assert (root / "Tiny" / "Tiny_HR" / "0001.png").read_bytes() == b"a"
        assert (root / "Tiny" / "Tiny_LR_bicubic" / "X4" / "0001x4.png").read_bytes() == b"b"
        assert (root / "downloads" / "Tiny.zip.extracted").is_file()
        (root / "downloads" / "Tiny.zip.extracted").unlink()
        (root / "downloads" / "Tiny.zip").unlink()
    assert not any(p.name.startswith(".extract-") for p in (root / "Tiny").iterdir())


def test_download_rejects_unsafe_archive(tmp_path, monkeypatch):
    archive = _zip({"../escape.txt": b"x"})
    (tmp_path / "evil.zip").write_bytes(archive)
    monkeypatch.setitem(dl.DATASETS, "Evil", [dl.RemoteFile("evil.zip", "https://example.invalid/", extract_to="E")])
    with pytest.raises(dl.DownloadError, match=r"unsafe path '../escape.txt'"):
        dl.download(["Evil"], tmp_path / "root", source=str(tmp_path), progress=False)
    assert not (tmp_path / "root" / "escape.txt").exists()


def test_download_benchmarks_with_published_checksums(shared_data, tmp_path):
    """Set5/Set14 from a local mirror laid out like the public one; every file's SHA-256 is checked."""
    dl.download(["benchmarks"], tmp_path, source=str(shared_data), progress=False)
    assert len(list((tmp_path / "Set14" / "HR").iterdir())) == 14
    assert (tmp_path / "Set5" / "LR_bicubic" / "X4" / "babyx4.png").read_bytes() == (
        shared_data / "Set5" / "LR_bicubic" / "X4" / "babyx4.png"
    ).read_bytes()


def test_download_unknown_name_and_list(capsys):
    assert main(["download", "ImageNet"]) == 1
    assert "unknown data set 'ImageNet'; known: DIV2K, benchmarks" in capsys.readouterr().err
    assert main(["download", "--list"]) == 0
    out = capsys.readouterr().out
    assert "DIV2K_train_HR" in out and "Flickr2K" in out and "no published checksum" in out


# ------------------------------------------------------------------ demo data


def test_demo_data(tmp_path):
    from esrgan.data.demo_data import SCALE, TRAIN_IMAGES, VAL_IMAGES

    root = tmp_path / "demo"
    assert esrgan_main(["prepare", "demo", "--root", str(root)]) == 0
    train_hr, val_hr = list_images(root / "train" / "HR"), list_images(root / "val" / "HR")
    assert len(train_hr) == 59 and {p.stem.rsplit("_s", 1)[0] for p in train_hr} == set(TRAIN_IMAGES)
    assert [p.stem for p in val_hr] == sorted(VAL_IMAGES)
    assert imread(train_hr[0]).shape == (192, 192, 3)
    # Training LR sub-images are cut from the bicubic LR of the whole image (astronaut: 512x512).
    from skimage import data

    lr_full = imresize(data.astronaut(), 1 / SCALE)
    np.testing.assert_array_equal(imread(root / "train" / "LR_bicubic" / "X4" / "astronaut_s002x4.png"),
                                  lr_full[0:48, 32:80])  # fmt: skip
    for path in val_hr:
        hr = imread(path)
        assert hr.shape == (256, 256, 3)
        np.testing.assert_array_equal(imread(root / "val" / "LR_bicubic" / "X4" / f"{path.stem}x4.png"),
                                      imresize(hr, 1 / SCALE))  # fmt: skip
    # Usable as it is with the default filename_tmpl.
    train = DatasetOptions(
        dataroot_gt=str(root / "train" / "HR"), dataroot_lq=str(root / "train" / "LR_bicubic" / "X4"), gt_size=128
    )
    ds = PairedImageDataset(train)
    assert len(ds) == 59 and ds[0]["lq"].shape == (3, 32, 32)
    # A second run reuses it; a folder that is not a demo set is not clobbered.
    mtime = train_hr[0].stat().st_mtime_ns
    assert main(["demo", "--root", str(root)]) == 0
    assert train_hr[0].stat().st_mtime_ns == mtime
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    assert main(["demo", "--root", str(tmp_path / "other")]) == 1
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def _bsds400_mirror(hr_folder, mirror) -> None:
    """A local source laid out like the public one (``BSR/BSDS500/data/images/{train,test}/<name>.jpg``), made of
    links to the images of ``hr_folder``."""
    for remote in dl.DATASETS["BSDS400"]:
        link = mirror / remote.rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(hr_folder / link.name)


def test_bsds400_table_is_the_train_and_test_halves_of_bsds500():
    remotes = dl.DATASETS["BSDS400"]
    halves = [r.rel.split("/")[-2] for r in remotes]
    assert len(remotes) == 400 and halves.count("train") == halves.count("test") == 200
    assert all(r.sha256 and len(r.sha256) == 64 and r.dest == f"BSDS400/HR/{r.rel.rsplit('/', 1)[1]}" for r in remotes)
    assert len({r.dest for r in remotes}) == 400  # no name in both halves: one flat HR folder
    # B100 (= BSDS500 val) is a test set: none of its images may be in the training set
    assert not {"3096.jpg", "8023.jpg", "101085.jpg"} & {r.dest.rsplit("/", 1)[1] for r in remotes}  # B100 images


def test_download_bsds400_from_a_local_source(shared_data, tmp_path, capsys):
    """All 400 images from a local mirror, each SHA-256 checked; a second run only verifies."""
    hr = shared_data / "BSDS400" / "HR"
    if not hr.is_dir():
        pytest.skip(f"BSDS400 not present: {hr}")
    _bsds400_mirror(hr, tmp_path / "mirror")
    root = tmp_path / "datasets"
    for _ in range(2):
        assert main(["download", "BSDS400", "--root", str(root), "--source", str(tmp_path / "mirror")]) == 0
    out = sorted((root / "BSDS400" / "HR").iterdir())
    assert len(out) == 400 and out[0].read_bytes() == (hr / out[0].name).read_bytes()
    assert not (root / "downloads").exists()  # plain files: nothing to unpack, no archive left
