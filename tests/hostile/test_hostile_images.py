"""Image files of every hostile kind, through the one reader (``esrgan.data.image``) and the commands on it.

What must happen: a bad file is one ``ImageReadError`` (one line in a command) naming it, a file that lies
about its size or format is refused from its header without being decoded, an odd but valid file is read as
stored (and upright), a FIFO never blocks; for any bytes at all the reader returns an 8/16-bit image within
the pixel limit or its own error, nothing else (Hypothesis).
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from corpus import BAD_IMAGES, DAMAGED_DATA, ODD_IMAGES, odd_paths, png_bomb, png_with_exif, radiance_hdr, rgb
from harness import Arena
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inproc import assert_names, call

from esrgan.data.image import (
    MAX_PIXELS_ENV,
    ImageReadError,
    imdecode,
    imencode,
    imread,
    imwrite,
    inspect_image_file,
    is_image_file,
    probe_image,
)

pytestmark = pytest.mark.slow

# Refused from the header or the file's first bytes: OpenCV's decoder is never reached.
NOT_DECODED = {n for n in BAD_IMAGES if n.startswith(("huge-", "radiance", "empty", "text", "zeros", "png-signature",
                                                      "riff-"))} | {"float.pfm", "rgb.pam"}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    return {name: _write(folder / name, build()) for name, build in BAD_IMAGES.items()}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _no_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("cv2.imdecode was reached: the file should have been refused from its header")

    monkeypatch.setattr(cv2, "imdecode", refuse)


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_image_is_one_error_naming_it_in_every_reader(name: str, bad_files: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = bad_files[name]
    if name in NOT_DECODED:
        _no_decode(monkeypatch)
    with pytest.raises(ImageReadError, match=name.replace(".", r"\.")) as err:
        imread(path)
    assert "\n" not in str(err.value)
    with pytest.raises(ImageReadError, match="lmdb-key-1"):
        imdecode(path.read_bytes(), name="lmdb-key-1")
    if name in DAMAGED_DATA:  # the header check before training cannot see damage inside the data
        assert inspect_image_file(path) == (32, 24)
    else:
        with pytest.raises(ImageReadError, match=name.replace(".", r"\.")):
            inspect_image_file(path)


@pytest.mark.hostile("correct")
@pytest.mark.parametrize("name", sorted(ODD_IMAGES))
def test_odd_but_valid_image_is_read_as_stored(name: str, tmp_path: Path) -> None:
    build, shape, dtype = ODD_IMAGES[name]
    path = _write(tmp_path / name, build())
    img = imread(path)
    assert img.shape == shape and img.dtype == dtype
    assert inspect_image_file(path) == (shape[1], shape[0])  # (width, height) as imread returns it
    np.testing.assert_array_equal(imdecode(path.read_bytes()), img)


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("name", ["folder.png", "fifo.png", "dangling.png", "loop.png", "unreadable.png"])
def test_file_system_oddity_named_like_an_image(name: str, tmp_path: Path) -> None:
    path = odd_paths(tmp_path / "odd")[name]
    for reader in (imread, inspect_image_file):
        errors: list[BaseException] = []
        worker = threading.Thread(target=_catch, args=(errors, reader, path), daemon=True)
        worker.start()
        worker.join(10)
        if worker.is_alive():  # blocked on the FIFO: give it an end of file, then fail
            with open(path, "wb"):
                pass
            worker.join(5)
            pytest.fail(f"{reader.__name__}({name}) blocked (a FIFO read without a writer)")
        assert len(errors) == 1 and isinstance(errors[0], ImageReadError), errors
        assert str(path) in str(errors[0]) or path.name in str(errors[0]) or "/proc/" in str(errors[0])


def _catch(errors: list[BaseException], reader, path: Path) -> None:
    try:
        reader(path)
    except BaseException as exc:
        errors.append(exc)


@pytest.mark.hostile("correct")
@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_exif_orientation_is_applied_like_jpeg_and_viewers(orientation: int) -> None:
    from PIL import Image, ImageOps

    img = rgb(20, 36)
    data = png_with_exif(img, orientation)
    viewer = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    ours = imdecode(data)
    np.testing.assert_array_equal(ours, viewer)
    jpeg = np.asarray(Image.open(io.BytesIO(data)))  # as stored: the orientation is not applied by Pillow's open
    assert jpeg.shape == img.shape


# ---- property-based: any bytes -> an 8/16-bit image within the limit, or ImageReadError ----------------------

_LIMIT = 64 * 64
_SEEDS = {ext: imencode(rgb(12, 10), ext) for ext in (".png", ".jpg", ".webp", ".bmp", ".tif", ".ppm")}
_SEEDS[".gif"] = ODD_IMAGES["animated.gif"][0]()
_SEEDS[".exif.png"] = png_with_exif(rgb(12, 10), 6)


def _judge(data: bytes) -> None:
    assert probe_image(data) is None or len(probe_image(data)) == 3  # never raises
    try:
        img = imdecode(data, name="fuzz", max_pixels=_LIMIT)
    except ImageReadError as exc:
        assert "fuzz" in str(exc) and "\n" not in str(exc)
        return
    assert img.dtype in (np.uint8, np.uint16)
    assert img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (3, 4))
    assert img.shape[0] * img.shape[1] <= _LIMIT, f"decoded {img.shape} past the pixel limit of {_LIMIT}"


@pytest.mark.hostile("refused")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_fuzz_reader_random_bytes(data: bytes) -> None:
    _judge(data)


@pytest.mark.hostile("refused")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(_SEEDS)), st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=6),
       st.one_of(st.none(), st.integers(0, 4096)), st.binary(max_size=16))
def test_fuzz_reader_damaged_images(seed: str, flips: list[tuple[int, int]], cut: int | None, tail: bytes) -> None:
    data = bytearray(_SEEDS[seed])
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    data = data[:cut] if cut is not None else data
    _judge(bytes(data) + tail)


@pytest.mark.hostile("refused")
@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["png", "jpg", "webp", "bmp", "tif", "gif"]), st.integers(1, 70000), st.integers(1, 70000))
def test_fuzz_declared_size_is_checked_before_decoding(fmt: str, width: int, height: int) -> None:
    """Whatever size a header declares, the reader never decodes more than the limit."""
    from corpus import bmp_claiming, gif_claiming, jpeg_header, png_header, tiff_claiming, webp_claiming

    build = {"png": png_header, "jpg": jpeg_header, "webp": webp_claiming, "bmp": bmp_claiming, "tif": tiff_claiming,
             "gif": gif_claiming}[fmt]
    if (fmt in ("jpg", "gif") and max(width, height) > 65535) or (fmt == "webp" and max(width, height) > 16384):
        return  # the format cannot say it
    _judge(build(width, height))


@pytest.mark.hostile("refused")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300), st.sampled_from([".png", ".jpg", ".webp", ".tif", ".bmp"]))
def test_fuzz_header_check_before_training(tmp_path: Path, data: bytes, ext: str) -> None:
    path = tmp_path / f"fuzz{ext}"
    path.write_bytes(_SEEDS[ext][:24] + data if data[:1] == b"\0" else data)
    try:
        w, h = inspect_image_file(path, max_pixels=_LIMIT)
    except ImageReadError as exc:
        assert str(path) in str(exc)
        return
    assert w * h <= _LIMIT


# ---- the commands on the reader -------------------------------------------------------------------------------


def _hostile_folder(arena: Arena) -> Path:
    folder = arena.work / "in"
    folder.mkdir()
    for name, build in BAD_IMAGES.items():
        _write(folder / name, build())
    imwrite(folder / "good.png", rgb(16, 16))
    arena.input(folder)
    return folder


@pytest.mark.hostile("refused")
def test_upscale_folder_of_hostile_images(arena: Arena, model_file: Path) -> None:
    """Every bad file named on its own line, the good one done, exit 1 at the end."""
    _hostile_folder(arena)
    result = call(arena, "upscale", "in", "-o", "out", "--model", str(model_file))
    result.assert_refused("failed")
    for name in filter(is_image_file, BAD_IMAGES):  # .hdr/.pfm/.pam are not image names: not listed
        assert_names(result, name)
    assert sorted(p.name for p in (arena.work / "out").iterdir()) == ["good_x4.png"]


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("name", ["radiance.png", "huge-header.jpg", "truncated.png", "float.tif"])
def test_test_command_names_a_bad_hr_image(arena: Arena, name: str) -> None:
    folder = arena.work / "hr"
    folder.mkdir()
    imwrite(folder / "a.png", rgb(64, 64))
    _write(folder / name, BAD_IMAGES[name]())
    arena.input(folder)
    result = call(arena, "test", "--hr", "hr", "--model", "bicubic", "--scale", "4", "--name", "t", "-q")
    result.assert_refused(name)


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("command", ["create-lmdb", "extract-subimages", "make-lr", "multiscale"])
def test_prepare_names_a_bad_image(arena: Arena, command: str) -> None:
    folder = arena.work / "hr"
    folder.mkdir()
    imwrite(folder / "a.png", rgb(64, 64))
    _write(folder / "radiance.png", BAD_IMAGES["radiance.png"]())
    arena.input(folder)
    extra = {"extract-subimages": ["--crop-size", "32", "--step", "16", "--thresh-size", "0"],
             "make-lr": ["--scale", "4"], "create-lmdb": [], "multiscale": []}[command]
    result = call(arena, "prepare", command, "--input", "hr", "--output", "out", "--workers", "1", *extra)
    result.assert_refused("radiance.png", "Radiance")
    assert not (arena.work / "out").exists() or command != "create-lmdb"


@pytest.mark.hostile("refused")
def test_lmdb_value_lying_about_its_size(arena: Arena) -> None:
    from esrgan.data.lmdb_backend import LmdbReader

    folder = arena.work / "hr"
    folder.mkdir()
    imwrite(folder / "a.png", rgb(16, 16))
    assert call(arena, "prepare", "create-lmdb", "--input", "hr", "--output", "x.lmdb", "--workers", "1").code == 0
    import lmdb

    with lmdb.open(str(arena.work / "x.lmdb"), map_size=2**24) as env, env.begin(write=True) as txn:
        txn.put(b"a", BAD_IMAGES["huge-header.png"]())
    with pytest.raises(ImageReadError, match=r"x\.lmdb\[a\]: 20000x20000 .* over the limit"):
        LmdbReader(arena.work / "x.lmdb").read_image("a")


@pytest.mark.hostile("refused")
def test_video_frames_over_the_pixel_limit(arena: Arena, model_file: Path) -> None:
    pytest.importorskip("av")
    from synthetic_video import make_test_clip

    clip = arena.input(make_test_clip(arena.work / "clip.mkv", frames=4, audio=None))
    result = call(arena, "video", clip.name, "-o", "out.mkv", "--model", str(model_file),
                  env={MAX_PIXELS_ENV: "1000"})
    result.assert_refused("clip.mkv", "64x48", "over the limit")
    assert not (arena.work / "out.mkv").exists()


# ---- in a process of its own: memory-bounded --------------------------------------------------------------------


@pytest.mark.hostile("refused")
def test_radiance_hdr_named_png_within_a_small_memory_limit(arena: Arena, model_file: Path) -> None:
    """The probe's case: a 16000 x 16000 Radiance file named .png was decoded for 42 s and 6.8 GB."""
    arena.input(_write(arena.work / "photo.png", radiance_hdr(16000, 16000)))
    result = arena.run("upscale", "photo.png", "-o", "out", "--model", str(model_file), memory_gb=4, timeout=60)
    result.assert_refused("failed 1")
    assert_names(result, "photo.png", "Radiance", "not supported")


@pytest.mark.hostile("refused")
def test_deflate_bomb_over_the_limit_within_a_small_memory_limit(arena: Arena, model_file: Path) -> None:
    arena.input(_write(arena.work / "bomb.png", png_bomb(2000)))
    result = arena.run("upscale", "bomb.png", "-o", "out", "--model", str(model_file), memory_gb=4, timeout=60,
                       env={MAX_PIXELS_ENV: str(1000 * 1000)})
    result.assert_refused("failed 1")
    assert_names(result, "bomb.png", "2000x2000", "over the limit")
    assert not (arena.work / "out").exists() or not any((arena.work / "out").iterdir())


@pytest.mark.hostile("refused")
def test_training_refuses_a_lying_hr_image_before_the_first_step(arena: Arena, tmp_path: Path) -> None:
    import yaml
    from tiny_training import make_tiny_data, tiny_options_dict

    data = make_tiny_data(arena.work / "data", n_train=2, n_val=1)
    _write(data / "train" / "HR" / "001.png", radiance_hdr(16000, 16000))
    arena.input(data)
    opt = tiny_options_dict(data, arena.work / "experiments", total_iter=2)
    (arena.work / "o.yml").write_text(yaml.safe_dump(opt))
    result = arena.run("train", "-opt", "o.yml", memory_gb=6, timeout=120)
    result.assert_refused("001.png")
    assert "Radiance" in result.err
    assert not list((arena.work / "experiments").rglob("*.pth"))


def test_corpus_names_are_unique_and_plain() -> None:
    """(Not a scenario.) The corpus's names double as file names in every scenario above."""
    names = list(BAD_IMAGES) + list(ODD_IMAGES)
    assert len(names) == len(set(names)) and all(os.sep not in n for n in names)
