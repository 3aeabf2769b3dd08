"""Int8 post-training static quantization of real generators: speed against fp32 and bf16, distance from fp32.

The rule for shipping ``--precision int8``: at least 1.5x the bf16 time and at least 40 dB PSNR from the fp32
output, on a CPU with AVX512-VNNI or AMX-INT8 (int8 convolutions about twice as fast as bf16 there). Elsewhere
(e.g. AVX2: fbgemm's int8 runs on plain AVX2 there, bf16 is emulated) the speed figures do not decide it.

Networks: RealESRGAN_x4plus_anime_6B (RRDBNet, 6 blocks) and realesr-animevideov3 (SRVGGNetCompact), from
/work/shared/models (``--models``). Quantization: torch.ao.quantization FX graph mode, the ``x86`` backend
(fbgemm + oneDNN), default static qconfig (per-channel symmetric int8 weights, histogram-observed uint8
activations), calibrated on crops of scikit-image photographs; measured on centre crops of Set14's LR images
(/work/shared/data/Set14/LR_bicubic/X4), which calibration never sees. bf16: the network and input in bf16,
channels_last, as the Upscaler runs it.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_int8.py            # a few minutes on 2 AVX2 cores
    PYTHONPATH=. .venv/bin/python benchmarks/bench_int8.py --quick    # smoke test
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from timing import best_time

from esrgan.data.image import imread
from esrgan.loading import load_model
from esrgan.utils.hardware import cpu_features, cpu_native_bf16, cpu_summary

MODELS = Path("/work/shared/models")
SET14_LR = Path("/work/shared/data/Set14/LR_bicubic/X4")
INT8_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8")


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(img[..., :3])).permute(2, 0, 1).float() / 255.0


def _centre(t: torch.Tensor, size: int) -> torch.Tensor:
    h, w = t.shape[-2:]
    size = min(size, h, w)
    top, left = (h - size) // 2, (w - size) // 2
    return t[..., top : top + size, left : left + size]


def calibration_batches(size: int, count: int) -> list[torch.Tensor]:
    from skimage import data

    crops = []
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        img = _to_tensor(getattr(data, name)())
        h, w = img.shape[1:]
        for k in range(count):  # crops spread over the picture
            top, left = (h - size) * k // max(count - 1, 1), (w - size) * (count - 1 - k) // max(count - 1, 1)
            crops.append(img[:, top : top + size, left : left + size])
    return [c[None] for c in crops]


def test_images(size: int, count: int) -> list[torch.Tensor]:
    paths = sorted(SET14_LR.glob("*.png"))[:count]
    if not paths:
        raise SystemExit(f"bench_int8: no images in {SET14_LR}")
    return [_centre(_to_tensor(imread(p)), size)[None] for p in paths]


def quantize(net: torch.nn.Module, calib: list[torch.Tensor]) -> torch.nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    net = copy.deepcopy(net).eval()
    for m in net.modules():  # quantized leaky_relu has no in-place form (it warns on every call)
        if isinstance(m, torch.nn.LeakyReLU):
            m.inplace = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice (torchao is its successor)
        prepared = prepare_fx(net, get_default_qconfig_mapping("x86"), (calib[0],))
        with torch.no_grad():
            for x in calib:
                prepared(x)
        return convert_fx(prepared)


def _bf16_run(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """As the Upscaler runs bf16: network and input in bf16, channels_last."""
    return net(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)).float()


def _all(fn, tests: list[torch.Tensor]) -> list[torch.Tensor]:
    return [fn(x) for x in tests]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.clamp(0, 1) - b.clamp(0, 1)).double().pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["realesr-animevideov3_x4.pth", "RealESRGAN_x4plus_anime_6B.pth"])
    ap.add_argument("--size", type=int, default=64, help="side of the LR test crops")
    ap.add_argument("--images", type=int, default=4, help="Set14 images measured")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.size, args.images, args.repeats = 32, 2, 1

    caps = cpu_features()
    int8_isa = [f for f in INT8_FEATURES if caps.get(f)]
    print(f"CPU: {cpu_summary()}")
    print(f"int8 instructions: {', '.join(int8_isa) if int8_isa else 'none of AVX512-VNNI / AVX-VNNI / AMX-INT8'}; "
          f"quantized engine x86 (supported: {', '.join(torch.backends.quantized.supported_engines)})")
    calib = calibration_batches(64 if not args.quick else 32, 4 if not args.quick else 1)
    tests = test_images(args.size, args.images)
    print(f"calibration: {len(calib)} crops of scikit-image photographs; test: {len(tests)} Set14 LR crops "
          f"{args.size}x{args.size}; times: best of {args.repeats} over all test crops")
    rows = []
    for name in args.models:
        net = load_model(MODELS / name).eval()
        try:
            qnet = quantize(net, calib)
        except Exception as e:  # a network FX cannot trace or the backend cannot run: that is the finding
            print(f"{name}: int8 quantization failed: {type(e).__name__}: {str(e).splitlines()[0]}")
            continue
        bnet = copy.deepcopy(net).to(torch.bfloat16, memory_format=torch.channels_last)
        runners = {"fp32": net, "bf16": functools.partial(_bf16_run, bnet), "int8": qnet}
        with torch.inference_mode():
            outs = {k: _all(f, tests) for k, f in runners.items()}
            times = {k: best_time(functools.partial(_all, f, tests), args.repeats) for k, f in runners.items()}
        ref = outs["fp32"]
        for prec in ("bf16", "int8"):
            p = min(psnr(o, r) for o, r in zip(outs[prec], ref, strict=True))
            mx = max(float((o.clamp(0, 1) - r.clamp(0, 1)).abs().max()) for o, r in zip(outs[prec], ref, strict=True))
            rows.append((name, prec, times["fp32"], times[prec], p, mx))
        rows.append((name, "fp32", times["fp32"], times["fp32"], math.inf, 0.0))
        if int8_isa:
            ok = times["bf16"] / times["int8"] >= 1.5 and rows[-2][4] >= 40
            verdict = "meets" if ok else "misses"
        else:
            verdict = "not decidable here (no VNNI / AMX)"
        print(f"{name}: int8 {times['bf16'] / times['int8']:.2f}x bf16, {rows[-2][4]:.1f} dB from fp32: "
              f"{verdict} the rule (>= 1.5x bf16, >= 40 dB)")

    print(f"\n{'network':<34} {'precision':<9} {'s (all crops)':>13} {'x fp32':>7} {'worst PSNR vs fp32':>19} "
          f"{'max |diff| (x255)':>18}")
    for name, prec, t32, t, p, mx in rows:
        print(f"{name:<34} {prec:<9} {t:>13.3f} {t32 / t:>7.2f} {p:>19.1f} {mx * 255:>18.1f}")
    if not cpu_native_bf16():
        print("bf16 is emulated on this CPU: its time is not the bf16 of a native-bf16 CPU")


if __name__ == "__main__":
    main()
