"""Speed of one ESRGAN (GAN-stage) training iteration: our trainer vs a plain loop written the obvious way.

Both run the same networks, losses and data in the same process, one after the other:
RRDBNet G, VGG-style 128 discriminator, VGG19 ``conv5_4`` (pre-activation) perceptual loss,
relativistic average GAN, L1, EMA of G, Adam; batch 2 of 128-pixel GT patches.

    python benchmarks/bench_train.py              # small net (32 features, 4 blocks) and the full-size net
    python benchmarks/bench_train.py --small-only

Reported per configuration: seconds per iteration and it/s (median over the timed iterations
after warm-up; best of two runs, in the order reference, ours, ours, reference), and the
data-time share (time outside the model step / iteration time).
Ratio = reference s/it / ours s/it (>= 1: ours is not slower). For orientation, BasicSR 1.4.2
takes 1.67 s per iteration of the small configuration on the project's 2-core machine.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from esrgan.utils.hardware import synchronize  # noqa: E402

SMALL = {"num_feat": 32, "num_block": 4, "num_grow_ch": 32}
FULL = {"num_feat": 64, "num_block": 23, "num_grow_ch": 32}


def options(data: Path, exp: Path, net: dict, total_iter: int, workers: int) -> dict:
    return {
        "name": "bench_train",
        "model_type": "ESRGANModel",
        "scale": 4,
        "num_gpu": "auto",
        "manual_seed": 0,
        "datasets": {
            "train": {
                "name": "bench",
                "type": "PairedImageDataset",
                "dataroot_gt": str(data / "train" / "HR"),
                "dataroot_lq": str(data / "train" / "LR_bicubic" / "X4"),
                "io_backend": {"type": "disk"},
                "gt_size": 128,
                "use_hflip": True,
                "use_rot": True,
                "batch_size_per_gpu": 2,
                "num_worker_per_gpu": workers,
                "dataset_enlarge_ratio": 10,
            }
        },
        "network_g": {"type": "RRDBNet", **net},
        "network_d": {"type": "VGGStyleDiscriminator", "num_feat": 64, "input_size": 128},
        "path": {"experiments_root": str(exp / "bench_train")},
        "train": {
            "ema_decay": 0.999,
            "optim_g": {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99]},
            "optim_d": {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [10**6], "gamma": 0.5},
            "total_iter": total_iter,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1e-2},
            "perceptual_opt": {"type": "PerceptualLoss", "layer_weights": {"conv5_4": 1.0}, "pretrained": False},
            "gan_opt": {"type": "GANLoss", "gan_type": "ragan", "loss_weight": 5e-3},
        },
        "logger": {"print_freq": 10**6, "save_checkpoint_freq": 10**6, "use_tb_logger": False},
    }


def time_ours(opt_dict: dict) -> tuple[list[float], list[float]]:
    """Per-iteration wall times and model-step times of our Trainer (final checkpoint not timed)."""
    from esrgan.options import options_from_dict
    from esrgan.training.trainer import Trainer
    from esrgan.utils.logger import close_logger

    opt = options_from_dict(opt_dict)
    trainer = Trainer(opt, interactive=False)
    starts: list[float] = []
    steps: list[float] = []
    step = trainer.model.optimize_parameters

    def timed(lq, gt, it):
        synchronize(trainer.device)  # a GPU still busy with the batch's copy or degradation is not the step
        t0 = time.perf_counter()
        starts.append(t0)
        out = step(lq, gt, it)
        synchronize(trainer.device)  # the step's time is the device's, not what queueing it took
        steps.append(time.perf_counter() - t0)
        return out

    trainer.model.optimize_parameters = timed
    trainer.save = lambda it: None  # checkpoint writing is not part of an iteration
    trainer.run()
    close_logger("esrgan")
    iters = [b - a for a, b in itertools.pairwise(starts)]
    return iters, steps[: len(iters)]


def time_reference(opt_dict: dict, n_iter: int) -> tuple[list[float], list[float]]:
    """The obvious PyTorch loop: DataLoader, G step, D step, EMA by a Python loop, .item() logging."""
    from torch.utils.data import DataLoader

    from esrgan.archs import RRDBNet, VGGFeatureExtractor, VGGStyleDiscriminator
    from esrgan.data.paired_dataset import PairedImageDataset
    from esrgan.options.datasets import DatasetOptions

    torch.manual_seed(0)
    tr = dict(opt_dict["datasets"]["train"])
    ds = PairedImageDataset(DatasetOptions.from_dict({**tr, "phase": "train", "scale": 4}, "datasets.train"))
    loader = DataLoader(ds, batch_size=2, shuffle=True, num_workers=tr["num_worker_per_gpu"], drop_last=True,
                        persistent_workers=tr["num_worker_per_gpu"] > 0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net_kw = {k: v for k, v in opt_dict["network_g"].items() if k != "type"}
    net_g = RRDBNet(**net_kw).to(device)
    net_d = VGGStyleDiscriminator(num_feat=64, input_size=128).to(device)
    vgg = VGGFeatureExtractor(["conv5_4"], pretrained=False).to(device)
    ema = copy.deepcopy(net_g)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=1e-4, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=1e-4, betas=(0.9, 0.99))
    sched_g = torch.optim.lr_scheduler.MultiStepLR(opt_g, [10**6])
    sched_d = torch.optim.lr_scheduler.MultiStepLR(opt_d, [10**6])
    bce = F.binary_cross_entropy_with_logits
    starts, steps = [], []
    it = 0
    while it < n_iter:
        for batch in loader:
            t0 = time.perf_counter()
            starts.append(t0)
            lq, gt = batch["lq"].to(device), batch["gt"].to(device)
            for p in net_d.parameters():
                p.requires_grad = False
            opt_g.zero_grad()
            fake = net_g(lq)
            l_pix = F.l1_loss(fake, gt) * 1e-2
            l_percep = F.l1_loss(vgg(fake)["conv5_4"], vgg(gt)["conv5_4"].detach())
            real_pred = net_d(gt).detach()
            fake_pred = net_d(fake)
            l_gan = (bce(real_pred - fake_pred.mean(), torch.zeros_like(real_pred))
                     + bce(fake_pred - real_pred.mean(), torch.ones_like(fake_pred))) / 2 * 5e-3
            (l_pix + l_percep + l_gan).backward()
            opt_g.step()
            for p in net_d.parameters():
                p.requires_grad = True
            opt_d.zero_grad()
            fake_pred = net_d(fake.detach())
            real_pred = net_d(gt)
            l_d_real = bce(real_pred - fake_pred.detach().mean(), torch.ones_like(real_pred)) * 0.5
            l_d_real.backward()
            fake_pred = net_d(fake.detach())
            l_d_fake = bce(fake_pred - real_pred.detach().mean(), torch.zeros_like(fake_pred)) * 0.5
            l_d_fake.backward()
            opt_d.step()
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), net_g.parameters()):
                    pe.mul_(0.999).add_(p, alpha=0.001)
            sched_g.step()
            sched_d.step()
            _ = {k: v.item() for k, v in (("l_pix", l_pix), ("l_percep", l_percep), ("l_gan", l_gan),
                                           ("l_d_real", l_d_real), ("l_d_fake", l_d_fake))}
            synchronize(device)
            steps.append(time.perf_counter() - t0)
            it += 1
            if it >= n_iter:
                break
    iters = [b - a for a, b in itertools.pairwise(starts)]
    return iters, steps[: len(iters)]


def summarize(iters: list[float], steps: list[float], warmup: int) -> tuple[float, float]:
    it = iters[warmup:]
    st = steps[warmup:]
    s_per_it = statistics.median(it)
    data_share = max(0.0, 1.0 - sum(st) / sum(it))
    return s_per_it, data_share


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small-only", action="store_true", help="skip the full-size network")
    parser.add_argument("--iters", type=int, default=8, help="timed iterations, small net (default 8)")
    parser.add_argument("--full-iters", type=int, default=3, help="timed iterations, full-size net (default 3)")
    parser.add_argument("--workers", type=int, default=1, help="data-loader workers (default 1)")
    parser.add_argument("--rounds", type=int, default=2, choices=(1, 2),
                        help="2: reference, ours, ours, reference and the best of each (default); 1: once each")
    args = parser.parse_args(argv)

    from esrgan.data.demo_data import make_demo_data

    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {device}; torch {torch.__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_demo_data(tmp / "demo")
        configs = [("small (32f, 4 blocks)", SMALL, args.iters)]
        if not args.small_only:
            configs.append(("full (64f, 23 blocks)", FULL, args.full_iters))
        for label, net, n in configs:
            warmup = 2
            total = n + warmup + 1  # n + warmup intervals need n + warmup + 1 iteration starts
            opt = options(data, tmp / label.split()[0], net, total, args.workers)
            # A-B-B-A order, best of two each: a load change on a shared machine hits both loops alike.
            runs_ref, runs_ours = [], []
            for order in (("ref", "ours"), ("ours", "ref"))[: args.rounds]:
                for which in order:
                    if which == "ref":
                        runs_ref.append(summarize(*time_reference(opt, total), warmup))
                    else:
                        runs_ours.append(summarize(*time_ours(opt), warmup))
            ref, ours = min(runs_ref), min(runs_ours)
            rows.append((label, ours, ref))
            print(f"{label}: ours {ours[0]:.3f} s/it, reference {ref[0]:.3f} s/it", flush=True)

    print()
    print(f"{'GAN iteration, batch 2, GT 128':<26} {'ours s/it':>9} {'it/s':>6} {'data':>6} | "
          f"{'ref s/it':>8} {'it/s':>6} {'data':>6} | {'ratio':>5}")
    for label, (o_s, o_d), (r_s, r_d) in rows:
        print(f"{label:<26} {o_s:9.3f} {1 / o_s:6.3f} {o_d:6.1%} | {r_s:8.3f} {1 / r_s:6.3f} {r_d:6.1%} | "
              f"{r_s / o_s:5.2f}")
    print("ratio = reference s/it / ours s/it (>= 1: ours is not slower); data = share of the iteration "
          "spent outside the model step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
