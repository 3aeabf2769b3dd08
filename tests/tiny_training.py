"""Tiny training set-ups for the tests: a few crops of a natural image, tiny nets.

``make_tiny_data(root)`` writes HR crops of scikit-image's astronaut and their MATLAB-bicubic
x4 LR versions; ``tiny_options_dict(...)`` returns an option mapping (BasicSR keys) that
trains a 1-block RRDBNet on them in well under a second per iteration on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def make_tiny_data(root: str | Path, n_train: int = 8, n_val: int = 2, size: int = 48, scale: int = 4) -> Path:
    """``root/{train,val}/{HR,LR}/NNN.png``: ``size``-pixel HR crops and their bicubic 1/scale LR images."""
    from skimage import data

    from esrgan.data.image import imwrite
    from esrgan.imageops.imresize import imresize

    root = Path(root)
    img = data.astronaut()
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            y, x = rng.integers(0, img.shape[0] - size, 2)
            hr = np.ascontiguousarray(img[y : y + size, x : x + size])
            imwrite(root / split / "HR" / f"{i:03d}.png", hr)
            imwrite(root / split / "LR" / f"{i:03d}.png", imresize(hr, 1 / scale))
    return root


def tiny_options_dict(
    data_root: str | Path,
    exp_root: str | Path,
    *,
    gan: bool = False,
    total_iter: int = 6,
    batch_size: int = 2,
    gt_size: int = 16,
    num_workers: int = 0,
    seed: int = 10,
    name: str = "tiny",
) -> dict[str, Any]:
    """An option mapping for :func:`esrgan.options.options_from_dict` (CPU, tiny nets, tiny data)."""
    data_root = Path(data_root)
    opt: dict[str, Any] = {
        "name": name,
        "model_type": "ESRGANModel" if gan else "SRModel",
        "scale": 4,
        "num_gpu": 0,
        "manual_seed": seed,
        "datasets": {
            "train": {
                "name": "tinytrain",
                "type": "PairedImageDataset",
                "dataroot_gt": str(data_root / "train" / "HR"),
                "dataroot_lq": str(data_root / "train" / "LR"),
                "io_backend": {"type": "disk"},
                "gt_size": gt_size,
                "use_hflip": True,
                "use_rot": True,
                "batch_size_per_gpu": batch_size,
                "num_worker_per_gpu": num_workers,
                "dataset_enlarge_ratio": 1,
            },
            "val": {
                "name": "tinyval",
                "type": "PairedImageDataset",
                "dataroot_gt": str(data_root / "val" / "HR"),
                "dataroot_lq": str(data_root / "val" / "LR"),
                "io_backend": {"type": "disk"},
            },
        },
        "network_g": {"type": "RRDBNet", "num_feat": 8, "num_block": 1, "num_grow_ch": 8},
        "path": {"experiments_root": str(Path(exp_root) / name)},
        "train": {
            "ema_decay": 0.9,
            "optim_g": {"type": "Adam", "lr": 2e-4, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [total_iter // 2], "gamma": 0.5},
            "total_iter": total_iter,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0},
        },
        "val": {
            "val_freq": total_iter,
            "save_img": True,
            "metrics": {
                "psnr": {"type": "psnr", "crop_border": 4, "test_y_channel": True},
                "ssim": {"type": "ssim", "crop_border": 4, "test_y_channel": True},
            },
        },
        "logger": {"print_freq": 2, "save_checkpoint_freq": total_iter, "use_tb_logger": True},
    }
    if gan:
        opt["network_d"] = {"type": "UNetDiscriminatorSN", "num_feat": 8}
        t = opt["train"]
        t["pixel_opt"] = {"type": "L1Loss", "loss_weight": 1e-2}
        t["perceptual_opt"] = {
            "type": "PerceptualLoss",
            "layer_weights": {"conv2_2": 1.0},
            "vgg_type": "vgg19",
            "perceptual_weight": 1.0,
            "pretrained": False,  # random VGG weights: tests run offline
        }
        t["gan_opt"] = {"type": "GANLoss", "gan_type": "ragan", "loss_weight": 5e-3}
        t["optim_d"] = {"type": "Adam", "lr": 1e-4, "betas": [0.9, 0.99]}
    return opt
