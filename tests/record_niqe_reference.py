"""Record BasicSR's ``calculate_niqe`` on Set5/Set14 images, the reference of tests/test_metrics_niqe.py.

BasicSR is not a dependency of this project; install it outside the repository and put it on
the path only for this script, e.g.::

    python -m pip install --target /tmp/bsr basicsr==1.4.2 addict yapf future --no-deps --no-build-isolation
    PYTHONPATH=$PWD:/tmp/bsr python tests/record_niqe_reference.py ../shared/data tests/data/niqe_basicsr.json

Cases: the HR images as stored and their x4 LR upscaled back with MATLAB bicubic (worse NIQE),
each with ``convert_to`` y and gray; ``crop_border`` 0 and 4. BasicSR reads images in BGR order,
so the RGB arrays are flipped before the call.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np

IMAGES = ("Set5/baby", "Set5/butterfly", "Set5/woman", "Set14/baboon", "Set14/comic", "Set14/zebra", "Set14/monarch")


def _shim_torchvision() -> None:
    # basicsr 1.4.2 imports torchvision.transforms.functional_tensor, removed in torchvision 0.17.
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401
    except ImportError:
        import torchvision.transforms.functional as F

        mod = types.ModuleType("torchvision.transforms.functional_tensor")
        mod.rgb_to_grayscale = F.rgb_to_grayscale
        sys.modules["torchvision.transforms.functional_tensor"] = mod


def cases(data_root: Path) -> list[dict]:
    """The inputs: (name, RGB uint8 array) pairs, built the same way by the test."""
    from esrgan.data.image import imread
    from esrgan.imageops.imresize import imresize

    out = []
    for item in IMAGES:
        set_name, stem = item.split("/")
        hr = imread(data_root / set_name / "HR" / f"{stem}.png")
        out.append({"image": f"{item} HR", "array": hr})
        lr = imread(data_root / set_name / "LR_bicubic" / "X4" / f"{stem}x4.png")
        out.append({"image": f"{item} LRx4 bicubic up", "array": imresize(lr, 4.0)})
    return out


def main(argv: list[str]) -> int:
    data_root, dst = Path(argv[0]), Path(argv[1])
    _shim_torchvision()
    import basicsr
    from basicsr.metrics.niqe import calculate_niqe

    records = []
    for case in cases(data_root):
        arr = case["array"]
        bgr = np.ascontiguousarray(arr[:, :, ::-1] if arr.ndim == 3 else arr)
        for convert_to in ("y", "gray"):
            for crop in (0, 4):
                value = float(calculate_niqe(bgr, crop_border=crop, input_order="HWC", convert_to=convert_to))
                records.append({"image": case["image"], "convert_to": convert_to, "crop_border": crop,
                                "niqe": value})
                print(f"{case['image']:<32} {convert_to:<4} crop {crop}: {value:.6f}")
    meta = {"reference": f"basicsr {basicsr.__version__} calculate_niqe", "script": "tests/record_niqe_reference.py",
            "records": records}
    dst.write_text(json.dumps(meta, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
