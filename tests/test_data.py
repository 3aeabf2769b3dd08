"""Datasets, crops and augmentations: pairing, alignment, and every bad-input error."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest

from esrgan.data.build import build_dataset
from esrgan.data.image import ImageReadError, imread, imwrite, tensor2img
from esrgan.data.paired_dataset import PairedImageDataset, SingleHRDataset
from esrgan.data.transforms import Augmentation, augment_pair, paired_random_crop
from esrgan.imageops.imresize import imresize
from esrgan.options.datasets import DatasetOptions, IOBackendOptions

SCALE = 4


def _noise(h: int, w: int, seed: int, c: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, c) if c > 1 else (h, w), dtype=np.uint8)


def _write_pairs(root: Path, sizes: dict[str, tuple[int, int]], tmpl: str = "{}x4") -> tuple[Path, Path]:
    """HR noise images and their MATLAB-bicubic LR, named as DIV2K (``0001.png`` / ``0001x4.png``)."""
    hr_dir, lr_dir = root / "HR", root / "LR"
    for i, (name, (h, w)) in enumerate(sizes.items()):
        hr = _noise(h, w, i)
        imwrite(hr_dir / f"{name}.png", hr)
        imwrite(lr_dir / f"{tmpl.format(name)}.png", imresize(hr, 1 / SCALE))
    return hr_dir, lr_dir


def _opt(hr: Path, lr: Path | None, **kw) -> DatasetOptions:
    base = dict(dataroot_gt=str(hr), dataroot_lq=str(lr) if lr else None, scale=SCALE, gt_size=16)
    base.update(kw)
    return DatasetOptions(**base)


def _u8(t) -> np.ndarray:
    return tensor2img(t)


def _find(haystack: np.ndarray, needle: np.ndarray) -> list[tuple[int, int]]:
    ph, pw = needle.shape[:2]
    h, w = haystack.shape[:2]
    return [
        (y, x)
        for y in range(h - ph + 1)
        for x in range(w - pw + 1)
        if np.array_equal(haystack[y : y + ph, x : x + pw], needle)
    ]


# ------------------------------------------------------------------ options


def test_options_defaults_and_io_backend_mapping():
    opt = DatasetOptions(dataroot_gt="a", dataroot_lq="b", io_backend={"type": "lmdb"}, gt_size=128)
    assert opt.io_backend == IOBackendOptions("lmdb")
    assert opt.to_dict()["io_backend"] == {"type": "lmdb"}
    opt.validate("datasets.train")  # passes


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"io_backend": {"type": "hdf5"}}, "datasets.train.io_backend.type: 'hdf5' is not one of disk, lmdb"),
        ({"io_backend": {"type": "disk", "db_paths": "x"}}, "io_backend.db_paths: unknown key; allowed keys: type"),
        ({"gt_size": 130}, "datasets.train.gt_size: 130 is not divisible by scale 4"),
        ({"gt_size": None}, "datasets.train.gt_size: required for a training dataset"),
        ({"dataroot_lq": None}, "use type SingleHRDataset"),
        ({"type": "Foo"}, "datasets.train.type: 'Foo' is not one of PairedImageDataset, SingleHRDataset"),
        ({"prefetch_mode": "gpu"}, "datasets.train.prefetch_mode: 'gpu' is not one of null, cpu, cuda"),
        ({"prefetch_mode": "cuda", "pin_memory": False}, "datasets.train.pin_memory: must be true"),
        ({"phase": "training"}, "datasets.train.phase: 'training' is not one of train, val, test"),
        ({"batch_size_per_gpu": 0}, "datasets.train.batch_size_per_gpu: expected an integer >= 1, got 0"),
        ({"filename_tmpl": "x4"}, "datasets.train.filename_tmpl: 'x4' must contain '{}'"),
        ({"use_hflip": "yes"}, "datasets.train.use_hflip: expected true or false, got 'yes'"),
        ({"bogus": 1}, "datasets.train.bogus: unknown key; allowed keys: name, type, dataroot_gt"),
    ],
)
def test_options_errors_name_key_and_allowed_values(values, message):
    mapping = {"dataroot_gt": "a", "dataroot_lq": "b", "gt_size": 128, **values}
    with pytest.raises(ValueError) as info:
        DatasetOptions.from_dict(mapping, "datasets.train")
    assert message in str(info.value)


def test_options_validation_phase_dependent():
    val = DatasetOptions(dataroot_gt="a", dataroot_lq="b", phase="val")  # no gt_size needed
    val.validate("datasets.val")
    single = DatasetOptions(type="SingleHRDataset", dataroot_gt="a", dataroot_lq="b", gt_size=32)
    with pytest.raises(ValueError, match="SingleHRDataset makes LR images from HR"):
        single.validate("datasets.train")


# ------------------------------------------------------------------ pairing


def test_pairing_by_name_template_and_fallback(tmp_path):
    hr, lr = _write_pairs(tmp_path, {"0001": (32, 40), "0002": (36, 28)}, tmpl="{}x4")
    for tmpl in ("{}x4", "{}"):  # '{}' also accepts the DIV2K/benchmark 'x4' suffix
        ds = PairedImageDataset(_opt(hr, lr, phase="val", filename_tmpl=tmpl))
        assert [(Path(g.path).name, Path(q.path).name) for g, q in ds.pairs] == [
            ("0001.png", "0001x4.png"),
            ("0002.png", "0002x4.png"),
        ]
        item = ds[1]
        assert item["gt_path"] == str(hr / "0002.png") and item["lq_path"] == str(lr / "0002x4.png")
        np.testing.assert_array_equal(_u8(item["gt"]), imread(hr / "0002.png"))
        np.testing.assert_array_equal(_u8(item["lq"]), imread(lr / "0002x4.png"))


def test_pairing_same_names_and_meta_info_file(tmp_path):
    hr, lr = _write_pairs(tmp_path, {"a": (16, 16), "b": (16, 16), "c": (16, 16)}, tmpl="{}")
    meta = tmp_path / "meta.txt"
    meta.write_text("c.png (16,16,3)\na.png (16,16,3)\n")
    ds = PairedImageDataset(_opt(hr, lr, phase="val", meta_info_file=str(meta)))
    assert [Path(g.path).name for g, _ in ds.pairs] == ["c.png", "a.png"]
    assert [Path(q.path).name for _, q in ds.pairs] == ["c.png", "a.png"]


def test_val_items_whole_images_with_gt_mod_crop(tmp_path):
    hr = _noise(37, 42, 5)  # not multiples of 4, like Set14's comic
    imwrite(tmp_path / "HR" / "x.png", hr)
    lr = imresize(hr[:36, :40], 1 / SCALE)
    imwrite(tmp_path / "LR" / "x.png", lr)
    item = PairedImageDataset(_opt(tmp_path / "HR", tmp_path / "LR", phase="val"))[0]
    assert item["gt"].shape == (3, 36, 40) and item["lq"].shape == (3, 9, 10)
    np.testing.assert_array_equal(_u8(item["gt"]), hr[:36, :40])


def test_grey_images_become_rgb(tmp_path):
    hr = _noise(32, 32, 1, c=1)
    imwrite(tmp_path / "HR" / "g.png", hr)
    imwrite(tmp_path / "LR" / "g.png", imresize(hr, 1 / SCALE))
    item = PairedImageDataset(_opt(tmp_path / "HR", tmp_path / "LR", phase="val"))[0]
    assert item["gt"].shape == (3, 32, 32)
    for c in range(3):
        np.testing.assert_array_equal(_u8(item["gt"][c : c + 1]), hr)


def test_real_benchmark_pairs(shared_data):
    opt = DatasetOptions(
        dataroot_gt=str(shared_data / "Set14" / "HR"),
        dataroot_lq=str(shared_data / "Set14" / "LR_bicubic" / "X4"),
        phase="val",
    )
    ds = build_dataset(opt)
    assert len(ds) == 14
    comic = next(ds[i] for i in range(len(ds)) if ds[i]["gt_path"].endswith("comic.png"))
    assert comic["gt"].shape == (3, 360, 248) and comic["lq"].shape == (3, 90, 62)  # modcrop(250x361, 4)


# ------------------------------------------------------------------ crop alignment and augmentations


def test_train_crop_positions_are_aligned(tmp_path):
    hr_dir, lr_dir = _write_pairs(tmp_path, {"n": (48, 64)})
    hr, lr = imread(hr_dir / "n.png"), imread(lr_dir / "nx4.png")
    ds = PairedImageDataset(_opt(hr_dir, lr_dir, gt_size=16, use_hflip=False, use_rot=False))
    random.seed(0)
    corners = set()
    for _ in range(20):
        item = ds[0]
        gt, lq = _u8(item["gt"]), _u8(item["lq"])
        assert gt.shape == (16, 16, 3) and lq.shape == (4, 4, 3)
        (y, x), = _find(hr, gt)  # noise: the patch occurs exactly once
        assert y % SCALE == 0 and x % SCALE == 0
        np.testing.assert_array_equal(lq, lr[y // 4 : y // 4 + 4, x // 4 : x // 4 + 4])
        corners.add((y, x))
    assert len(corners) > 5  # the crops really are random


def test_lr_patch_is_exactly_the_bicubic_downscaled_hr_patch(tmp_path):
    """Away from the patch border (where imresize mirrors instead of seeing the neighbours) the LR
    patch cut from imresize(HR) equals imresize(HR patch) pixel for pixel.

    At x4 the antialiased cubic kernel spans 16 HR pixels: LR pixel j of a patch reads HR pixels
    4j-6 .. 4j+9, so LR pixels 2 .. n-3 see only pixels inside the patch.
    """
    hr_dir, lr_dir = _write_pairs(tmp_path, {"n": (96, 104)})
    ds = PairedImageDataset(_opt(hr_dir, lr_dir, gt_size=64, use_hflip=False, use_rot=False))
    random.seed(1)
    for _ in range(10):
        item = ds[0]
        gt, lq = _u8(item["gt"]), _u8(item["lq"])
        own = imresize(gt, 1 / SCALE)
        np.testing.assert_array_equal(lq[2:-2, 2:-2], own[2:-2, 2:-2])
        assert not np.array_equal(lq, own)  # the border really differs: the check above is not vacuous


def test_augmentations_preserve_pairing(tmp_path):
    hr_dir, lr_dir = _write_pairs(tmp_path, {"n": (40, 40)})
    hr, lr = imread(hr_dir / "n.png"), imread(lr_dir / "nx4.png")
    ds = PairedImageDataset(_opt(hr_dir, lr_dir, gt_size=16, use_hflip=True, use_rot=True))
    augs = [Augmentation(h, v, r) for h in (False, True) for v in (False, True) for r in (False, True)]
    seen = set()
    random.seed(2)
    for _ in range(60):
        item = ds[0]
        gt, lq = _u8(item["gt"]), _u8(item["lq"])
        # Which corner and which of the 8 dihedral transforms produced this GT patch?
        matches = [
            (aug, y, x)
            for aug in augs
            for y in range(0, 40 - 16 + 1, 4)
            for x in range(0, 40 - 16 + 1, 4)
            if np.array_equal(aug(hr[y : y + 16, x : x + 16]), gt)
        ]
        assert len(matches) == 1
        aug, y, x = matches[0]
        np.testing.assert_array_equal(lq, aug(lr[y // 4 : y // 4 + 4, x // 4 : x // 4 + 4]))
        seen.add(aug)
    assert len(seen) == 8


def test_augmentation_matches_rotations():
    img = _noise(6, 6, 0)
    ops = {Augmentation(h, v, r)(img).tobytes() for h in (0, 1) for v in (0, 1) for r in (0, 1)}
    dihedral = {np.rot90(f, k).tobytes() for f in (img, img[:, ::-1]) for k in range(4)}
    assert ops == dihedral
    a, b = augment_pair([img, img.copy()], rng=random.Random(3))
    np.testing.assert_array_equal(a, b)


def test_paired_random_crop_uses_given_rng():
    gt, lq = _noise(32, 32, 0), _noise(8, 8, 1)
    a = paired_random_crop(gt, lq, 16, 4, rng=random.Random(7))
    b = paired_random_crop(gt, lq, 16, 4, rng=random.Random(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# ------------------------------------------------------------------ HR-only mode


def test_single_hr_dataset_makes_lr_on_the_fly(tmp_path):
    hr = _noise(40, 44, 9)
    imwrite(tmp_path / "HR" / "h.png", hr)
    train = build_dataset(_opt(tmp_path / "HR", None, type="SingleHRDataset", gt_size=16))
    assert isinstance(train, SingleHRDataset)
    random.seed(0)
    for _ in range(5):
        item = train[0]
        gt, lq = _u8(item["gt"]), _u8(item["lq"])
        assert gt.shape == (16, 16, 3)
        np.testing.assert_array_equal(lq, imresize(gt, 1 / SCALE))
        assert item["lq_path"] == item["gt_path"] == str(tmp_path / "HR" / "h.png")
    val = build_dataset(_opt(tmp_path / "HR", None, type="SingleHRDataset", phase="val"))[0]
    np.testing.assert_array_equal(_u8(val["gt"]), hr[:40, :44])
    np.testing.assert_array_equal(_u8(val["lq"]), imresize(hr[:40, :44], 1 / SCALE))


# ------------------------------------------------------------------ bad input


def test_hr_without_lr_partner(tmp_path):
    hr, lr = _write_pairs(tmp_path, {"0001": (16, 16), "0002": (16, 16)})
    (lr / "0002x4.png").unlink()
    with pytest.raises(FileNotFoundError) as info:
        PairedImageDataset(_opt(hr, lr, filename_tmpl="{}x4"))
    msg = str(info.value)
    assert str(hr / "0002.png") in msg and str(lr / "0002x4.png") in msg and "'{}x4'" in msg


def test_lr_size_times_scale_not_hr_size(tmp_path):
    imwrite(tmp_path / "HR" / "a.png", _noise(32, 32, 0))
    imwrite(tmp_path / "LR" / "a.png", _noise(8, 7, 1))
    # training: found from the headers when the dataset is built, before the first step
    with pytest.raises(ValueError) as info:
        PairedImageDataset(_opt(tmp_path / "HR", tmp_path / "LR", phase="train"))
    msg = str(info.value)
    assert "LR/HR size mismatch" in msg and "7x8" in msg and "28x32" in msg and "32x32" in msg
    assert str(tmp_path / "HR" / "a.png") in msg and str(tmp_path / "LR" / "a.png") in msg
    ds = PairedImageDataset(_opt(tmp_path / "HR", tmp_path / "LR", phase="val"))
    with pytest.raises(ValueError) as info:
        ds[0]
    msg = str(info.value)
    assert "LR/HR size mismatch" in msg and "7x8" in msg and "28x32" in msg and "32x32" in msg
    assert str(tmp_path / "HR" / "a.png") in msg and str(tmp_path / "LR" / "a.png") in msg


def test_patch_larger_than_image(tmp_path):
    hr, lr = _write_pairs(tmp_path, {"small": (24, 40)})
    with pytest.raises(ValueError, match=r"patch larger than image: .*small.png is 40x24 \(WxH\) but gt_size is 32"):
        PairedImageDataset(_opt(hr, lr, gt_size=32))
    with pytest.raises(ValueError, match=r"patch larger than image: .*small.png is 40x24"):
        SingleHRDataset(_opt(hr, None, type="SingleHRDataset", gt_size=32))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_unreadable_or_truncated_image(tmp_path, damage):
    hr, lr = _write_pairs(tmp_path, {"a": (32, 32)})
    data = (hr / "a.png").read_bytes()
    broken = {"truncated": data[: len(data) // 2], "garbage": b"not a png at all", "empty": b""}[damage]
    (hr / "a.png").write_bytes(broken)
    # training: found from the header and the file's end when the dataset is built (before step 1)
    with pytest.raises(ImageReadError, match=re.escape(str(hr / "a.png"))):
        PairedImageDataset(_opt(hr, lr))
    ds = PairedImageDataset(_opt(hr, lr, phase="val"))  # validation: when read
    with pytest.raises(ImageReadError, match=re.escape(str(hr / "a.png"))):
        ds[0]


def test_missing_folder_and_empty_folder(tmp_path):
    (tmp_path / "HR").mkdir()
    (tmp_path / "LR").mkdir()
    with pytest.raises(ValueError, match="no HR images in"):
        PairedImageDataset(_opt(tmp_path / "HR", tmp_path / "LR"))
    with pytest.raises(FileNotFoundError, match=r"image folder not found: .*nope"):
        PairedImageDataset(_opt(tmp_path / "HR", tmp_path / "nope"))
