"""One GAN-stage training iteration: ours in fp32, ours with AMP (bf16) + channels_last, and BasicSR 1.4.2
in fp32, all in the same process, one after the other (A-B-C, then C-B-A; best of each).

Same networks, losses and batch shapes as ``bench_train.py``: RRDBNet G (small: 32 features, 4 blocks),
VGG-style 128 discriminator, VGG19 conv5_4 perceptual loss, relativistic GAN, L1, EMA, Adam; batch 2,
GT 128. Compared: the model step (``optimize_parameters``: forward, losses, backward, both optimisers,
EMA), the part both frameworks share; our full iteration (with data loading) is printed too.

BasicSR is never part of this repository: point ``--basicsr`` at a folder holding it, e.g.

    pip install --target /tmp/bsr basicsr==1.4.2 addict future --no-deps --no-build-isolation
    .venv/bin/python benchmarks/bench_amp.py --basicsr /tmp/bsr          # a few minutes
    .venv/bin/python benchmarks/bench_amp.py --basicsr /tmp/bsr --quick  # 2 timed iterations, one round

BasicSR 1.4.2 imports ``torchvision.transforms.functional_tensor`` (gone from torchvision) and downloads
the VGG19 weights: this script shims the first and builds VGG19 without pretrained weights for both
(speed does not depend on the weights). Without ``--basicsr`` only our two variants run.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_train import SMALL, options, time_ours  # noqa: E402

from esrgan.utils.hardware import cpu_summary  # noqa: E402


def our_variant(opt: dict, amp: bool) -> dict:
    opt = copy.deepcopy(opt)
    if amp:
        opt["train"].update({"use_amp": True, "amp_dtype": "bf16", "channels_last": True})
    return opt


def time_basicsr(basicsr_dir: str, opt: dict, n_iter: int, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list:
    sys.path.insert(0, basicsr_dir)
    import torchvision.transforms.functional as tvf
    from torchvision.models import vgg

    shim = types.SimpleNamespace(rgb_to_grayscale=tvf.rgb_to_grayscale)  # what BasicSR 1.4.2 imports from it
    sys.modules.setdefault("torchvision.transforms.functional_tensor", shim)
    plain_vgg19 = vgg.vgg19
    vgg.vgg19 = lambda pretrained=False, **kw: plain_vgg19(weights=None)  # no download; speed is the same
    from basicsr.models import build_model

    tmp = tempfile.mkdtemp()
    bopt = {
        "name": "bench", "model_type": "ESRGANModel", "scale": 4, "num_gpu": 0, "is_train": True, "dist": False,
        "rank": 0, "world_size": 1,
        "network_g": {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, **opt["network_g"]},
        "network_d": {"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": 64},
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None, "experiments_root": tmp,
                 "models": tmp, "training_states": tmp, "log": tmp, "visualization": tmp},
        "train": {
            "ema_decay": 0.999,
            "optim_g": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "optim_d": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [10**6], "gamma": 0.5},
            "total_iter": n_iter,
            "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1e-2, "reduction": "mean"},
            "perceptual_opt": {"type": "PerceptualLoss", "layer_weights": {"conv5_4": 1}, "vgg_type": "vgg19",
                               "use_input_norm": True, "range_norm": False, "perceptual_weight": 1.0,
                               "style_weight": 0, "criterion": "l1"},
            "gan_opt": {"type": "GANLoss", "gan_type": "vanilla", "real_label_val": 1.0, "fake_label_val": 0.0,
                        "loss_weight": 5e-3},
            "net_d_iters": 1, "net_d_init_iters": 0,
        },
        "logger": {"print_freq": 10**6, "save_checkpoint_freq": 10**6, "use_tb_logger": False},
        "val": None,
    }  # fmt: skip
    model = build_model(bopt)
    steps = []
    for it in range(1, n_iter + 1):
        lq, gt = batches[it % len(batches)]
        model.feed_data({"lq": lq, "gt": gt})
        t = time.perf_counter()
        model.optimize_parameters(it)
        steps.append(time.perf_counter() - t)
    return steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--basicsr", help="folder holding BasicSR 1.4.2 (pip --target); without it, ours only")
    p.add_argument("--quick", action="store_true", help="2 timed iterations, one round")
    p.add_argument("--iters", type=int, default=8, help="timed iterations (default 8)")
    p.add_argument("--workers", type=int, default=1, help="data-loader workers for ours (default 1)")
    args = p.parse_args(argv)
    if args.quick:
        args.iters = 2
    warmup = 2
    total = args.iters + warmup + 1
    print(f"CPU: {cpu_summary()}")
    from esrgan.data.demo_data import make_demo_data

    with tempfile.TemporaryDirectory() as tmp:
        data = make_demo_data(Path(tmp) / "demo")
        base = options(data, Path(tmp) / "exp", SMALL, total, args.workers)
        g = torch.Generator().manual_seed(0)
        batches = [(torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 128, 128, generator=g)) for _ in range(4)]
        best: dict[str, tuple[float, float | None]] = {}
        names = ["ours fp32", "ours AMP bf16 + channels_last"] + (["BasicSR 1.4.2 fp32"] if args.basicsr else [])
        rounds = [names] if args.quick else [names, names[::-1]]
        for r, order in enumerate(rounds):
            for name in order:
                base["path"]["experiments_root"] = str(Path(tmp) / f"exp_{r}_{names.index(name)}")
                if name.startswith("BasicSR"):
                    steps = time_basicsr(args.basicsr, base, total, batches)
                    row = (statistics.median(steps[warmup:]), None)
                else:
                    iters, steps = time_ours(our_variant(base, amp="AMP" in name))
                    row = (statistics.median(steps[warmup:]), statistics.median(iters[warmup:]))
                print(f"  {name:<32} step {row[0]:.3f} s" + (f", iteration {row[1]:.3f} s" if row[1] else ""),
                      flush=True)  # fmt: skip
                if name not in best or row[0] < best[name][0]:
                    best[name] = row
    ref_name = "BasicSR 1.4.2 fp32" if args.basicsr else "ours fp32"
    ref = best[ref_name][0]
    print(f"\nGAN model step, small RRDBNet, batch 2, GT 128 (median of {args.iters}, best of rounds); "
          f"speed-up = {ref_name} step / this step:")  # fmt: skip
    for name, (step, it) in best.items():
        full = f"  (full iteration {it:.3f} s)" if it else ""
        print(f"  {name:<32} {step:.3f} s/step  speed-up {ref / step:.2f}x{full}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
