"""NIQE against BasicSR's calculate_niqe (values recorded by tests/record_niqe_reference.py) and MATLAB."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from esrgan.metrics import niqe

REFERENCE = Path(__file__).parent / "data" / "niqe_basicsr.json"


@pytest.fixture(scope="module")
def reference_cases(shared_data):
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from record_niqe_reference import cases
    finally:
        sys.path.pop(0)
    arrays = {c["image"]: c["array"] for c in cases(shared_data)}
    return arrays, json.loads(REFERENCE.read_text())["records"]


def test_niqe_equals_basicsr_on_set5_set14(reference_cases):
    arrays, records = reference_cases
    assert {r["convert_to"] for r in records} == {"y", "gray"}
    assert len({r["image"] for r in records}) >= 10
    got = [niqe(arrays[r["image"]], crop_border=r["crop_border"], convert_to=r["convert_to"]) for r in records]
    want = [r["niqe"] for r in records]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)


def test_niqe_matches_matlab_published_example(shared_data):
    # MATLAB R2021a on BasicSR's test_scripts/data/baboon.png (its 480x480 scored part is Set14's baboon).
    from esrgan.data.image import imread

    img = imread(shared_data / "Set14" / "HR" / "baboon.png")
    assert niqe(img) == pytest.approx(5.72957338, abs=1e-4)


def test_niqe_prefers_sharp_to_blurred(natural_image):
    from esrgan.imageops.imresize import imresize

    blurred = imresize(imresize(natural_image, 0.25), 4.0)
    assert niqe(natural_image) < niqe(blurred) - 1.0


def test_niqe_grey_and_single_channel_and_uint16(natural_image):
    from esrgan.imageops.color import rgb2ycbcr

    y = np.round(rgb2ycbcr(natural_image, y_only=True)).astype(np.uint8)
    assert niqe(y) == pytest.approx(niqe(y[:, :, None]))
    assert niqe(natural_image) == pytest.approx(niqe(y), abs=1e-3)  # Y of the RGB image = the grey Y image
    as16 = natural_image.astype(np.uint16) * 257
    assert niqe(as16) == pytest.approx(niqe(natural_image))


def test_niqe_single_block_is_finite(natural_image):
    # MATLAB's cov of one observation is zero; one block must still give a number.
    assert np.isfinite(niqe(natural_image[:100, :100]))


def test_niqe_bad_input_errors(natural_image):
    with pytest.raises(ValueError, match=r"90x90 pixels \(after crop_border=5\) is smaller than one 96x96 block"):
        niqe(natural_image[:100, :100], crop_border=5)
    with pytest.raises(ValueError, match="convert_to"):
        niqe(natural_image, convert_to="rgb")
    with pytest.raises(ValueError, match="HW or HWC RGB"):
        niqe(np.zeros((128, 128, 4), np.uint8))
    with pytest.raises(ValueError, match="crop_border"):
        niqe(natural_image, crop_border=-1)


def test_niqe_of_a_flat_image_is_nan_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(niqe(np.full((200, 200, 3), 128, np.uint8)))
