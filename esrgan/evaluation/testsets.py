"""Test sets: HR folders, optionally paired with LR folders, read as (name, HR, LR) triples.

Conventions (as the SR literature's MATLAB scripts): the HR image is mod-cropped to the
scale (``modcrop``); a paired LR image must be exactly the mod-cropped HR size divided by
the scale; HR-only sets get their LR made on the fly with MATLAB bicubic
(``imresize(modcrop(HR, s), 1/s)``). Images are kept as stored: HW for grey, HWC RGB,
RGBA reduced to RGB (alpha is not scored).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from esrgan.data.image import IMAGE_EXTENSIONS, imread, list_images, mod_crop
from esrgan.options.errors import OptionsError
from esrgan.utils.folders import check_folder_name

if TYPE_CHECKING:
    from esrgan.options.testing import TestOptions

logger = logging.getLogger("esrgan.evaluation.testsets")


@dataclass(frozen=True)
class TestSet:
    """One test set. ``filename_tmpl`` maps an HR stem to its LR stem (BasicSR's key);
    ``None`` tries ``{}`` and ``{}x<scale>`` (the EDSR benchmark naming, ``babyx4.png``)."""

    name: str
    hr_dir: Path
    lr_dir: Path | None = None
    filename_tmpl: str | None = None

    __test__ = False  # not a pytest test class despite the name


@dataclass
class TestImage:
    name: str  # HR file stem
    hr: np.ndarray  # mod-cropped, HW or HWC RGB, as stored dtype
    lr: np.ndarray  # HW or HWC RGB, same dtype and layout as hr
    hr_path: Path
    lr_path: Path | None  # None when made on the fly

    __test__ = False

    @property
    def is_grey(self) -> bool:
        return self.hr.ndim == 2


def make_test_set(name: str | None, hr_dir: str | Path, lr_dir: str | Path | None = None,
                  filename_tmpl: str | None = None) -> TestSet:
    """A TestSet with folders checked now, so a typo fails before any model is loaded."""
    hr_dir = Path(hr_dir)
    if not hr_dir.is_dir():
        raise FileNotFoundError(f"test set {name or hr_dir}: HR folder not found: {hr_dir}{missing_hint(hr_dir)}")
    lr_path = None
    if lr_dir is not None:
        lr_path = Path(lr_dir)
        if not lr_path.is_dir():
            raise FileNotFoundError(
                f"test set {name or hr_dir}: LR folder not found: {lr_path}{missing_hint(lr_path, lr=True)}"
            )
    if name is None:
        # datasets/Set5/HR -> "Set5"; a folder not called HR names the set itself. Resolved first, so that
        # 'imgs/sub/..' names the set 'imgs', not '..'.
        real = hr_dir.resolve()
        name = real.parent.name if real.name.upper() in ("HR", "GT") and real.parent.name else real.name
    check_folder_name(name, "test set name")  # it becomes <run>/<name>/
    if filename_tmpl is not None and "{}" not in filename_tmpl:
        raise ValueError(f"test set {name}: filename_tmpl must contain '{{}}', got {filename_tmpl!r}")
    return TestSet(name=name, hr_dir=hr_dir, lr_dir=lr_path, filename_tmpl=filename_tmpl)


def missing_hint(folder: Path, *, lr: bool = False) -> str:
    """How to get a missing test-set folder: the download command for a set we know, else what to put there."""
    where = "" if folder.is_absolute() else f" (relative to the current folder {Path.cwd()})"
    what = "LR images named like the HR ones (or leave the LR folder out for bicubic LR)" if lr else "HR images"
    return where + (_download_hint(folder) or f"; expected a folder of {what}")


def _download_hint(folder: Path) -> str:
    from esrgan.data.download import DATASETS

    known = next((part for part in folder.parts if part in DATASETS), None)
    return f"; get it with: esrgan prepare download {known}" if known else ""


def sets_from_options(opt: TestOptions) -> list[TestSet]:
    """The test sets of a test or sweep option file (or of ``--hr``/``--lr`` flags), folders checked now; errors
    name the file and key (a flag's folder is named in the message itself)."""
    sets = []
    for key, ds in opt.datasets.items():
        try:
            sets.append(make_test_set(ds.name, ds.dataroot_gt, ds.dataroot_lq, ds.filename_tmpl))
        except (FileNotFoundError, ValueError) as exc:
            if "datasets" in opt.flags:
                raise
            raise OptionsError(str(exc), key=f"datasets.{key}", file=opt.source) from None
    return sets


def _strip_alpha(img: np.ndarray) -> np.ndarray:
    return img[:, :, :3] if img.ndim == 3 and img.shape[2] == 4 else img


def _find_lr(hr_path: Path, lr_files: dict[str, Path], templates: list[str], set_name: str) -> Path:
    stem = hr_path.stem
    for tmpl in templates:
        hit = lr_files.get(tmpl.format(stem))
        if hit is not None:
            return hit
    tried = ", ".join(repr(t.format(stem) + ".*") for t in templates)
    raise FileNotFoundError(f"test set {set_name}: no LR image for HR {hr_path.name} (looked for {tried})")


def hr_paths(test_set: TestSet) -> list[Path]:
    paths = list_images(test_set.hr_dir)
    if not paths:
        raise ValueError(
            f"test set {test_set.name}: no images in {test_set.hr_dir} (expected files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)}){_download_hint(test_set.hr_dir)}"
        )
    return paths


def iter_test_images(test_set: TestSet, scale: int) -> Iterator[TestImage]:
    """Yield the set's images in file-name order, HR mod-cropped, LR read or made."""
    paths = hr_paths(test_set)
    lr_files: dict[str, Path] = {}
    templates: list[str] = []
    if test_set.lr_dir is not None:
        lr_list = list_images(test_set.lr_dir)
        if not lr_list:
            raise ValueError(
                f"test set {test_set.name}: no images in LR folder {test_set.lr_dir}{_download_hint(test_set.lr_dir)}"
            )
        lr_files = {p.stem: p for p in lr_list}
        templates = [test_set.filename_tmpl] if test_set.filename_tmpl else ["{}", f"{{}}x{scale}"]
    for hr_path in paths:
        hr = mod_crop(_strip_alpha(imread(hr_path)), scale)
        if hr.size == 0:
            raise ValueError(f"test set {test_set.name}: {hr_path} is smaller than the scale x{scale}; "
                             "no LR image can be made from it")
        if test_set.lr_dir is None:
            yield TestImage(hr_path.stem, hr, bicubic_downscale(hr, scale), hr_path, None)
            continue
        lr_path = _find_lr(hr_path, lr_files, templates, test_set.name)
        lr = _strip_alpha(imread(lr_path))
        check_pair(hr, lr, scale, hr_path, lr_path)
        yield TestImage(hr_path.stem, hr, lr, hr_path, lr_path)


def check_pair(hr: np.ndarray, lr: np.ndarray, scale: int, hr_path: Path, lr_path: Path) -> None:
    """Refuse an LR that is not the mod-cropped HR divided by the scale, or differs in channels/dtype."""
    want = (hr.shape[0] // scale, hr.shape[1] // scale)
    if lr.shape[:2] != want:
        raise ValueError(
            f"HR/LR size mismatch at x{scale}: {hr_path} is {hr.shape[1]}x{hr.shape[0]} (W x H, after modcrop), "
            f"so {lr_path} should be {want[1]}x{want[0]}, but it is {lr.shape[1]}x{lr.shape[0]}"
        )
    if (hr.ndim == 2) != (lr.ndim == 2):
        kinds = ["grey" if a.ndim == 2 else "colour" for a in (hr, lr)]
        raise ValueError(f"HR/LR channel mismatch: {hr_path} is {kinds[0]} but {lr_path} is {kinds[1]}")
    if hr.dtype != lr.dtype:
        raise ValueError(f"HR/LR dtype mismatch: {hr_path} is {hr.dtype} but {lr_path} is {lr.dtype}")


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(hr, 1/scale, 'bicubic')`` (antialiased), same dtype and layout as ``hr``."""
    return matlab_resize(hr, 1.0 / scale)


def matlab_resize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB bicubic resize of a grey (HW) or colour (HWC) integer image, same dtype and layout."""
    from esrgan.imageops.imresize import imresize

    return imresize(img, scale)
