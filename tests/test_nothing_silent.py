"""Issue 13, silent wrong results: damaged videos fail (or, asked, skip and report the frames lost), photos
are read upright (EXIF orientation), and images over the pixel limit are refused from their header."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from esrgan.cli import main as esrgan_main
from esrgan.data.image import (
    MAX_PIXELS_ENV,
    ImageTooLargeError,
    apply_orientation,
    imdecode,
    imread,
    imwrite,
    probe_image,
)

# ---- damaged videos --------------------------------------------------------------------------------


def _frames(path: Path) -> int:
    """Frames that decode, going past packets that do not."""
    import av

    n = 0
    with av.open(str(path)) as c:
        for packet in c.demux(video=0):
            try:
                n += len(packet.decode())
            except av.FFmpegError:
                continue
    return n


@pytest.fixture(scope="module")
def damaged_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The probe's two cases: a truncated mkv and a truncated faststart mp4 (48 frames each, cut in half)."""
    av = pytest.importorskip("av")
    from synthetic_video import make_test_clip

    d = tmp_path_factory.mktemp("clips")
    mkv = make_test_clip(d / "whole.mkv", frames=48, width=32, height=24)
    mp4 = make_test_clip(d / "plain.mp4", frames=48, width=32, height=24)
    faststart = d / "whole.mp4"
    with av.open(str(mp4)) as src, av.open(str(faststart), "w", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    out = {}
    for name, whole in (("mkv", mkv), ("mp4", faststart)):
        data = whole.read_bytes()
        if name == "mp4":
            assert data.find(b"moov") < data.find(b"mdat")  # faststart: the index first
        out[name] = d / f"truncated.{name}"
        out[name].write_bytes(data[: len(data) // 2])
    out["whole"] = mkv
    return out


@pytest.mark.parametrize("kind", ["mkv", "mp4"])
def test_truncated_video_fails_and_writes_nothing(
    kind: str, damaged_clips: dict[str, Path], model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"out.{kind}"
    assert esrgan_main(["video", str(damaged_clips[kind]), "-o", str(out), "--model", str(model_file)]) == 1
    err = capsys.readouterr().err
    assert f"truncated.{kind}: damaged video" in err and "--skip-bad-frames" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no output, no temporary left


@pytest.mark.parametrize("kind", ["mkv", "mp4"])
def test_skip_bad_frames_writes_what_decodes_and_reports_the_loss(
    kind: str, damaged_clips: dict[str, Path], model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"out.{kind}"
    args = ["video", str(damaged_clips[kind]), "-o", str(out), "--model", str(model_file), "--skip-bad-frames"]
    assert esrgan_main(args) == 0
    written = _frames(out)
    # the frames that decode (a single-threaded decoder going packet by packet may recover one or two more)
    assert 0 < written <= _frames(damaged_clips[kind]) < 48
    err = capsys.readouterr().err
    lost = int(err.split("damaged input, ")[1].split(" frame(s) lost")[0])
    # mp4 lists its 48 frames; mkv's count is estimated from its duration (1.94 s at 25 fps: 49)
    assert lost == (48 if kind == "mp4" else 49) - written
    assert f"wrote the {written} of about" in err


def test_a_whole_video_reports_no_problem(damaged_clips: dict[str, Path], model_file: Path, tmp_path: Path) -> None:
    from esrgan.inference import Upscaler
    from esrgan.inference.video import upscale_video

    up = Upscaler(model_file, device="cpu")
    stats = upscale_video(up, damaged_clips["whole"], tmp_path / "o.mkv", show_progress=False)
    assert stats.frames == 48 and stats.decode_problems == [] and stats.frames_lost == 0


# ---- EXIF orientation ------------------------------------------------------------------------------


def _quadrants() -> np.ndarray:
    img = np.zeros((40, 64, 3), np.uint8)  # landscape as stored, four distinct blocks
    img[:20, :32], img[:20, 32:], img[20:, :16], img[20:, 16:] = (250, 0, 0), (0, 250, 0), (0, 0, 250), 128
    return img


def _jpeg_with_orientation(img: np.ndarray, orientation: int) -> bytes:
    from PIL import Image

    im = Image.fromarray(img)
    exif = im.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_image_viewers_do(orientation: int) -> None:
    from PIL import Image, ImageOps

    data = _jpeg_with_orientation(_quadrants(), orientation)
    assert probe_image(data) == (64, 40, orientation)
    ours = imdecode(data)
    viewer = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))  # Pillow's reference
    assert ours.shape == viewer.shape == ((40, 64, 3) if orientation <= 4 else (64, 40, 3))
    assert np.abs(ours.astype(int) - viewer).max() <= 2
    # and the transform itself, on exact pixels
    flipped = {2: _quadrants()[:, ::-1], 3: _quadrants()[::-1, ::-1], 6: np.rot90(_quadrants(), -1),
               8: np.rot90(_quadrants(), 1)}
    if orientation in flipped:
        np.testing.assert_array_equal(apply_orientation(_quadrants(), orientation), flipped[orientation])


def test_portrait_photo_upscales_upright(tmp_path: Path, model_file: Path) -> None:
    """The probe: a portrait photo (stored landscape + orientation 6) came out landscape."""
    src = tmp_path / "portrait.jpg"
    src.write_bytes(_jpeg_with_orientation(_quadrants(), 6))
    assert esrgan_main(["upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(model_file)]) == 0
    out_file = tmp_path / "out" / "portrait_x4.jpg"
    out = imread(out_file)
    assert out.shape == (256, 160, 3)  # upright: 64 x 40 portrait, x4
    assert probe_image(out_file.read_bytes())[2] == 1  # no orientation tag left to turn it again
    # the top-right quadrant of the upright photo is the stored top-left (red) block turned
    assert out[:128, 80:].mean(axis=(0, 1)).argmax() == 0


# ---- pixel limit before decoding ---------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)  # a few rows only: the file is tiny, the header claims a lot
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_huge_png_is_refused_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_file: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(20000, 20000))
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png: 20000x20000 = 400 megapixels is over the limit"):
        imread(bomb)
    assert esrgan_main(["upscale", str(bomb), "-o", str(tmp_path / "o"), "--model", str(model_file)]) == 1
    assert f"over the limit of 179 megapixels; not decoded (set {MAX_PIXELS_ENV}" in capsys.readouterr().err
    # configurable: a lower limit refuses a real small image; 0 = no limit
    small = tmp_path / "small.png"
    imwrite(small, np.zeros((30, 40, 3), np.uint8))
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    with pytest.raises(ImageTooLargeError, match="40x30"):
        imread(small)
    assert imread(small, max_pixels=0).shape == (30, 40, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "0")
    assert imread(small).shape == (30, 40, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match=MAX_PIXELS_ENV):
        imread(small)


@pytest.mark.parametrize("fmt", [".webp", ".bmp", ".tif"])
def test_pixel_limit_reads_other_formats_headers(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / f"x{fmt}"
    imwrite(path, np.zeros((30, 40, 3), np.uint8))
    assert probe_image(path.read_bytes())[:2] == (40, 30)
    monkeypatch.setenv(MAX_PIXELS_ENV, "1199")
    with pytest.raises(ImageTooLargeError):
        imread(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, "1200")
    assert imread(path).shape == (30, 40, 3)
