"""Model zoo: public pretrained generators by name, downloaded once into a cache with a checksum.

Cache folder: ``$ESRGAN_HOME/models`` (default ``~/.cache/esrgan/models``, or ``$XDG_CACHE_HOME/esrgan/models``).
A download (``esrgan.utils.fetch.fetch``) goes to a temporary file in that folder and is renamed to
its final name only when the SHA-256 matches; a mismatch is refused and the partial download removed.
A file placed there by hand (offline machines) is checked the same way on first use; one that does not match is
refused with both digests and left where it is (the program deletes only what it downloaded).

Environment: ``ESRGAN_ZOO_URL_PREFIX`` replaces every entry's address by ``<prefix>/<filename>``
(a mirror, or a ``file://`` folder in tests); ``ESRGAN_OFFLINE=1`` never touches the network.

``esrgan zoo list`` / ``esrgan zoo download NAME [--no-verify]``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from esrgan.utils.fetch import DownloadError, fetch, offline, sha256_file

logger = logging.getLogger("esrgan.zoo")

_REAL = "https://github.com/xinntao/Real-ESRGAN/releases/download"


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained model. ``sha256`` is the full digest where one is published; otherwise
    ``sha256_prefix`` holds the 8 hex digits BasicSR puts in its file names (``sha256sum`` output,
    see BasicSR's scripts/publish_models.py)."""

    name: str
    url: str
    filename: str
    arch: str
    scale: int
    description: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    hash_source: str = ""

    @property
    def expected(self) -> str | None:
        return self.sha256 or self.sha256_prefix


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry(
            "RRDB_ESRGAN_x4",
            f"{_REAL}/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
            "ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
            "RRDBNet",
            4,
            "ESRGAN paper's GAN model (DF2K+OST), the official RRDB_ESRGAN_x4.pth converted to BasicSR keys",
            sha256_prefix="ff704c30",
            hash_source="prefix in BasicSR's published file name; URL from Real-ESRGAN's Training.md",
        ),
        ZooEntry(
            "RRDB_PSNR_x4",
            "https://drive.google.com/uc?export=download&id=1swaV5iBMFfg-DL6ZyiARztbhutDCWXMM",
            "ESRGAN_PSNR_SRx4_DF2K_official-150ff491.pth",
            "RRDBNet",
            4,
            "ESRGAN paper's PSNR-oriented model (DF2K), the official RRDB_PSNR_x4.pth in BasicSR keys",
            sha256_prefix="150ff491",
            hash_source="prefix in BasicSR's file name; Drive id from BasicSR scripts/download_pretrained_models.py",
        ),
        ZooEntry(
            "RealESRGAN_x4plus",
            f"{_REAL}/v0.1.0/RealESRGAN_x4plus.pth",
            "RealESRGAN_x4plus.pth",
            "RRDBNet",
            4,
            "Real-ESRGAN x4 for real-world photos (blind degradations)",
            sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
            hash_source="published by many downstream projects (InvokeAI/AUR/ComfyUI installers), all agree",
        ),
        ZooEntry(
            "RealESRGAN_x2plus",
            f"{_REAL}/v0.2.1/RealESRGAN_x2plus.pth",
            "RealESRGAN_x2plus.pth",
            "RRDBNet",
            2,
            "Real-ESRGAN x2 (pixel-unshuffle input, 12-channel conv_first)",
            sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
            hash_source="published by downstream installers (ComfyUI model lists, Dockerfiles with sha256sum -c)",
        ),
        ZooEntry(
            "RealESRGAN_x4plus_anime_6B",
            f"{_REAL}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
            "RealESRGAN_x4plus_anime_6B.pth",
            "RRDBNet",
            4,
            "Real-ESRGAN x4 for anime illustrations (6 RRDB blocks)",
            sha256="f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
            hash_source="published by downstream installers (AUR python-realesrgan, ComfyUI lists), all agree",
        ),
        ZooEntry(
            "RealESRNet_x4plus",
            f"{_REAL}/v0.1.1/RealESRNet_x4plus.pth",
            "RealESRNet_x4plus.pth",
            "RRDBNet",
            4,
            "Real-ESRNet x4 (the PSNR stage of Real-ESRGAN; smoother)",
            hash_source="no published digest found: download needs --no-verify and prints the digest",
        ),
        ZooEntry(
            "realesr-animevideov3",
            f"{_REAL}/v0.2.5.0/realesr-animevideov3.pth",
            "realesr-animevideov3.pth",
            "SRVGGNetCompact",
            4,
            "Real-ESRGAN compact x4 for anime video (SRVGGNetCompact, 16 convs, 0.6 M parameters; fast)",
            hash_source="no published digest found: download needs --no-verify and prints the digest",
        ),
        ZooEntry(
            "realesr-general-x4v3",
            f"{_REAL}/v0.2.5.0/realesr-general-x4v3.pth",
            "realesr-general-x4v3.pth",
            "SRVGGNetCompact",
            4,
            "Real-ESRGAN compact x4 for general real-world images (SRVGGNetCompact, 32 convs, 1.2 M parameters)",
            hash_source="no published digest found: download needs --no-verify and prints the digest",
        ),
        ZooEntry(
            "realesr-general-wdn-x4v3",
            f"{_REAL}/v0.2.5.0/realesr-general-wdn-x4v3.pth",
            "realesr-general-wdn-x4v3.pth",
            "SRVGGNetCompact",
            4,
            "realesr-general-x4v3 trained with stronger denoising (Real-ESRGAN mixes the two for its -dn strength)",
            hash_source="no published digest found: download needs --no-verify and prints the digest",
        ),
    )
}


class ZooError(RuntimeError):
    """A zoo model could not be provided (unknown name, offline, failed download)."""


class ChecksumError(ZooError):
    """A downloaded or cached file does not have the published SHA-256."""


def cache_dir() -> Path:
    """``$ESRGAN_HOME/models``, else ``$XDG_CACHE_HOME/esrgan/models``, else ``~/.cache/esrgan/models``."""
    if os.environ.get("ESRGAN_HOME"):
        return Path(os.environ["ESRGAN_HOME"]).expanduser() / "models"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "esrgan" / "models"


def entry_url(entry: ZooEntry, base_url: str | None = None) -> str:
    prefix = base_url or os.environ.get("ESRGAN_ZOO_URL_PREFIX")
    return f"{prefix.rstrip('/')}/{entry.filename}" if prefix else entry.url


def _check_digest(entry: ZooEntry, digest: str, what: str, outcome: str) -> None:
    expected = entry.expected
    if expected and not digest.startswith(expected):
        raise ChecksumError(
            f"{what}: SHA-256 {digest} does not match the published {'digest' if entry.sha256 else 'prefix'} "
            f"{expected} of {entry.name}; {outcome}"
        )


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _write_marker(path: Path, digest: str) -> None:
    st = path.stat()
    _marker(path).write_text(f"{digest} {st.st_size} {st.st_mtime_ns}\n")


def _marker_ok(path: Path) -> bool:
    try:
        digest, size, mtime = _marker(path).read_text().split()
        st = path.stat()
        return int(size) == st.st_size and int(mtime) == st.st_mtime_ns and bool(digest)
    except (OSError, ValueError):
        return False


def _download(entry: ZooEntry, url: str, dst: Path, *, verify: bool, progress: bool) -> str:
    hint = f"download {url} yourself and place it at {dst} (or set ESRGAN_ZOO_URL_PREFIX to a mirror)"
    if offline():
        raise ZooError(f"offline (ESRGAN_OFFLINE is set): {entry.name} is not in the cache; {hint}")
    logger.info("downloading %s from %s", entry.name, url)

    def check(digest: str, _part: Path) -> None:
        if verify:
            _check_digest(entry, digest, f"download of {url}",
                          "the download was discarded (damaged in transit, or the server sent a different file)")

    try:
        # a fresh download each time: a zoo file is small next to a data set, and never half-trusted
        return fetch(url, dst, check=check, progress=progress, resume=False, user_agent="esrgan-zoo")
    except DownloadError as exc:
        dst.with_name(dst.name + ".part").unlink(missing_ok=True)  # nothing half-downloaded stays in the cache
        raise ZooError(f"cannot download {entry.name} from {url} ({exc}); {hint}") from exc


def download(
    name: str,
    *,
    base_url: str | None = None,
    cache: str | os.PathLike[str] | None = None,
    no_verify: bool = False,
    progress: bool = True,
) -> Path:
    """The cached file of zoo model ``name``, downloaded and verified first if needed."""
    if name not in ZOO:
        raise ZooError(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}")
    entry = ZOO[name]
    dst = Path(cache) if cache is not None else cache_dir()
    dst = dst / entry.filename
    if dst.is_file():
        if _marker_ok(dst) or not entry.expected:
            return dst
        digest = sha256_file(dst)  # placed by hand (or changed since): check it once; never delete it, it is not ours
        _check_digest(entry, digest, str(dst),
                      "the file was left as it is: replace it with the published file, or move it away to download "
                      "the model again")
        _write_marker(dst, digest)
        return dst
    if not entry.expected and not no_verify:
        raise ZooError(
            f"{name}: no published SHA-256 is known, so the download cannot be verified; run "
            f"'esrgan zoo download {name} --no-verify' to accept it (its digest is printed)"
        )
    digest = _download(entry, entry_url(entry, base_url), dst, verify=not no_verify, progress=progress)
    _write_marker(dst, digest)
    logger.info("%s saved to %s (sha256 %s)", name, dst, digest)
    return dst


def resolve_model_path(name_or_path: str | os.PathLike[str], **kwargs: object) -> Path:
    """A checkpoint path as it is, or a zoo name resolved to its cached (downloaded) file."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if str(name_or_path) in ZOO:
        return download(str(name_or_path), **kwargs)  # type: ignore[arg-type]
    raise FileNotFoundError(f"{name_or_path}: no such checkpoint file, and not a zoo model name ({', '.join(ZOO)})")
