"""Download the public SR data sets (DIV2K, Flickr2K, Set5, Set14, BSDS400) with resume and checksums.

Files are fetched to ``<root>/downloads/<file>.part`` and resumed from there with an HTTP
``Range`` request (or a seek for ``file://`` sources); a finished file is checked against
its SHA-256 where one is known, renamed, and archives are unpacked into ``<root>``.
``source`` replaces the public base address (a mirror, a local folder or ``file://`` URL),
the file's relative path being appended; tests use it with a local folder or a loopback server.

Checksums: DIV2K archives as listed by TensorFlow Datasets (``url_checksums/div2k.txt``);
Set5/Set14 images as in the PAN repository at a pinned commit (the same files as
``../shared/data``); BSDS400 (BSDS500's train and test images, without its val half = B100) image by
image from a repository holding the unpacked official ``BSR_bsds500.tgz`` at a pinned commit, each
checked against ``checksums/BSDS400.sha256``. Flickr2K has no published checksum: its digest is printed instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from esrgan.utils.fetch import DownloadError, offline, sha256_file
from esrgan.utils.fetch import fetch as download_file

logger = logging.getLogger("esrgan.data.download")

_DIV2K = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
_PAN = "https://raw.githubusercontent.com/zhaohengyuan1/PAN/4d045d18592c5771cd3990da88f292812774e538/datasets/"
_EDSR = "https://cv.snu.ac.kr/research/EDSR/"
# The official BSR_bsds500.tgz, unpacked as it is (the archive has no published checksum; datasets/README.md).
_BSDS = "https://raw.githubusercontent.com/Sisso16/ssn_pytorch/c4f9ac8c43397cbacbf2e2ba1505efafa769435d/"
_BSDS_IMAGES = "BSR/BSDS500/data/images/"


@dataclass(frozen=True)
class RemoteFile:
    rel: str  # path relative to the base address; also where it lands under <root>/downloads
    base: str
    sha256: str | None = None
    size: int | None = None
    extract_to: str | None = None  # archives: folder under <root> to unpack into; None: keep as a file at dest
    dest: str | None = None  # plain files: path under <root>

    def url(self, source: str | None = None) -> str:
        return _join(source, self.rel) if source else self.base + self.rel


def _join(base: str, rel: str) -> str:
    if "://" in base:
        return base.rstrip("/") + "/" + urllib.parse.quote(rel)
    return str(Path(base) / rel)


def _div2k(name: str, size: int, sha: str) -> RemoteFile:
    return RemoteFile(f"{name}.zip", _DIV2K, sha, size, extract_to="DIV2K")


_DIV2K_FILES = {
    "DIV2K_train_HR": (3530603713, "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335"),
    "DIV2K_valid_HR": (448993893, "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc"),
    "DIV2K_train_LR_bicubic_X2": (925390592, "a53a424317575838dadce4bcd97cf7b744d6855f43740ed5f0245af3cf4bd850"),
    "DIV2K_train_LR_bicubic_X3": (427847282, "ad5c8e5507e2765823d3c2c5bd0934842efcd487c5370604c224090898b3163a"),
    "DIV2K_train_LR_bicubic_X4": (246914039, "f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a"),
    "DIV2K_valid_LR_bicubic_X2": (117763600, "60eed9875c697df51204aa579e2a699e1d5215095788a097ff54dd17e2664d57"),
    "DIV2K_valid_LR_bicubic_X3": (54513392, "04b9a2ed3b4a0715d3924d3ae8514830c3328fac8d30512ce716d6f419e052a3"),
    "DIV2K_valid_LR_bicubic_X4": (31505881, "a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553"),
}

_SET5 = {
    "baby": ("158417bf319058274bbea8b7d4995a12cb70dc7ff1cdf6351bde7e3d4e22d06a",
             "4d4d9c30a16c2d17b1c51197cb40d3f008888442416d9ef9ba3ec36766f2851a"),
    "bird": ("1b20dfba6635f99d501144a949e1568363a91cc08231dc92d9537f883c23c9a8",
             "519059a89ef4fc082f0e0aa9b692a6248dd69dfa816c0b59b3feef3cd976dc97"),
    "butterfly": ("58be740fd17ead6029eb8344c46720c392eaf120907dc623475aa768260e6548",
                  "c69c6bddf867bfe9aa6ea6f331960aed49d5adb71603d38922c4e24b88a55c7a"),
    "head": ("ec18fffd17f8a54ff04a19d03697988e9ba8ad4092ac4c792d19dbf7c967d59d",
             "a034c85fe72b1594aad9a0ef93b8abbc51cf51ea5b409b206c0c4c66caa5ea44"),
    "woman": ("b15112110e3e7d91b840d6131a00f0f5c22d54f4ac93a81e3ed0f6ab62d08106",
              "2e0390a78cb8b3d38586e77437b09d8a20f85573c20c26def107122867b6bad6"),
}  # fmt: skip
_SET14 = {
    "baboon": ("672b98a004b7bb7e14971fdb38c7255bd2a2b5445f0258bcfcf632e2ddf1a9d4",
               "c1d85a801ff338945359dd8d4c978c0614d9df73561632541e14b2551be63c7c"),
    "barbara": ("acb3dad5c6c0442b7ef1e4040be660081bcd69f03fcb8a1914a81c1ea7ad6c27",
                "ff45837d86a8951a101e863b8723d43b1bc0dd85dc46d81bd40ebc490f4afaa4"),
    "bridge": ("60a2d13c592ed58866bccd437f3f9d8fbfa8d4827ad3d78e7335420118f751d7",
               "85badca0e5384825f3bfcf0f99dbcdaa853cff4326b87b096692ed7d1682ab73"),
    "coastguard": ("3daba6c7cac808bffd3ec370bbcc40c65e0637607913cafb642a9a1f057a7cba",
                   "12968d725ba8f170b2f432c310c4434e3e1e51937b7f227c02c23bd7af2d08fb"),
    "comic": ("3fc49da72b0cfa46fa08b23ded72e372f8aa7f8cf33d1077ff3624d6c2bb7e67",
              "270ea83fb0668b1de49a88d9d372ceb0a87de4905d952ba34562fbfdf24bb056"),
    "face": ("54d6f6a49bd4245fc19668efd9f2a1c137d93ddfc8802fb182eca0ab98caf77f",
             "0f65492c9cc6fa8f870566e94fc7224e12c0e84abef5b3729566dc917e88b9e4"),
    "flowers": ("6266cc5d51bf0c4c36d7c3cb3953d913969626e09050d7d33009ced0470c12d7",
                "ddad45fb4974aa744f363757b8351ca559940595668d91517eb009cb14d255a1"),
    "foreman": ("efa097ea1dd4eb1b58067ae62f879ec5b695631ba02318d5a6bff5cea20c1e8f",
                "51e97078cf96f00f79360726298a3f15ec6262c2d74a06c0e7d33765e5852999"),
    "lenna": ("06d5b2ea5dcc23bf1f7461452412b3f212752ed0bbd982290b333140aa53067a",
              "9cc08b63d9f76ba20ae5485832aab15c33fb0b093a1089c3025acb48f5357b07"),
    "man": ("6b0ab2a44d2701dae28837e34fe1652c2ad65a9bebfcbca0f08fe8a09fce7bfb",
            "579f119645773f8dcff7af4884c4968f34f7e90b2ea1254797589f0871dd7f03"),
    "monarch": ("f186ba2dfa8708718279ff6daba669cb29aefd45e3e2fcadc353d8a346898717",
                "68867c6cf1cf25c5ec67bb75ddaae9b5eda81a1ccc62375cee2206a93db4105e"),
    "pepper": ("0c38766ab2e4452c8a5cdab6ffc0c5a8ec4f7f507818c937690afbbb37722ddf",
               "11f3996149ed019986a8d59facca60a627bc667e30c578da7eb481b8fb5048b6"),
    "ppt3": ("02c0dbb971587943429246bc2e8201480fef11d404c6e24afb2cbe39170f110e",
             "fa90ecec7606bc3ba6e4b8ae3bace2eb09ee8cc40e163bbfc949aa5b22c48834"),
    "zebra": ("73739d5ac29dcaeae8a2d23dc786224cac0a749c7199ec282b45c0d9244fbbde",
              "a387fa322f2df65bfd0d09228e69281f4638780c28d481421ac5d71b9459c1ff"),
}  # fmt: skip


def _benchmark(set_name: str, table: dict[str, tuple[str, str]]) -> list[RemoteFile]:
    files = []
    for name, (sha_hr, sha_lr) in table.items():
        for rel, sha in ((f"{set_name}/HR/{name}.png", sha_hr), (f"{set_name}/LR_bicubic/X4/{name}x4.png", sha_lr)):
            files.append(RemoteFile(rel, _PAN, sha, dest=rel))
    return files


def _bsds400() -> list[RemoteFile]:
    """BSDS500's train and test images (400 photographs for training; its val half is B100, a test set) into
    ``BSDS400/HR``: one file each, SHA-256 from ``checksums/BSDS400.sha256`` (``<digest>  <train|test>/<name>``)."""
    table = resources.files("esrgan.data").joinpath("checksums/BSDS400.sha256").read_text(encoding="ascii")
    files = []
    for line in table.splitlines():
        sha, rel = line.split()
        files.append(RemoteFile(_BSDS_IMAGES + rel, _BSDS, sha, dest="BSDS400/HR/" + rel.split("/")[1]))
    return files


DATASETS: dict[str, list[RemoteFile]] = {
    **{name: [_div2k(name, size, sha)] for name, (size, sha) in _DIV2K_FILES.items()},
    "Flickr2K": [RemoteFile("Flickr2K.tar", _EDSR, None, extract_to=".")],
    "Set5": _benchmark("Set5", _SET5),
    "Set14": _benchmark("Set14", _SET14),
    "BSDS400": _bsds400(),
}
# What the ESRGAN x4 recipe needs from DIV2K.
GROUPS: dict[str, list[str]] = {
    "DIV2K": ["DIV2K_train_HR", "DIV2K_valid_HR", "DIV2K_train_LR_bicubic_X4", "DIV2K_valid_LR_bicubic_X4"],
    "benchmarks": ["Set5", "Set14"],
}


def expand_names(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        members = GROUPS.get(name, [name])
        for member in members:
            if member not in DATASETS:
                known = ", ".join([*GROUPS, *DATASETS])
                raise DownloadError(f"unknown data set {member!r}; known: {known}")
            if member not in out:
                out.append(member)
    return out


def _offline_hint(url: str, dest: Path) -> str:
    return (
        f"cannot download {url}; no network? Fetch the file another way and place it at {dest} "
        f"(this command then verifies and unpacks it), or pass --source with a mirror or local folder"
    )


def fetch(url: str, dest: Path, sha256: str | None = None, size: int | None = None, progress: bool = True) -> str:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), check it, and return its SHA-256.

    An existing ``dest`` is only verified. A checksum mismatch removes the file and raises.
    """
    if dest.is_file():
        digest = sha256_file(dest)
        _verify(dest, digest, sha256, size, remove=False)
        return digest
    if offline():
        raise DownloadError("offline (ESRGAN_OFFLINE is set): " + _offline_hint(url, dest))

    def check(digest: str, part: Path) -> None:
        _verify(part, digest, sha256, size, remove=True, url=url)

    try:
        return download_file(url, dest, check=check, progress=progress, user_agent="esrgan-prepare")
    except DownloadError as exc:
        if str(exc).startswith(f"cannot download {url} ("):  # no connection: say what to do without one
            raise DownloadError(f"{_offline_hint(url, dest)} ({exc.__cause__ or exc})") from exc
        raise


def _verify(path: Path, digest: str, sha256: str | None, size: int | None, remove: bool, url: str = "") -> None:
    what = f"download of {url}" if url else str(path)
    actual_size = path.stat().st_size
    problem = None
    if sha256 and digest != sha256:
        problem = f"SHA-256 {digest} does not match the expected {sha256}"
    elif size is not None and actual_size != size:
        problem = f"size {actual_size} bytes does not match the expected {size}"
    if problem:
        if remove:
            path.unlink(missing_ok=True)
        raise DownloadError(
            f"{what}: {problem} ({'removed; run again to re-download' if remove else 'remove it and run again'})"
        )


def _extract(archive: Path, target: Path) -> int:
    """Unpack ``archive`` into ``target`` via a temporary folder; returns the number of files."""
    target.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    _check_member(archive, member)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")  # rejects absolute paths, '..' and links out of tmp
        else:
            raise DownloadError(f"{archive}: neither a zip nor a tar archive")
        count = 0
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                out = target / path.relative_to(tmp)
                out.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, out)  # per file, so several archives can fill one tree (X2, X4 in LR_bicubic)
                count += 1
        return count
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_member(archive: Path, member: str) -> None:
    if member.startswith(("/", "\\")) or ".." in Path(member).parts:
        raise DownloadError(f"{archive}: unsafe path {member!r} in archive")


def _files_bar(name: str, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="file")


def _download_one(
    name: str, remote: RemoteFile, root: Path, source: str | None, keep_archives: bool, progress: bool
) -> Path:
    """One file of data set ``name``: fetched and checked (plain files) or fetched, checked and unpacked."""
    url = remote.url(source)
    if remote.extract_to is None:
        dest = root / (remote.dest or remote.rel)
        fetch(url, dest, remote.sha256, remote.size, progress)
        return dest
    archive = root / "downloads" / remote.rel
    target = root / remote.extract_to
    done = archive.with_name(archive.name + ".extracted")
    if done.is_file():
        logger.info("%s: already unpacked into %s (remove %s to redo)", name, target, done)
        return target
    digest = fetch(url, archive, remote.sha256, remote.size, progress)
    if not remote.sha256:
        logger.warning("%s: no published checksum; its SHA-256 is %s", archive.name, digest)
    logger.info("unpacking %s into %s", archive, target)
    count = _extract(archive, target)
    logger.info("%s: %d files", name, count)
    done.write_text(f"{digest}\n")
    if not keep_archives:
        archive.unlink()
    return target


def download(
    names: list[str],
    root: str | os.PathLike[str] = "datasets",
    source: str | None = None,
    keep_archives: bool = True,
    progress: bool = True,
) -> list[Path]:
    """Fetch and unpack data sets into ``root``; returns the files or folders produced."""
    root = Path(root)
    produced = []
    for name in expand_names(names):
        remotes = DATASETS[name]
        # a set of many small files (BSDS400: 400 images) shows one bar of files, not one bar per file
        many = progress and len(remotes) > 1 and all(r.extract_to is None for r in remotes)
        with _files_bar(name, len(remotes)) if many else contextlib.nullcontext() as bar:
            for remote in remotes:
                produced.append(_download_one(name, remote, root, source, keep_archives, progress and not many))
                if bar is not None:
                    bar.update()
        logger.info("%s ready under %s", name, root)
    return produced
