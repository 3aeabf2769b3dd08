"""Real-ESRGAN datasets: items, BasicSR-equal kernel draws, paired meta_info, and option checks naming the key."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from esrgan.data.build import build_dataset
from esrgan.data.image import imwrite
from esrgan.options.datasets import RealESRGANDatasetOptions

FIXTURE = Path(__file__).parent / "fixtures" / "realesrgan" / "basicsr_1.4.2.npz"


def _opts(root: Path, **kw) -> RealESRGANDatasetOptions:
    values = {"name": "rw", "type": "RealESRGANDataset", "dataroot_gt": str(root), "gt_size": 64, **kw}
    return RealESRGANDatasetOptions.from_dict(values, "datasets.train")


def test_items_are_hr_crops_with_three_kernels(tmp_path, natural_image):
    imwrite(tmp_path / "big.png", natural_image)
    imwrite(tmp_path / "small.png", natural_image[:300, :350])  # padded to 400 by reflection
    ds = build_dataset(_opts(tmp_path, use_hflip=False, use_rot=False))
    assert len(ds) == 2
    for i in range(2):
        item = ds[i]
        assert set(item) == {"gt", "kernel1", "kernel2", "sinc_kernel", "gt_path"}
        assert item["gt"].shape == (3, 400, 400) and item["gt"].min() >= 0 and item["gt"].max() <= 1
        for key in ("kernel1", "kernel2", "sinc_kernel"):
            assert item[key].shape == (21, 21)
            assert float(item[key].sum()) == pytest.approx(1.0, abs=1e-5)
    small = ds[1]["gt"].numpy()
    # reflect padding (REFLECT_101): row 300 mirrors row 298
    np.testing.assert_array_equal(small[:, 300], small[:, 298])


def test_kernel_draws_equal_basicsr_dataset(tmp_path, natural_image):
    """A 400x400 image without flips: the item's only draws are the kernels (as recorded from BasicSR)."""
    imwrite(tmp_path / "a.png", natural_image[:400, :400])
    ds = build_dataset(_opts(tmp_path, use_hflip=False, use_rot=False, sinc_prob2=0.1, blur_sigma2=[0.2, 1.5]))
    with np.load(FIXTURE) as ref:
        for s in range(8):
            random.seed(s)
            np.random.seed(s)
            item = ds[0]
            for key in ("kernel1", "kernel2", "sinc_kernel"):
                np.testing.assert_allclose(item[key].numpy(), ref[f"dataset/{s}/{key}"], atol=1e-7)
            np.testing.assert_array_equal((item["gt"].numpy() * 255).round().transpose(1, 2, 0),
                                          natural_image[:400, :400])


def test_paired_dataset_reads_realesrgan_meta_info(tmp_path, natural_image):
    (tmp_path / "hr" / "sub").mkdir(parents=True)
    (tmp_path / "lr").mkdir()
    imwrite(tmp_path / "hr" / "sub" / "x.png", natural_image[:128, :128])
    imwrite(tmp_path / "lr" / "x_lq.png", natural_image[:32, :32])
    meta = tmp_path / "meta.txt"
    meta.write_text("sub/x.png, x_lq.png\n")
    opt = _opts(tmp_path / "hr", type="RealESRGANPairedDataset", dataroot_lq=str(tmp_path / "lr"),
                meta_info=str(meta))
    item = build_dataset(opt)[0]
    assert item["gt"].shape == (3, 64, 64) and item["lq"].shape == (3, 16, 16)
    meta.write_text("sub/x.png, missing.png\n")
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        build_dataset(opt)


@pytest.mark.parametrize(
    ("override", "key", "words"),
    [
        ({"kernel_prob": [0.5, 0.25, 0.12, 0.03, 0.12, 0.03]}, "datasets.train.kernel_prob", "sum to 1"),
        ({"kernel_prob2": [0.5, 0.5]}, "datasets.train.kernel_prob2", "2 probabilities for 6"),
        ({"blur_kernel_size": 20}, "datasets.train.blur_kernel_size", "odd"),
        ({"blur_kernel_size2": 801}, "datasets.train.blur_kernel_size2", "too large"),
        ({"blur_sigma": [3.0, 0.2]}, "datasets.train.blur_sigma", "min 3.0 > max 0.2"),
        ({"betap_range2": [2, 1]}, "datasets.train.betap_range2", "min 2.0 > max 1.0"),
        ({"kernel_list": ["iso", "box"], "kernel_prob": [0.5, 0.5]}, "datasets.train.kernel_list", "box"),
        ({"final_sinc_prob": 1.5}, "datasets.train.final_sinc_prob", "probability"),
        ({"gt_size": 512}, "datasets.train.gt_size", "crop_pad_size"),
    ],
)
def test_bad_options_name_the_key(tmp_path, override, key, words):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")) as info:
        _opts(tmp_path, **override)
    assert words in str(info.value)
