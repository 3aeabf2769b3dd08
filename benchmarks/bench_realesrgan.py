"""Real-ESRGAN training speed: degradation throughput and one RealESRGAN iteration, ours vs BasicSR 1.4.2.

Both run in the same process on the same inputs and settings (the published x4plus degradation):

1. Degradation: a batch of HR crops with their kernels -> training pairs (USM, two rounds of blur,
   resize, noise and JPEG, final sinc, 8-bit rounding, crop, pair queue, USM of the returned GT):
   our ``RealDegrader`` vs BasicSR's ``RealESRGANModel.feed_data``; patches per second.
2. One RealESRGAN training iteration (degradation + G step with L1, five-layer perceptual and GAN
   losses + UNetDiscriminatorSN step + EMA): our ``RealESRGANModel`` vs BasicSR's; seconds per
   iteration and our degradation's share of it (goal: <= 20%). Small networks by default (32
   features, 4 blocks; the CPU budget), ``--full`` for the recipe's (64 features, 23 blocks, U-Net 64,
   batch 12, 400-pixel crops, 256-pixel patches; for GPUs).

Best of ``--repeat`` timed runs after a warm-up, in the order ours, BasicSR, BasicSR, ours.
BasicSR is not a dependency: install it outside the repository and pass its folder, e.g.
``pip install --target /tmp/bsr basicsr==1.4.2 addict yapf future --no-deps --no-build-isolation``
then ``--basicsr /tmp/bsr``; without it only our figures are printed. On the CPU, BasicSR's
``.cuda()`` calls are made no-ops, its ``filter2D`` gets contiguous input (its ``.view`` fails on
newer torch otherwise; the copy is timed with it) and its VGG19 is randomly initialised (nothing
is downloaded; the arithmetic is what is timed, as for ours).

    .venv/bin/python benchmarks/bench_realesrgan.py --quick [--basicsr DIR] [--device cpu|cuda] [--full]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_metrics import cpu_description  # noqa: E402
from timing import best_time  # noqa: E402

from esrgan.data.degradations.kernel_draws import blur_rounds, draw_sample_kernels  # noqa: E402
from esrgan.options.datasets import RealESRGANDatasetOptions  # noqa: E402

# The published recipe's kernels (the dataset options' defaults).
FIRST, SECOND = blur_rounds(RealESRGANDatasetOptions(dataroot_gt="."))
DEGRADATION = {
    "resize_prob": [0.2, 0.7, 0.1], "resize_range": [0.15, 1.5], "gaussian_noise_prob": 0.5,
    "noise_range": [1, 30], "poisson_scale_range": [0.05, 3], "gray_noise_prob": 0.4, "jpeg_range": [30, 95],
    "second_blur_prob": 0.8, "resize_prob2": [0.3, 0.4, 0.3], "resize_range2": [0.3, 1.2],
    "gaussian_noise_prob2": 0.5, "noise_range2": [1, 25], "poisson_scale_range2": [0.05, 2.5],
    "gray_noise_prob2": 0.4, "jpeg_range2": [30, 95], "l1_gt_usm": True, "percep_gt_usm": True, "gan_gt_usm": False,
}  # fmt: skip
SMALL = {"g": {"num_feat": 32, "num_block": 4, "num_grow_ch": 32}, "d": 32}
FULL = {"g": {"num_feat": 64, "num_block": 23, "num_grow_ch": 32}, "d": 64}


def _sync(device: torch.device) -> Callable[[], object] | None:
    """What makes a timing wait for the device's queued work (nothing on the CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else None


def batch(n: int, crop: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """``n`` crops of a natural image with kernels drawn as the data workers draw them."""
    from skimage import data

    img = np.asarray(data.astronaut(), dtype=np.float32) / 255
    rng = np.random.default_rng(seed)
    gts, ks = [], []
    for _ in range(n):
        y, x = rng.integers(0, 512 - crop + 1, 2) if crop < 512 else (0, 0)
        tile = np.resize(img, (max(crop, 512), max(crop, 512), 3))[y : y + crop, x : x + crop]
        gts.append(torch.from_numpy(np.ascontiguousarray(tile.transpose(2, 0, 1))))
        ks.append([torch.from_numpy(k).float() for k in draw_sample_kernels(FIRST, SECOND, 0.8)])
    out = {"gt": torch.stack(gts)}
    for i, key in enumerate(("kernel1", "kernel2", "sinc_kernel")):
        out[key] = torch.stack([k[i] for k in ks])
    return {k: v.to(device) for k, v in out.items()}


# ---- ours ----------------------------------------------------------------------------------------


def our_options(net: dict, n: int, gt_size: int, crop: int, queue: int) -> dict:
    return {
        "name": "bench_realesrgan", "model_type": "RealESRGANModel", "scale": 4, "num_gpu": "auto",
        "manual_seed": 0, **DEGRADATION, "gt_size": gt_size, "queue_size": queue,
        "datasets": {"train": {"name": "bench", "type": "RealESRGANDataset", "dataroot_gt": ".",
                               "gt_size": gt_size, "crop_pad_size": crop, "batch_size_per_gpu": n,
                               "use_hflip": True, "use_rot": False}},
        "network_g": {"type": "RRDBNet", **net["g"]},
        "network_d": {"type": "UNetDiscriminatorSN", "num_feat": net["d"], "skip_connection": True},
        "path": {"experiments_root": "/nonexistent"},
        "train": {
            "ema_decay": 0.999,
            "optim_g": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "optim_d": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "total_iter": 400000,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0},
            "perceptual_opt": {"type": "PerceptualLoss", "layer_weights": {
                "conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1},
                "vgg_type": "vgg19", "use_input_norm": True, "perceptual_weight": 1.0, "style_weight": 0,
                "range_norm": False, "criterion": "l1", "pretrained": False},
            "gan_opt": {"type": "GANLoss", "gan_type": "vanilla", "loss_weight": 0.1},
        },
    }  # fmt: skip


def our_model(opt_dict: dict, device: torch.device):
    from esrgan.options import options_from_dict
    from esrgan.training.build import build_model

    return build_model(options_from_dict(opt_dict), device)


# ---- BasicSR -------------------------------------------------------------------------------------


def import_basicsr(path: str | None, device: torch.device):
    if path:
        sys.path.insert(0, path)
    try:
        import torchvision.transforms.functional as tvf

        sys.modules.setdefault("torchvision.transforms.functional_tensor", tvf)
        import basicsr.models.realesrgan_model as brm
    except ImportError as exc:
        print(f"BasicSR not importable ({exc}); pass --basicsr DIR (see the docstring). Our figures only.")
        return None
    filter2d = brm.filter2D
    brm.filter2D = lambda img, kernel: filter2d(img.contiguous(), kernel)
    if device.type == "cpu":
        torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
        torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    return brm


def basicsr_options(ours: dict, device: torch.device) -> dict:
    ds = ours["datasets"]["train"]
    t = copy.deepcopy(ours["train"])
    t["perceptual_opt"].pop("pretrained")
    t["gan_opt"].update({"real_label_val": 1.0, "fake_label_val": 0.0})
    t.update({"net_d_iters": 1, "net_d_init_iters": 0, "warmup_iter": -1,
              "scheduler": {"type": "MultiStepLR", "milestones": [400000], "gamma": 0.5}})
    return {
        **{k: v for k, v in ours.items() if k in DEGRADATION or k in ("scale", "gt_size", "queue_size")},
        "name": "bench", "model_type": "RealESRGANModel", "is_train": True, "dist": False, "rank": 0,
        "world_size": 1, "num_gpu": 1 if device.type == "cuda" else 0,
        "network_g": {**ours["network_g"], "num_in_ch": 3, "num_out_ch": 3},
        "network_d": {**ours["network_d"], "num_in_ch": 3},
        "path": {"pretrain_network_g": None, "pretrain_network_d": None, "strict_load_g": True,
                 "resume_state": None},
        "train": t, "datasets": {"train": {"batch_size_per_gpu": ds["batch_size_per_gpu"]}},
    }  # fmt: skip


def basicsr_model(brm, opt: dict):
    import torchvision.models.vgg as tv

    # Its VGG asks torchvision for ImageNet weights (a download): random ones instead, as ours.
    vgg19 = tv.vgg19
    tv.vgg19 = lambda pretrained=False, **kw: vgg19(weights=None)
    try:
        return brm.RealESRGANModel(opt)
    finally:
        tv.vgg19 = vgg19


class _Feed:
    """Just BasicSR's feed_data/_dequeue_and_enqueue, for timing the degradation alone."""

    def __init__(self, brm, opt: dict, device: torch.device) -> None:
        from basicsr.utils import DiffJPEG, USMSharp

        self.__class__.feed_data = brm.RealESRGANModel.feed_data
        self.__class__._dequeue_and_enqueue = brm.RealESRGANModel._dequeue_and_enqueue
        self.opt, self.device, self.is_train, self.queue_size = opt, device, True, opt["queue_size"]
        self.jpeger, self.usm_sharpener = DiffJPEG(differentiable=False).to(device), USMSharp().to(device)


# ---- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches and crops, 2 timed runs (a few minutes)")
    parser.add_argument("--full", action="store_true", help="the recipe's networks and sizes for the iteration")
    parser.add_argument("--basicsr", default=None, help="folder where basicsr 1.4.2 is installed (--target)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per side (default 3, quick 2)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeat = args.repeat or (2 if args.quick else 3)
    print(f"CPU: {cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    brm = import_basicsr(args.basicsr, device)

    # 1. degradation throughput
    n, crop, gt = (4, 256, 128) if args.quick else (12, 400, 256)
    data = batch(n, crop, device)
    opt = our_options(SMALL, n, gt, crop, 2 * n)
    model = our_model(opt, device)
    ours = [best_time(lambda: model.degrader(data), repeat, warmup=2, sync=_sync(device))]
    ref: list[float] = []
    if brm is not None:
        feed = _Feed(brm, basicsr_options(opt, device), device)
        ref = [best_time(lambda: feed.feed_data(data), repeat, warmup=2, sync=_sync(device)) for _ in range(2)]
    ours.append(best_time(lambda: model.degrader(data), repeat, sync=_sync(device)))
    t_ours = min(ours)
    print(f"\ndegradation, batch {n} of {crop}-pixel crops -> {gt}-pixel patches:")
    print(f"  ours    {t_ours * 1000:8.1f} ms/batch  {n / t_ours:8.1f} patches/s")
    if ref:
        t_ref = min(ref)
        print(f"  BasicSR {t_ref * 1000:8.1f} ms/batch  {n / t_ref:8.1f} patches/s   ratio {t_ref / t_ours:.2f}")

    # 2. one RealESRGAN iteration
    net = FULL if args.full else SMALL
    n, crop, gt = (12, 400, 256) if args.full else ((2, 192, 64) if args.quick else (4, 400, 128))
    data = batch(n, crop, device, seed=1)
    opt = our_options(net, n, gt, crop, 2 * n)
    model = our_model(opt, device)
    it = [0]
    split = {"degrade": float("inf")}

    def ours_step() -> None:
        it[0] += 1
        t0 = time.perf_counter()
        lq, gt_ = model.prepare_batch(data)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        model.optimize_parameters(lq, gt_, it[0])
        split["degrade"] = min(split["degrade"], t1 - t0)

    iter_ours = [best_time(ours_step, repeat, warmup=3, sync=_sync(device))]
    iter_ref: list[float] = []
    if brm is not None:
        bmodel = basicsr_model(brm, basicsr_options(opt, device))
        bit = [0]

        def ref_step() -> None:
            bit[0] += 1
            bmodel.feed_data(data)
            bmodel.optimize_parameters(bit[0])

        iter_ref = [best_time(ref_step, repeat, warmup=3, sync=_sync(device)) for _ in range(2)]
    iter_ours.append(best_time(ours_step, repeat, sync=_sync(device)))
    t_ours = min(iter_ours)
    label = "recipe networks" if args.full else "32 features, 4 blocks, U-Net 32"
    print(f"\nRealESRGAN iteration ({label}), batch {n}, {crop}-pixel crops, {gt}-pixel patches:")
    print(f"  ours    {t_ours:8.3f} s/it  (degradation {split['degrade']:.3f} s = "
          f"{split['degrade'] / t_ours:.1%} of the iteration)")
    if iter_ref:
        t_ref = min(iter_ref)
        print(f"  BasicSR {t_ref:8.3f} s/it   ratio {t_ref / t_ours:.2f}")
    print("\nratio = BasicSR time / ours (>= 1: ours is not slower)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
