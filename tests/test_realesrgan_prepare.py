"""esrgan prepare degrade / multiscale / meta-info: reproducible real-world LR sets and Real-ESRGAN's data lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from esrgan.commands.prepare import main
from esrgan.data.build import build_dataset
from esrgan.data.image import imread, imwrite
from esrgan.options.datasets import DatasetOptions, RealESRGANDatasetOptions

FIXTURES = Path(__file__).parent / "fixtures" / "realesrgan"


@pytest.fixture()
def hr_dir(tmp_path, natural_image) -> Path:
    root = tmp_path / "HR"
    imwrite(root / "a.png", natural_image[:130, :101])  # not multiples of 4: mod-cropped to 128 x 100
    imwrite(root / "b.png", natural_image[200:296, 300:396])
    return root


def _degrade(hr: Path, out: Path, seed: int, *extra: str) -> int:
    return main(["degrade", "--input", str(hr), "--output", str(out), "--seed", str(seed), *extra])


def test_degrade_is_reproducible_per_image_and_pairs_exactly(hr_dir, tmp_path):
    preview = tmp_path / "preview.png"
    assert _degrade(hr_dir, tmp_path / "s0", 0, "--hr-output", str(tmp_path / "hr0"), "--preview", str(preview)) == 0
    assert _degrade(hr_dir, tmp_path / "s0again", 0) == 0
    assert _degrade(hr_dir, tmp_path / "s1", 1) == 0
    a = imread(tmp_path / "s0" / "a.png")
    assert a.shape == (32, 25, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, imread(tmp_path / "s0again" / "a.png"))
    assert not np.array_equal(a, imread(tmp_path / "s1" / "a.png"))
    # an image's LR depends on the seed and its name only, not on the other images of the folder
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "a.png").write_bytes((hr_dir / "a.png").read_bytes())
    assert _degrade(alone, tmp_path / "s0alone", 0) == 0
    np.testing.assert_array_equal(a, imread(tmp_path / "s0alone" / "a.png"))
    # degraded, not a plain downscale: far from the bicubic LR
    from esrgan.imageops.imresize import imresize

    bic = imresize(imread(tmp_path / "hr0" / "a.png"), 0.25)
    assert np.abs(bic.astype(float) - a).mean() > 2
    # the mod-cropped HR pairs with the LR as a validation set
    val = build_dataset(DatasetOptions(name="rw", phase="val", dataroot_gt=str(tmp_path / "hr0"),
                                       dataroot_lq=str(tmp_path / "s0")))
    item = val[0]
    assert tuple(item["gt"].shape) == (3, 128, 100) and tuple(item["lq"].shape) == (3, 32, 25)
    # one row per image: HR crop | LR of the same region, enlarged (a: 100 px, b: 96 px, 4 px apart)
    pic = imread(preview)
    assert pic.shape == (100 + 4 + 96, 2 * 100 + 4, 3)
    np.testing.assert_array_equal(pic[:100, :100], imread(tmp_path / "hr0" / "a.png")[12:112, :100])
    np.testing.assert_array_equal(pic[:100:4, 104::4], a[3:28])


def test_degrade_reads_a_published_option_file_and_refuses_bad_input(hr_dir, tmp_path, capsys):
    # the published x4plus recipe is the default: its option file gives the same LR
    assert _degrade(hr_dir, tmp_path / "default", 3) == 0
    assert _degrade(hr_dir, tmp_path / "file", 3, "--options", str(FIXTURES / "train_realesrgan_x4plus.yml")) == 0
    np.testing.assert_array_equal(imread(tmp_path / "default" / "b.png"), imread(tmp_path / "file" / "b.png"))
    assert _degrade(hr_dir, tmp_path / "default", 3) == 1  # non-empty output folder
    assert "--overwrite" in capsys.readouterr().err
    # the file is read as `esrgan train` reads it: a bad value in a published file is refused, naming the key
    bad = tmp_path / "bad.yml"
    bad.write_text((FIXTURES / "train_realesrgan_x4plus.yml").read_text().replace(
        "resize_prob: [0.2, 0.7, 0.1]", "resize_prob: [0.5, 0.5, 0.5]", 1))
    assert _degrade(hr_dir, tmp_path / "bad", 3, "--options", str(bad)) == 1
    err = capsys.readouterr().err
    assert "resize_prob" in err and "sum to 1" in err


def test_multiscale_and_meta_info_feed_realesrgan_dataset(tmp_path, natural_image):
    src = tmp_path / "DF2K" / "HR"
    imwrite(src / "0001.png", natural_image[:480, :360])
    out = tmp_path / "DF2K" / "multiscale"
    assert main(["multiscale", "--input", str(src), "--output", str(out), "--workers", "1"]) == 0
    sizes = {p.name: imread(p).shape[:2] for p in sorted(out.iterdir())}
    assert sizes == {"0001T0.png": (360, 270), "0001T1.png": (240, 180), "0001T2.png": (160, 120),
                     "0001T3.png": (533, 400)}
    meta = tmp_path / "DF2K" / "meta_info" / "meta.txt"
    assert main(["meta-info", "--input", str(src), str(out), "--output", str(meta)]) == 0
    lines = meta.read_text().splitlines()
    assert lines == ["HR/0001.png", "multiscale/0001T0.png", "multiscale/0001T1.png", "multiscale/0001T2.png",
                     "multiscale/0001T3.png"]
    opt = RealESRGANDatasetOptions.from_dict(
        {"name": "df2k", "dataroot_gt": str(tmp_path / "DF2K"), "meta_info": str(meta), "gt_size": 64,
         "crop_pad_size": 128}, "datasets.train")
    ds = build_dataset(opt)
    assert len(ds) == 5 and tuple(ds[4]["gt"].shape) == (3, 128, 128)
    # paired lines for RealESRGANPairedDataset
    lq = tmp_path / "DF2K" / "LQ"
    imwrite(lq / "0001.png", natural_image[:120, :90])
    paired = tmp_path / "paired.txt"
    assert main(["meta-info", "--paired", "--input", str(src), str(lq), "--output", str(paired)]) == 0
    assert paired.read_text() == "HR/0001.png, LQ/0001.png\n"
