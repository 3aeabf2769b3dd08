"""Model zoo: verified downloads from a local file:// source into a temporary cache; nothing touches the network."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import urllib.request
from pathlib import Path

import pytest
import torch

from esrgan import load_model
from esrgan.archs import RRDBNet
from esrgan.checkpoint import save_network
from esrgan.commands import zoo as zoo_cmd
from esrgan.zoo import ZOO, ChecksumError, ZooEntry, ZooError, download, resolve_model_path


@pytest.fixture
def source(tmp_path, monkeypatch) -> Path:
    """A local "server" folder (file:// URLs) and an empty cache; the network is never used."""
    src = tmp_path / "mirror"
    src.mkdir()
    monkeypatch.setenv("ESRGAN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ESRGAN_ZOO_URL_PREFIX", src.as_uri())
    monkeypatch.delenv("ESRGAN_OFFLINE", raising=False)
    return src


def publish(src: Path, filename: str, monkeypatch, **entry_kw) -> tuple[RRDBNet, str]:
    model = RRDBNet(3, 3, 8, 1, 4, 4).eval()
    path = save_network(src / filename, {"params_ema": model.state_dict()})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    kw = {"sha256": digest, **entry_kw}
    monkeypatch.setitem(ZOO, "Tiny_x4", ZooEntry("Tiny_x4", "https://example.invalid/" + filename, filename,
                                                 "RRDBNet", 4, "test model", **kw))
    return model, digest


def test_published_entries_are_well_formed():
    for name in ("RRDB_ESRGAN_x4", "RRDB_PSNR_x4", "RealESRGAN_x4plus", "RealESRGAN_x2plus"):
        assert name in ZOO
    for e in ZOO.values():
        assert e.url.startswith("https://") and e.hash_source
        if e.sha256:
            assert re.fullmatch(r"[0-9a-f]{64}", e.sha256)
        if e.sha256_prefix:  # BasicSR writes the first 8 hex digits of the SHA-256 into the file name
            assert re.fullmatch(r"[0-9a-f]{8}", e.sha256_prefix) and e.filename.endswith(f"-{e.sha256_prefix}.pth")
        if "github.com" in e.url:
            assert e.url.rsplit("/", 1)[1] == e.filename
    assert ZOO["RealESRGAN_x2plus"].scale == 2


def test_download_once_verified_then_cached(source, monkeypatch, tmp_path):
    model, digest = publish(source, "tiny_x4.pth", monkeypatch)
    path = resolve_model_path("Tiny_x4")
    assert path == tmp_path / "home" / "models" / "tiny_x4.pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny_x4.pth", "tiny_x4.pth.sha256"]
    (source / "tiny_x4.pth").unlink()  # a second use must not download again
    loaded = load_model("Tiny_x4")
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_checksum_mismatch_is_refused_and_removed(source, monkeypatch, tmp_path):
    # the real RealESRGAN_x4plus entry, served a different (tiny) file under its name
    save_network(source / "RealESRGAN_x4plus.pth", {"params_ema": RRDBNet(3, 3, 8, 1, 4, 4).state_dict()})
    with pytest.raises(ChecksumError, match=r"does not match the published digest 4fa0d389.*download was discarded"):
        download("RealESRGAN_x4plus", progress=False)
    cache = tmp_path / "home" / "models"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_hand_placed_file_is_checked_once(source, monkeypatch, tmp_path):
    _, digest = publish(source, "tiny_x4.pth", monkeypatch)
    cache = tmp_path / "home" / "models"
    cache.mkdir(parents=True)
    (cache / "tiny_x4.pth").write_bytes((source / "tiny_x4.pth").read_bytes())
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    assert download("Tiny_x4") == cache / "tiny_x4.pth"
    assert (cache / "tiny_x4.pth.sha256").read_text().split()[0] == digest
    # a wrong file placed by hand is refused with both digests, and left where the user put it
    (cache / "tiny_x4.pth").write_bytes(b"something else")
    found = hashlib.sha256(b"something else").hexdigest()
    match = rf"SHA-256 {found} does not match the published digest {digest}.*left as it is"
    with pytest.raises(ChecksumError, match=match):
        download("Tiny_x4")
    assert (cache / "tiny_x4.pth").read_bytes() == b"something else"


def test_prefix_only_entry_and_unverifiable_entry(source, monkeypatch, tmp_path):
    _, digest = publish(source, "tiny_x4.pth", monkeypatch, sha256=None, sha256_prefix=None)
    with pytest.raises(ZooError, match=r"no published SHA-256.*esrgan zoo download Tiny_x4 --no-verify"):
        download("Tiny_x4")
    assert download("Tiny_x4", no_verify=True, progress=False).is_file()
    (tmp_path / "home" / "models" / "tiny_x4.pth").unlink()
    entry = ZOO["Tiny_x4"]
    monkeypatch.setitem(ZOO, "Tiny_x4", dataclasses.replace(entry, sha256_prefix=digest[:8]))
    assert download("Tiny_x4", progress=False).is_file()
    (tmp_path / "home" / "models" / "tiny_x4.pth").unlink()
    monkeypatch.setitem(ZOO, "Tiny_x4", dataclasses.replace(entry, sha256_prefix="00000000"))
    with pytest.raises(ChecksumError, match="published prefix 00000000"):
        download("Tiny_x4", progress=False)


def test_offline_message_names_url_and_place(source, monkeypatch, tmp_path):
    monkeypatch.delenv("ESRGAN_ZOO_URL_PREFIX")
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    with pytest.raises(ZooError) as err:
        load_model("RealESRGAN_x2plus")
    msg = str(err.value)
    assert "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth" in msg
    assert str(tmp_path / "home" / "models" / "RealESRGAN_x2plus.pth") in msg


def test_unreachable_source_and_unknown_names(source, monkeypatch):
    publish(source, "tiny_x4.pth", monkeypatch)
    (source / "tiny_x4.pth").unlink()
    with pytest.raises(ZooError, match=r"cannot download Tiny_x4 from file://.*tiny_x4\.pth.*place it at"):
        download("Tiny_x4")
    with pytest.raises(FileNotFoundError, match=r"no such checkpoint file, and not a zoo model name \(RRDB_ESRGAN_x4"):
        load_model("RRDB_ESRGAN_x3")
    with pytest.raises(ZooError, match="unknown zoo model 'nope'; known: RRDB_ESRGAN_x4"):
        download("nope")


class _FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, content_type: str, fail_after: int | None = None):
        super().__init__(data)
        self.headers = {"Content-Type": content_type, "Content-Length": str(len(data))}
        self.fail_after = fail_after

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        return super().read(min(n, 1000) if n > 0 else n)


def test_interrupted_download_leaves_no_file(source, monkeypatch, tmp_path):
    publish(source, "tiny_x4.pth", monkeypatch)
    data = (source / "tiny_x4.pth").read_bytes()
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _FakeResponse(data, "application/octet-stream",
                                                                                 fail_after=3000))
    with pytest.raises(ZooError, match=r"Tiny_x4 .*interrupted after 3000 bytes \(connection reset by peer\)"):
        download("Tiny_x4", progress=False)
    cache = tmp_path / "home" / "models"
    assert list(cache.iterdir()) == []


def test_html_page_is_not_saved(source, monkeypatch, tmp_path):
    publish(source, "tiny_x4.pth", monkeypatch)
    page = b"<html>Google Drive can't scan this file for viruses</html>"
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _FakeResponse(page, "text/html; charset=utf-8"))
    with pytest.raises(ZooError, match=r"returned a web page instead of the file.*place it at"):
        download("Tiny_x4", progress=False)
    assert not (tmp_path / "home" / "models" / "tiny_x4.pth").exists()


def test_cli_list_and_download(source, monkeypatch, capsys, tmp_path):
    _, digest = publish(source, "tiny_x4.pth", monkeypatch)
    assert zoo_cmd.main(["download", "Tiny_x4"]) == 0
    out = capsys.readouterr().out
    assert f"sha256 {digest}" in out and str(tmp_path / "home" / "models" / "tiny_x4.pth") in out
    assert zoo_cmd.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:4] == ["Tiny_x4", "x4", "RRDBNet", "cached"] for line in lines)
    assert any(line.split()[:4] == ["RealESRGAN_x2plus", "x2", "RRDBNet", "-"] for line in lines)
    assert zoo_cmd.main(["download", "RealESRNet_x4plus"]) == 1
    assert "--no-verify" in capsys.readouterr().err
