"""LMDB backend: bit-exact round trip, BasicSR layout, lazy per-process handles, atomic creation, errors."""

from __future__ import annotations

import multiprocessing
import pickle
import re
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest

from esrgan.commands.prepare import main
from esrgan.data.image import ImageReadError, imread, imwrite, tensor2img
from esrgan.data.lmdb_backend import LmdbReader, iter_verify, read_meta_info, write_lmdb
from esrgan.data.paired_dataset import PairedImageDataset, SingleHRDataset
from esrgan.data.prepare import create_lmdb, verify_lmdb
from esrgan.imageops.imresize import imresize
from esrgan.options.datasets import DatasetOptions


def _images(folder: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    imgs = {
        "rgb": rng.integers(0, 256, (20, 24, 3), dtype=np.uint8),
        "grey": rng.integers(0, 256, (16, 12), dtype=np.uint8),
        "rgba": rng.integers(0, 256, (8, 8, 4), dtype=np.uint8),
        "deep": rng.integers(0, 65536, (12, 8, 3), dtype=np.uint16),
    }
    for name, img in imgs.items():
        imwrite(folder / f"{name}.png", img)
    return imgs


def test_round_trip_bit_exact_and_basicsr_layout(tmp_path):
    imgs = _images(tmp_path / "in")
    assert create_lmdb(tmp_path / "in", tmp_path / "x.lmdb", compress_level=3) == 4
    meta = (tmp_path / "x.lmdb" / "meta_info.txt").read_text().splitlines()
    assert meta == ["deep.png (12,8,3) 3", "grey.png (16,12,1) 3", "rgb.png (20,24,3) 3", "rgba.png (8,8,4) 3"]
    reader = LmdbReader(tmp_path / "x.lmdb")
    assert sorted(reader.keys()) == ["deep", "grey", "rgb", "rgba"]
    for name, img in imgs.items():
        out = reader.read_image(name)
        assert out.dtype == img.dtype
        np.testing.assert_array_equal(out, img)
    # Values are PNG bytes in OpenCV's BGR order, as BasicSR stores and reads them.
    raw = cv2.imdecode(np.frombuffer(reader.get("rgb"), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(raw[:, :, ::-1], imgs["rgb"])
    assert verify_lmdb(tmp_path / "x.lmdb") == []


def test_reads_lmdb_written_the_basicsr_way(tmp_path):
    """An LMDB made like BasicSR's make_lmdb_from_imgs (cv2.imencode of BGR, '(h,w,c) level' lines)."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)
    path = tmp_path / "b.lmdb"
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        png = cv2.imencode(".png", rgb[:, :, ::-1].copy(), [cv2.IMWRITE_PNG_COMPRESSION, 1])[1]
        txn.put(b"0001_s001", png.tobytes())
    env.close()
    (path / "meta_info.txt").write_text("0001_s001.png (10,14,3) 1\n")
    entry = read_meta_info(path)[0]
    assert (entry.name, entry.key, entry.shape, entry.compression) == ("0001_s001.png", "0001_s001", (10, 14, 3), 1)
    np.testing.assert_array_equal(LmdbReader(path).read_image("0001_s001"), rgb)


def test_reader_opens_lazily_per_process(tmp_path):
    _images(tmp_path / "in")
    create_lmdb(tmp_path / "in", tmp_path / "x.lmdb")
    reader = LmdbReader(tmp_path / "x.lmdb")
    assert not reader.is_open  # nothing opened in __init__
    first = reader.read_image("rgb")
    assert reader.is_open
    # A second reader (e.g. train and val on one LMDB) shares the handle: py-lmdb forbids two opens.
    np.testing.assert_array_equal(LmdbReader(tmp_path / "x.lmdb").read_image("rgb"), first)
    clone = pickle.loads(pickle.dumps(reader))  # what a spawned worker / DDP process receives
    np.testing.assert_array_equal(clone.read_image("rgb"), first)
    # A forked child inherits the parent's open handle and must open its own.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        child = pool.apply(_read_in_child, (reader, "rgb"))
    np.testing.assert_array_equal(child, first)
    reader.close()
    assert not reader.is_open
    np.testing.assert_array_equal(reader.read_image("rgb"), first)  # reopens


def _read_in_child(reader: LmdbReader, key: str) -> np.ndarray:
    return reader.read_image(key)


def _paired_lmdbs(tmp_path: Path, n: int = 6, size: int = 32) -> tuple[Path, Path]:
    rng = np.random.default_rng(2)
    for i in range(n):
        hr = rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
        imwrite(tmp_path / "hr" / f"{i:04d}_s001.png", hr)
        imwrite(tmp_path / "lr" / f"{i:04d}_s001.png", imresize(hr, 1 / 4))
    create_lmdb(tmp_path / "hr", tmp_path / "hr.lmdb")
    create_lmdb(tmp_path / "lr", tmp_path / "lr.lmdb")
    return tmp_path / "hr.lmdb", tmp_path / "lr.lmdb"


def test_lmdb_dataset_equals_folder_dataset(tmp_path):
    import random

    hr, lr = _paired_lmdbs(tmp_path)
    common = dict(scale=4, gt_size=16)
    from_lmdb = PairedImageDataset(
        DatasetOptions(dataroot_gt=str(hr), dataroot_lq=str(lr), io_backend={"type": "lmdb"}, **common)
    )
    from_disk = PairedImageDataset(
        DatasetOptions(dataroot_gt=str(tmp_path / "hr"), dataroot_lq=str(tmp_path / "lr"), **common)
    )
    assert len(from_lmdb) == len(from_disk) == 6
    for i in range(6):
        random.seed(i)
        a = from_lmdb[i]
        random.seed(i)
        b = from_disk[i]
        assert a["gt_path"] == f"{hr}/{i:04d}_s001"
        assert np.array_equal(tensor2img(a["gt"]), tensor2img(b["gt"]))
        assert np.array_equal(tensor2img(a["lq"]), tensor2img(b["lq"]))
    single = SingleHRDataset(DatasetOptions(type="SingleHRDataset", dataroot_gt=str(hr), io_backend={"type": "lmdb"},
                                            phase="val"))  # fmt: skip
    np.testing.assert_array_equal(tensor2img(single[0]["gt"]), imread(tmp_path / "hr" / "0000_s001.png"))


# ------------------------------------------------------------------ errors


def test_lmdb_without_meta_info(tmp_path):
    hr, lr = _paired_lmdbs(tmp_path, n=1)
    (hr / "meta_info.txt").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(hr / "meta_info.txt")) + ": meta-info file missing"):
        PairedImageDataset(DatasetOptions(dataroot_gt=str(hr), dataroot_lq=str(lr), io_backend={"type": "lmdb"},
                                          gt_size=16))  # fmt: skip


def test_meta_info_unparsable_line(tmp_path):
    hr, _ = _paired_lmdbs(tmp_path, n=1)
    (hr / "meta_info.txt").write_text("0000_s001.png (32,40,3) 1\nbroken line here\n")
    with pytest.raises(ValueError, match=r"meta_info.txt:2: cannot parse 'broken line here'"):
        read_meta_info(hr)


def test_undecodable_and_missing_keys(tmp_path):
    hr, lr = _paired_lmdbs(tmp_path, n=2)
    env = lmdb.open(str(lr), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"0001_s001", b"\x89PNG garbage")
    env.close()
    opt = DatasetOptions(dataroot_gt=str(hr), dataroot_lq=str(lr), io_backend={"type": "lmdb"}, gt_size=16)
    ds = PairedImageDataset(opt)
    with pytest.raises(ImageReadError, match=re.escape(f"{lr}[0001_s001]: cannot decode image data")):
        ds[1]
    ds._readers["lq"].close()
    env = lmdb.open(str(lr), map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.delete(b"0000_s001")
    env.close()
    # a key listed in meta_info.txt but missing: found when the dataset is built, one line naming LMDB and key
    with pytest.raises(KeyError, match=re.escape(f"{lr}: key '0000_s001' listed in meta_info.txt is not in data.mdb")):
        PairedImageDataset(opt)
    errors = verify_lmdb(lr)
    assert len(errors) == 2
    assert "0000_s001" in errors[0] and "0001_s001" in errors[1] and "cannot decode" in errors[1]


def test_verify_detects_shape_mismatch(tmp_path):
    hr, _ = _paired_lmdbs(tmp_path, n=2)
    (hr / "meta_info.txt").write_text("0000_s001.png (32,40,3) 1\n0001_s001.png (33,40,3) 1\n")
    results = list(iter_verify(hr))
    assert results[0][1] is None
    assert "decodes to shape (32,40,3) but meta_info.txt records (33,40,3)" in results[1][1]
    assert main(["verify-lmdb", str(hr)]) == 1


def test_lmdb_pair_shape_mismatch_and_missing_partner_found_up_front(tmp_path):
    hr, lr = _paired_lmdbs(tmp_path, n=2)
    (lr / "meta_info.txt").write_text("0000_s001.png (8,10,3) 1\n0001_s001.png (9,10,3) 1\n")
    opt = DatasetOptions(dataroot_gt=str(hr), dataroot_lq=str(lr), io_backend={"type": "lmdb"}, gt_size=16)
    mismatch = r"LR/HR size mismatch for key '0001_s001'.*\(9,10\), x4 = \(36,40\).*\(32,40\)"
    with pytest.raises(ValueError, match=mismatch):
        PairedImageDataset(opt)
    (lr / "meta_info.txt").write_text("0000_s001.png (8,10,3) 1\n")
    with pytest.raises(KeyError, match=r"HR key '0001_s001' .* has no LR partner"):
        PairedImageDataset(opt)


def test_patch_larger_than_lmdb_image_found_up_front(tmp_path):
    hr, lr = _paired_lmdbs(tmp_path, n=1)
    with pytest.raises(ValueError, match=r"patch larger than image: .*0000_s001 is 40x32 \(WxH\) but gt_size is 48"):
        PairedImageDataset(DatasetOptions(dataroot_gt=str(hr), dataroot_lq=str(lr), io_backend={"type": "lmdb"},
                                          gt_size=48))  # fmt: skip


# ------------------------------------------------------------------ creation: refuse, overwrite, atomic


def test_create_refuses_existing_unless_overwrite(tmp_path, capsys):
    imgs = _images(tmp_path / "in")
    create_lmdb(tmp_path / "in", tmp_path / "x.lmdb")
    with pytest.raises(FileExistsError, match="already exists; pass --overwrite"):
        create_lmdb(tmp_path / "in", tmp_path / "x.lmdb")
    rc = main(["create-lmdb", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "x.lmdb"), "--workers", "1"])
    assert rc == 1 and "already exists; pass --overwrite" in capsys.readouterr().err
    (tmp_path / "in" / "rgba.png").unlink()
    assert main(["create-lmdb", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "x.lmdb"), "--overwrite",
                 "--workers", "2"]) == 0  # fmt: skip
    assert [e.key for e in read_meta_info(tmp_path / "x.lmdb")] == ["deep", "grey", "rgb"]
    np.testing.assert_array_equal(LmdbReader(tmp_path / "x.lmdb").read_image("deep"), imgs["deep"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "x.lmdb"]  # no leftovers


def test_interrupted_write_leaves_no_lmdb(tmp_path):
    def items():
        yield "a", b"x" * 10, (1, 1, 1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_lmdb(items(), tmp_path / "x.lmdb", 1 << 22, 1)
    assert list(tmp_path.iterdir()) == []


def test_map_grows_when_estimate_is_short(tmp_path):
    big = np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8)  # incompressible: ~197 kB
    for i in range(4):
        imwrite(tmp_path / "in" / f"{i}.png", big)
    create_lmdb(tmp_path / "in", tmp_path / "x.lmdb", map_size=64 * 4096)
    assert verify_lmdb(tmp_path / "x.lmdb") == []


def test_duplicate_keys_rejected(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    imwrite(tmp_path / "in" / "a.png", img)
    imwrite(tmp_path / "in" / "a.bmp", img)
    with pytest.raises(ValueError, match=r"a.png and .*a.bmp both give the LMDB key 'a'|a.bmp and .*a.png both give"):
        create_lmdb(tmp_path / "in", tmp_path / "x.lmdb")


def _png_row_filters(png: bytes) -> set[int]:
    """The PNG row filter types used in a non-interlaced 8-bit PNG."""
    import struct
    import zlib

    pos, idat, width, channels = 8, b"", 0, 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, channels = struct.unpack(">I", body[:4])[0], {0: 1, 2: 3, 4: 2, 6: 4}[body[9]]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    rows = zlib.decompress(idat)
    stride = 1 + width * channels
    return {rows[i] for i in range(0, len(rows), stride)}


@pytest.mark.parametrize(("level", "filters", "lossless_size"), [(1, {2}, False), (0, {0}, True)])
def test_lmdb_values_are_encoded_for_decode_speed(tmp_path, level, filters, lossless_size):
    """Level >= 1: every row Up-filtered (no Paeth, whose un-filtering dominates decoding); level 0: unfiltered."""
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[:96, :128])
    imwrite(tmp_path / "in" / "photo.png", photo)
    create_lmdb(tmp_path / "in", tmp_path / "x.lmdb", compress_level=level)
    reader = LmdbReader(tmp_path / "x.lmdb")
    value = reader.get("photo")
    assert _png_row_filters(value) == filters
    np.testing.assert_array_equal(reader.read_image("photo"), photo)
    # Level 0 stores the rows as they are (the raw bytes plus a filter byte a row and headers).
    assert (len(value) >= photo.nbytes) == lossless_size
    assert (tmp_path / "x.lmdb" / "meta_info.txt").read_text() == f"photo.png (96,128,3) {level}\n"


def test_missing_lmdb_says_not_found_and_how_to_build_it(tmp_path):
    from esrgan.data.lmdb_backend import LmdbReader

    with pytest.raises(FileNotFoundError, match=r"nope\.lmdb: LMDB not found; build it with 'esrgan prepare"):
        LmdbReader(tmp_path / "nope.lmdb")
