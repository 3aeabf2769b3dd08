"""The GPU check: every CUDA path of esrgan once, one table (issues 24 and 25).

    python benchmarks/gpu_check.py                        # one GPU, under 8 minutes
    python benchmarks/gpu_check.py --quick                # smaller networks and images, fewer frames
    python benchmarks/gpu_check.py --only video,serve     # some rows (names as in the table)
    python benchmarks/gpu_check.py --device cpu --quick   # the script itself, end to end, on a CPU

Each row runs one path the way a user does (the trainer, the Upscaler, the CLI, the web app) and says ``ok``,
the first line of its error, or why it was skipped; the time it took; and the figure a user compares
(iterations/s, frames/s at 640x480 x4, GB of GPU memory). Reference figures are printed beside ours: the bf16
matrix-product rate of the same GPU (what the convolutions could reach), and published ones. Networks are
randomly initialised (speed does not depend on the weights; no download). Everything a check prints goes to
the log file (``--log``); ``--json`` writes the rows for benchmarks/README.md. Exit code: 0 when no row failed,
1 when one did, 2 for bad flags or no CUDA without ``--device cpu``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

# Published frames/s of x4 upscaling at 640x480 in fp16 on an RTX 4090, as issue 24 quotes them.
PUBLISHED_FPS = {"RRDBNet": 3.5, "SRVGGNetCompact": 145.0}
FPS_SIZE = (480, 640)  # height, width of the frames/s rows


class Skip(Exception):
    """The check does not apply here; the message says why."""


@dataclass(frozen=True)
class Sizes:
    """How big each check is: the full GPU run, ``--quick``, and the CPU's end-to-end proof."""

    net: dict[str, int]  # the trained RRDBNet
    batch: int
    gt: int
    iters: int  # timed training iterations (after `warmup`)
    warmup: int
    d_feat: int
    perceptual: bool
    real_gt: int  # Real-ESRGAN's patch (HR crops are twice as large)
    fps_frames: int
    big: int  # side of the square image run at the defaults
    video: tuple[int, int, int]  # width, height, frames
    upscale_net: dict[str, int]


FULL = Sizes(net={"num_feat": 64, "num_block": 23, "num_grow_ch": 32}, batch=16, gt=128, iters=20, warmup=5,
             d_feat=64, perceptual=True, real_gt=256, fps_frames=10, big=3000, video=(2560, 1440, 8),
             upscale_net={"num_feat": 64, "num_block": 23, "num_grow_ch": 32})
QUICK = Sizes(net={"num_feat": 64, "num_block": 6, "num_grow_ch": 32}, batch=8, gt=128, iters=6, warmup=3,
              d_feat=64, perceptual=True, real_gt=128, fps_frames=4, big=3000, video=(2560, 1440, 2),
              upscale_net={"num_feat": 64, "num_block": 23, "num_grow_ch": 32})
CPU = Sizes(net={"num_feat": 8, "num_block": 1, "num_grow_ch": 8}, batch=1, gt=128, iters=2, warmup=1,
            d_feat=8, perceptual=False, real_gt=32, fps_frames=1, big=64, video=(64, 48, 3),
            upscale_net={"num_feat": 8, "num_block": 1, "num_grow_ch": 8})


@dataclass
class Context:
    device: torch.device
    sizes: Sizes
    work: Path
    log: Any  # the open log file
    data: dict[str, Path] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def say(self, message: str) -> None:
        print(message, file=self.log, flush=True)


@dataclass
class Row:
    check: str
    result: str  # "ok", "skipped: ...", or the first line of the error
    seconds: float
    figure: str = ""
    reference: str = ""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Context], tuple[str, str] | str]  # the figure, or (figure, reference)
    cuda_only: bool = False


# ---------------------------------------------------------------------------------------------------- helpers


def sync(ctx: Context) -> None:
    from esrgan.utils.hardware import synchronize

    synchronize(ctx.device)


def peak_gb(ctx: Context) -> str:
    return f", {torch.cuda.max_memory_allocated(ctx.device) / 1e9:.1f} GB peak" if ctx.cuda else ""


def reset_peak(ctx: Context) -> None:
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)


def rrdbnet(net: dict[str, int], seed: int = 0) -> torch.nn.Module:
    from esrgan.archs import RRDBNet

    torch.manual_seed(seed)
    model = RRDBNet(3, 3, scale=4, **net)
    with torch.no_grad():
        model.conv_last.bias.fill_(0.45)  # mid-grey output: a random net alone clamps to black
    return model.eval()


def srvgg(seed: int = 0) -> torch.nn.Module:
    from esrgan.archs import SRVGGNetCompact

    torch.manual_seed(seed)
    return SRVGGNetCompact(num_feat=64, num_conv=16, upscale=4).eval()


def model_file(ctx: Context) -> Path:
    """The upscaling RRDBNet as a checkpoint file (what the CLI, video and serve load)."""
    if "rrdbnet" not in ctx.files:
        from esrgan.checkpoint import save_network

        ctx.files["rrdbnet"] = save_network(ctx.work / "models" / "rrdbnet_x4.pth",
                                            {"params": rrdbnet(ctx.sizes.upscale_net).state_dict()})
    return ctx.files["rrdbnet"]


def photo(height: int, width: int) -> np.ndarray:
    """A natural RGB image of any size (scikit-image's astronaut, tiled and cropped)."""
    from skimage import data

    tile = np.asarray(data.astronaut())
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1)
    return np.ascontiguousarray(np.tile(tile, reps)[:height, :width])


def training_data(ctx: Context) -> dict[str, Path]:
    """16 HR crops (2 x the patch) and their x4 LR, written once per run."""
    if not ctx.data:
        import cv2

        from esrgan.data.image import imwrite

        size = max(ctx.sizes.gt, 2 * ctx.sizes.real_gt)  # Real-ESRGAN crops whole HR images (crop_pad_size)
        img = photo(4 * size, 4 * size)
        for i in range(16):
            y, x = (i // 4) * size, (i % 4) * size
            hr = img[y : y + size, x : x + size]
            imwrite(ctx.work / "data" / "HR" / f"{i:03d}.png", hr)
            imwrite(ctx.work / "data" / "LR" / f"{i:03d}.png",
                    cv2.resize(hr, (size // 4, size // 4), interpolation=cv2.INTER_AREA))
        ctx.data = {"hr": ctx.work / "data" / "HR", "lr": ctx.work / "data" / "LR", "size": Path(str(size))}
    return ctx.data


def train_options(ctx: Context, name: str, *, gan: bool = False, net: dict[str, int] | None = None) -> dict[str, Any]:
    """An option mapping (BasicSR keys) for the PSNR or GAN stage on the check's data and device."""
    s, data = ctx.sizes, training_data(ctx)
    train: dict[str, Any] = {
        "ema_decay": 0.999,
        "optim_g": {"type": "Adam", "lr": 2e-4, "betas": [0.9, 0.99]},
        "total_iter": s.warmup + s.iters,
        "pixel_opt": {"type": "L1Loss", "loss_weight": 1e-2 if gan else 1.0},
    }
    raw: dict[str, Any] = {
        "name": name, "model_type": "ESRGANModel" if gan else "SRModel", "scale": 4,
        "num_gpu": 1 if ctx.cuda else 0, "manual_seed": 0,
        "datasets": {"train": {
            "name": "check", "type": "PairedImageDataset", "dataroot_gt": str(data["hr"]),
            "dataroot_lq": str(data["lr"]), "io_backend": {"type": "disk"}, "gt_size": s.gt, "use_hflip": True,
            "use_rot": True, "batch_size_per_gpu": s.batch, "num_worker_per_gpu": 2 if ctx.cuda else 0,
            "dataset_enlarge_ratio": 100, "prefetch_mode": "cuda" if ctx.cuda else None,
            "pin_memory": ctx.cuda,
        }},
        "network_g": {"type": "RRDBNet", **(net or s.net)},
        "path": {"experiments_root": str(ctx.work / "experiments" / name)},
        "train": train,
        "logger": {"print_freq": 10**6, "save_checkpoint_freq": 10**6, "use_tb_logger": False},
    }  # fmt: skip
    if gan:
        raw["network_d"] = {"type": "VGGStyleDiscriminator", "num_feat": s.d_feat, "input_size": 128}
        train["optim_d"] = {"type": "Adam", "lr": 2e-4, "betas": [0.9, 0.99]}
        train["gan_opt"] = {"type": "GANLoss", "gan_type": "ragan", "loss_weight": 5e-3}
        if s.perceptual:  # VGG19 conv5_4, random weights: the cost of the real one, no download
            train["perceptual_opt"] = {"type": "PerceptualLoss", "layer_weights": {"conv5_4": 1.0},
                                       "pretrained": False}
    return raw


def train_timed(ctx: Context, raw: dict[str, Any], overrides: tuple[str, ...] = (), *,
                keep: bool = False) -> tuple[float, Any]:
    """Train ``raw``; returns (iterations/s after the warm-up, the trainer). ``keep``: save at the end."""
    from esrgan.options import options_from_dict
    from esrgan.training.trainer import Trainer

    trainer = Trainer(options_from_dict(raw, list(overrides)), interactive=False)
    starts: list[float] = []
    step = trainer.model.optimize_parameters

    def timed(lq: Any, gt: Any, it: int) -> Any:
        sync(ctx)
        starts.append(time.perf_counter())
        return step(lq, gt, it)

    trainer.model.optimize_parameters = timed
    if not keep:
        trainer.save = lambda *a, **k: None  # checkpoint writing is not an iteration
    reset_peak(ctx)
    code = trainer.run()
    sync(ctx)
    starts.append(time.perf_counter())
    if code != 0:
        raise RuntimeError(f"the trainer stopped with exit code {code} (see the log)")
    warm = starts[ctx.sizes.warmup :]
    per_iter = statistics.median(b - a for a, b in itertools.pairwise(warm)) if len(warm) > 1 else 0.0
    return (1.0 / per_iter if per_iter else 0.0), trainer


def its(rate: float) -> str:
    return f"{rate:.2f} it/s" if rate < 10 else f"{rate:.1f} it/s"


def run_python(ctx: Context, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """``python *args`` with this tree on the path; its output goes to the log."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ctx.work)
    ctx.say(f"$ python {' '.join(args)}\n{proc.stdout}{proc.stderr}exit {proc.returncode}")
    return proc


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------------------------------------- checks


def check_gpu(ctx: Context) -> str:
    from esrgan.utils.hardware import cuda_native_bf16

    p = torch.cuda.get_device_properties(ctx.device)
    bf16 = "native" if cuda_native_bf16(ctx.device) else "emulated: AMP trains in fp16"
    return (f"{p.name}, compute capability {p.major}.{p.minor}, {p.total_memory / 1e9:.0f} GB, "
            f"{torch.cuda.device_count()} GPU(s); bf16 {bf16}; torch {torch.__version__}, CUDA {torch.version.cuda}")


def check_matmul(ctx: Context) -> tuple[str, str]:
    n = 8192
    rates = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        a = torch.randn(n, n, device=ctx.device, dtype=dtype)
        b = torch.randn(n, n, device=ctx.device, dtype=dtype)
        for _ in range(3):
            a @ b
        sync(ctx)
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(ctx)
        rates[name] = 2 * n**3 * 10 / (time.perf_counter() - t0) / 1e12
        del a, b
    return (f"{rates['bf16']:.0f} TFLOP/s bf16, {rates['fp16']:.0f} fp16 ({n}^3)",
            "the ceiling for the rows below: RRDBNet x4 is ~36 GFLOP per 1,000 input pixels")


def check_psnr_fp32(ctx: Context) -> str:
    rate, _trainer = train_timed(ctx, train_options(ctx, "psnr_fp32"))
    return f"{its(rate)}, batch {ctx.sizes.batch} x {ctx.sizes.gt}px{peak_gb(ctx)}"


def check_psnr_fp16(ctx: Context) -> str:
    rate, trainer = train_timed(ctx, train_options(ctx, "psnr_fp16"), ("train.use_amp=true", "train.amp_dtype=fp16"))
    scaler = trainer.model.scaler
    return f"{its(rate)}{peak_gb(ctx)}; grad scale {scaler.get_scale():.0f} (enabled: {scaler.is_enabled()})"


def check_psnr_bf16(ctx: Context) -> str:
    rate, trainer = train_timed(ctx, train_options(ctx, "psnr_bf16"), ("train.use_amp=true", "train.amp_dtype=bf16"))
    used = {torch.bfloat16: "bf16", torch.float16: "fp16 + scaler (bf16 emulated here)"}[trainer.model.amp_dtype]
    return f"{its(rate)}{peak_gb(ctx)}; autocast {used}"


def check_channels_last(ctx: Context) -> str:
    amp = ("train.use_amp=true",) if ctx.cuda else ()
    rate, _trainer = train_timed(ctx, train_options(ctx, "psnr_channels_last"), ("train.channels_last=true", *amp))
    return f"{its(rate)}{peak_gb(ctx)}" + (" (with AMP)" if amp else "")


def check_compile(ctx: Context) -> str:
    # 6 blocks: inductor's compile time grows with the graph, and the check must stay within its minutes
    net = {"num_feat": 64, "num_block": 6, "num_grow_ch": 32}
    t0 = time.perf_counter()
    rate, _ = train_timed(ctx, train_options(ctx, "psnr_compile", net=net), ("train.compile_g=true",
                                                                               "train.use_amp=true"))
    eager, _ = train_timed(ctx, train_options(ctx, "psnr_eager", net=net), ("train.use_amp=true",))
    return (f"{its(rate)} compiled vs {its(eager)} eager (6 blocks, AMP){peak_gb(ctx)}; "
            f"both runs {time.perf_counter() - t0:.0f} s")


def check_gan_fp32(ctx: Context) -> str:
    rate, _trainer = train_timed(ctx, train_options(ctx, "gan_fp32", gan=True))
    what = "VGG19 perceptual, VGG D 128" if ctx.sizes.perceptual else "VGG D 128"
    return f"{its(rate)}, {what}{peak_gb(ctx)}"


def check_gan_fp16(ctx: Context) -> str:
    rate, trainer = train_timed(ctx, train_options(ctx, "gan_fp16", gan=True),
                                ("train.use_amp=true", "train.amp_dtype=fp16"))
    return f"{its(rate)}{peak_gb(ctx)}; grad scale {trainer.model.scaler.get_scale():.0f}"


def check_host_syncs(ctx: Context) -> str:
    """Synchronisations the host waits for inside one optimizer step (torch's sync debug mode counts them)."""
    import warnings

    from esrgan.options import options_from_dict
    from esrgan.training.build import build_model

    counts = {}
    for name, gan, amp in (("PSNR", False, ()), ("GAN", True, ()),
                           ("GAN fp16", True, ("train.use_amp=true", "train.amp_dtype=fp16"))):
        opt = options_from_dict(train_options(ctx, f"syncs_{name}", gan=gan), list(amp))
        model = build_model(opt, ctx.device, None)
        s = ctx.sizes
        lq = torch.rand(s.batch, 3, s.gt // 4, s.gt // 4, device=ctx.device)
        gt = torch.rand(s.batch, 3, s.gt, s.gt, device=ctx.device)
        model.optimize_parameters(lq, gt, 1)  # warm-up: lazy initialisations may sync once
        sync(ctx)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                model.optimize_parameters(lq, gt, 2)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts[name] = sum("synchroniz" in str(w.message) for w in seen)
        for w in seen:
            ctx.say(f"{name}: {w.filename}:{w.lineno}: {w.message}")
        del model
    return ", ".join(f"{k} {v}" for k, v in counts.items()) + " per step (fp16: the scaler's check of each optimizer)"


def check_cudnn_benchmark(ctx: Context) -> str:
    from esrgan.training import trainer as trainer_module

    rate_on, _ = train_timed(ctx, train_options(ctx, "cudnn_on"))
    real = trainer_module.set_kernels

    def without_benchmark(device: torch.device, deterministic: bool) -> dict[str, Any]:
        previous = real(device, deterministic)
        torch.backends.cudnn.benchmark = False
        return previous

    trainer_module.set_kernels = without_benchmark
    try:
        rate_off, _ = train_timed(ctx, train_options(ctx, "cudnn_off"))
    finally:
        trainer_module.set_kernels = real
    return f"{its(rate_on)} with cudnn.benchmark, {its(rate_off)} without: x{rate_on / rate_off:.2f}"


def check_deterministic_resume(ctx: Context) -> str:
    """train.deterministic: 4 iterations straight equal 2 + resume + 2, bit for bit, on this GPU."""
    from esrgan.checkpoint import load_checkpoint_file
    from esrgan.options import options_from_dict
    from esrgan.training.trainer import Trainer

    net = {"num_feat": 64, "num_block": 6, "num_grow_ch": 32} if ctx.cuda else ctx.sizes.net

    def weights(name: str, iters: int, resume: bool = False) -> dict[str, torch.Tensor]:
        raw = train_options(ctx, name, net=net)
        opt = options_from_dict(raw, ["train.deterministic=true", f"train.total_iter={iters}",
                                      "datasets.train.num_worker_per_gpu=0"])
        trainer = Trainer(opt, interactive=False, auto_resume=resume)
        if trainer.run() != 0:
            raise RuntimeError("the trainer stopped (see the log)")
        return load_checkpoint_file(Path(raw["path"]["experiments_root"]) / "models" / "net_g_latest.pth")["params"]

    t0 = time.perf_counter()
    straight = weights("det_straight", 4)
    seconds = time.perf_counter() - t0
    weights("det_resumed", 2)
    resumed = weights("det_resumed", 4, resume=True)
    worst = max(float((straight[k].float() - resumed[k].float()).abs().max()) for k in straight)
    if worst:
        raise RuntimeError(f"2 + resume + 2 differs from 4 straight by {worst:.3g} with train.deterministic")
    return f"4 straight == 2 + resume + 2, bit-identical; 4 iterations in {seconds:.1f} s"


def realesrnet_options(ctx: Context, name: str, iters: int) -> dict[str, Any]:
    from esrgan.options import parse_yaml

    s, data = ctx.sizes, training_data(ctx)
    raw = parse_yaml((ROOT / "configs" / "realesrnet_x4plus.yml").read_text(), "realesrnet_x4plus.yml")
    for key in [k for k in raw["datasets"] if k != "train"]:
        del raw["datasets"][key]
    raw.pop("val", None)
    raw.update(name=name, num_gpu=1 if ctx.cuda else 0, manual_seed=0, gt_size=s.real_gt, queue_size=4 * s.batch)
    raw["network_g"].update(s.net)
    raw["path"] = {"experiments_root": str(ctx.work / "experiments" / name)}
    raw["datasets"]["train"].update(dataroot_gt=str(data["hr"]), meta_info=None, crop_pad_size=int(data["size"].name),
                                    gt_size=s.real_gt, batch_size_per_gpu=s.batch,
                                    num_worker_per_gpu=2 if ctx.cuda else 0, dataset_enlarge_ratio=100)
    raw["train"]["total_iter"] = iters
    raw["logger"] = {"print_freq": 10**6, "save_checkpoint_freq": 10**6, "use_tb_logger": False}
    return raw


def check_degradations(ctx: Context) -> str:
    """Real-ESRGAN's degradations (blur, resize, noise, JPEG, twice, sinc) on the device, inside training."""
    s = ctx.sizes
    rate, trainer = train_timed(ctx, realesrnet_options(ctx, "realesrnet", s.warmup + s.iters))
    degrader = trainer.model.degrader
    batch = next(iter(trainer.train_loader))
    degrader(batch)
    sync(ctx)
    t0 = time.perf_counter()
    for _ in range(3):
        degrader(batch)
    sync(ctx)
    per_batch = (time.perf_counter() - t0) / 3
    return (f"{its(rate)} RealESRNet training; degrading a batch of {s.batch} x {2 * s.real_gt}px: "
            f"{per_batch * 1e3:.0f} ms{peak_gb(ctx)}")


def check_realesrgan_cross_device(ctx: Context) -> str:
    """A Real-ESRGAN state saved on the GPU resumes on the CPU (the degradation's generator is reseeded)."""
    from esrgan.options import options_from_dict
    from esrgan.training.trainer import Trainer

    raw = realesrnet_options(ctx, "realesrnet_cross", 2)
    raw["network_g"].update({"num_feat": 8, "num_block": 1, "num_grow_ch": 8})
    raw["datasets"]["train"].update(num_worker_per_gpu=0, prefetch_mode=None)
    if Trainer(options_from_dict(raw), interactive=False).run() != 0:
        raise RuntimeError("the GPU run stopped (see the log)")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("esrgan.data.degradations").addHandler(handler)
    try:
        code = Trainer(options_from_dict(raw, ["num_gpu=0", "train.total_iter=3"]), interactive=False,
                       auto_resume=True).run()
    finally:
        logging.getLogger("esrgan.data.degradations").removeHandler(handler)
    if code != 0:
        raise RuntimeError(f"the CPU resume stopped with exit code {code} (see the log)")
    said = [r for r in records if "another device type" in r]
    if not said:
        raise RuntimeError("resumed on the CPU without the warning about the GPU's generator state")
    return "CUDA state -> CPU run: reseeded, with the warning; iteration 3 done"


def check_ddp(ctx: Context) -> str:
    """DDP over NCCL through the user's command: torchrun ... train.py -opt FILE --launcher pytorch."""
    import yaml

    n = min(torch.cuda.device_count(), 2)
    raw = train_options(ctx, "ddp")
    raw["train"]["total_iter"] = 10
    raw["datasets"]["train"]["prefetch_mode"] = "cuda"
    opt_file = ctx.work / "ddp.yml"
    opt_file.write_text(yaml.safe_dump(raw))
    t0 = time.perf_counter()
    proc = run_python(ctx, ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
                            str(ROOT / "train.py"), "-opt", str(opt_file), "--launcher", "pytorch"], timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(last_line(proc.stderr) or f"exit code {proc.returncode}")
    if f"device cuda:0, rank 0 of {n}" not in proc.stdout + proc.stderr:
        raise RuntimeError(f"rank 0 did not train on cuda:0 in a job of {n} (see the log)")
    return f"world size {n}: 10 iterations in {time.perf_counter() - t0:.0f} s (start-up included)"


def check_more_processes_than_gpus(ctx: Context) -> str:
    import yaml

    n = torch.cuda.device_count() + 1
    opt_file = ctx.work / "too_many.yml"
    opt_file.write_text(yaml.safe_dump(train_options(ctx, "too_many")))
    proc = run_python(ctx, ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
                            str(ROOT / "train.py"), "-opt", str(opt_file), "--launcher", "pytorch"], timeout=180)
    said = [line for line in proc.stderr.splitlines() if "needs GPU" in line]
    if proc.returncode == 0 or not said:
        raise RuntimeError(f"{n} processes on {n - 1} GPU(s) were not refused in one line (see the log)")
    return said[0].split("esrgan train: ")[-1][:110]


def check_metrics(ctx: Context) -> str:
    from esrgan.metrics.psnr_ssim import psnr, ssim
    from esrgan.metrics.psnr_ssim_torch import psnr_torch, ssim_torch

    hr = photo(256, 256)
    sr = np.clip(hr.astype(np.int16) + np.random.default_rng(0).integers(-8, 9, hr.shape), 0, 255).astype(np.uint8)
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float().div(255).to(ctx.device)  # noqa: E731
    t0 = time.perf_counter()
    p = float(psnr_torch(to_t(sr), to_t(hr), crop_border=4, y_channel=True)[0])
    s = float(ssim_torch(to_t(sr), to_t(hr), crop_border=4, y_channel=True)[0])
    sync(ctx)
    seconds = time.perf_counter() - t0
    dp = abs(p - psnr(sr, hr, crop_border=4, y_channel=True))
    ds = abs(s - ssim(sr, hr, crop_border=4, y_channel=True))
    if dp > 1e-4 or ds > 1e-5:
        raise RuntimeError(f"PSNR/SSIM on {ctx.device.type} differ from the numpy reference by {dp:.2g} dB / {ds:.2g}")
    return f"PSNR-Y/SSIM-Y on {ctx.device.type} = numpy to {dp:.0e} dB / {ds:.0e}; {seconds * 1e3:.0f} ms for 256x256"


def frames_per_second(ctx: Context, net: torch.nn.Module) -> float:
    from esrgan.inference.upscaler import Upscaler

    up = Upscaler(net, device=ctx.device, precision="fp16")
    x = torch.rand(1, 3, *FPS_SIZE, device=ctx.device)
    up.upscale_tensor(x)
    sync(ctx)
    t0 = time.perf_counter()
    for _ in range(ctx.sizes.fps_frames):
        up.upscale_tensor(x)
    sync(ctx)
    return ctx.sizes.fps_frames / (time.perf_counter() - t0)


def check_fps_rrdbnet(ctx: Context) -> tuple[str, str]:
    fps = frames_per_second(ctx, rrdbnet(FULL.upscale_net))
    return f"{fps:.1f} frames/s, 640x480 x4 fp16 (23 blocks)", f"{PUBLISHED_FPS['RRDBNet']} on an RTX 4090 (fp16)"


def check_fps_srvgg(ctx: Context) -> tuple[str, str]:
    fps = frames_per_second(ctx, srvgg())
    return f"{fps:.0f} frames/s, 640x480 x4 fp16", f"{PUBLISHED_FPS['SRVGGNetCompact']:.0f} on an RTX 4090 (fp16)"


def check_tiled_fp16(ctx: Context) -> str:
    """fp16 in 128-pixel tiles against the whole image in fp16 and in fp32."""
    from esrgan.inference.upscaler import Upscaler

    net = rrdbnet(ctx.sizes.upscale_net)
    x = torch.from_numpy(photo(*FPS_SIZE)).permute(2, 0, 1)[None].float().div(255)
    tiled = Upscaler(net, device=ctx.device, precision="fp16", tile=128).upscale_tensor(x)
    whole = Upscaler(net, device=ctx.device, precision="fp16").upscale_tensor(x)
    fp32 = Upscaler(net, device=ctx.device, precision="fp32").upscale_tensor(x)
    levels = float((tiled - whole).abs().max()) * 255
    mse = float((whole.double() - fp32.double()).pow(2).mean())
    db = 10 * np.log10(1 / mse) if mse else float("inf")
    return f"tiled vs whole fp16: max {levels:.1f} levels of 255; whole fp16 vs fp32: {db:.1f} dB"


def check_nan_fallback(ctx: Context) -> str:
    """A network whose fp16 activations overflow: the Upscaler redoes it at a wider precision."""
    from esrgan.inference.upscaler import Upscaler

    class Overflows(torch.nn.Module):  # x4; 1e6 x the features is inf in fp16 (max 65504) and inf - inf NaN
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 48, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            big = self.conv(x) * 1e6
            return torch.nn.functional.pixel_shuffle((big - 0.5 * big) / 1e6, 4).sigmoid()

    up = Upscaler(Overflows(), device=ctx.device, precision="fp16")
    x = torch.rand(1, 3, 64, 64, device=ctx.device)
    out = up.upscale_tensor(x)
    if not bool(torch.isfinite(out).all()):
        raise RuntimeError("the output is not finite")
    redone = [str(d).replace("torch.", "") for d in up._wider]
    return f"fp16 overflow redone in {', '.join(redone) or 'nothing (no overflow?)'}"


def check_big_image(ctx: Context) -> str:
    """The defaults on a large photo: automatic tiles, precision auto."""
    from esrgan.inference.upscaler import Upscaler

    side = ctx.sizes.big
    up = Upscaler(rrdbnet(ctx.sizes.upscale_net), device=ctx.device)
    img = photo(side, side)
    tile = up.auto_tile(side, side)
    elements = side * side * up.info.activation_per_pixel
    reset_peak(ctx)
    t0 = time.perf_counter()
    out = up.upscale(img)
    seconds = time.perf_counter() - t0
    if out.shape[:2] != (4 * side, 4 * side):
        raise RuntimeError(f"output {out.shape} for a {side}x{side} input")
    how = f"{tile}-px tiles" if tile else "whole"
    return (f"{side}x{side} -> x4 in {seconds:.1f} s, {how} (whole: {elements / 1e9:.1f}e9 activation elements)"
            f"{peak_gb(ctx)}")


WHOLE_CHILD = """
import sys, time
import torch
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + "/benchmarks")
from gpu_check import rrdbnet, photo, FULL
from esrgan.inference.upscaler import Upscaler
side = int(sys.argv[2])
up = Upscaler(rrdbnet(FULL.upscale_net), device="cuda", tile=side)
t0 = time.perf_counter()
out = up.upscale(photo(side, side))
torch.cuda.synchronize()
print(f"whole {side}x{side}: {time.perf_counter() - t0:.1f} s, {torch.cuda.max_memory_allocated() / 1e9:.0f} GB peak,"
      f" finite {bool((out >= 0).all())}")
"""


def check_whole_big_image(ctx: Context) -> str:
    """The same image in one pass (activations above 2**31 elements), in a separate process: an illegal memory
    access would end the process it happens in."""
    side = ctx.sizes.big
    script = ctx.work / "whole.py"
    script.write_text(WHOLE_CHILD)
    proc = run_python(ctx, [str(script), str(ROOT), str(side)], timeout=240)
    if proc.returncode != 0:
        raise RuntimeError(last_line(proc.stderr) or f"exit code {proc.returncode}")
    return last_line(proc.stdout) + " (automatic tiles stay below 2**31 elements)"


def check_cuda_module(ctx: Context) -> str:
    """An Upscaler given a module on the GPU keeps its fp32 reference on the host."""
    from esrgan.inference.upscaler import Upscaler

    net = rrdbnet(ctx.sizes.upscale_net).to(ctx.device)
    weights = sum(p.numel() for p in net.parameters())
    torch.cuda.synchronize(ctx.device)
    before = torch.cuda.memory_allocated(ctx.device)
    up = Upscaler(net, device=ctx.device, precision="fp16")
    added = torch.cuda.memory_allocated(ctx.device) - before
    where = next(up._reference.parameters()).device.type
    if where != "cpu":
        raise RuntimeError(f"the fp32 reference is on {where}")
    return (f"reference on the host; the device holds {added / 1e6:.0f} MB more "
            f"(fp16 weights: {weights * 2 / 1e6:.0f} MB)")


def check_upscale_cli(ctx: Context) -> str:
    from esrgan.commands.upscale import main as upscale
    from esrgan.data.image import imread, imwrite

    src = ctx.work / "cli" / "in.png"
    imwrite(src, photo(*FPS_SIZE) if ctx.cuda else photo(48, 64))
    precision, tile = ("fp16", 256) if ctx.cuda else ("fp32", 32)
    args = [str(src), "-o", str(ctx.work / "cli" / "out.png"), "--model", str(model_file(ctx)),
            "--device", ctx.device.type, "--precision", precision, "--tile", str(tile)]
    if upscale(args) != 0:
        raise RuntimeError("esrgan upscale failed (see the log)")
    h, w = imread(ctx.work / "cli" / "out.png").shape[:2]
    return f"esrgan upscale --precision {precision} --tile {tile}: {w}x{h} written"


def check_video(ctx: Context) -> str:
    try:
        sys.path.insert(0, str(ROOT / "tests"))
        from synthetic_video import make_test_clip  # PyAV
    except ImportError as exc:
        raise Skip(f"{exc.name or 'av'} not installed (pip install av)") from None
    from esrgan.commands.video import main as video

    width, height, frames = ctx.sizes.video
    (ctx.work / "video").mkdir(parents=True, exist_ok=True)
    src = make_test_clip(ctx.work / "video" / "in.mp4", frames=frames, width=width, height=height, audio="aac")
    dst = ctx.work / "video" / "out.mp4"
    t0 = time.perf_counter()
    # the defaults but the model (the default one is downloaded): precision, tiles, frames per pass, codec
    if video([str(src), "-o", str(dst), "--model", str(model_file(ctx))]) != 0:
        raise RuntimeError("esrgan video failed (see the log)")
    seconds = time.perf_counter() - t0
    return f"{width}x{height} -> x4, {frames} frames in {seconds:.1f} s ({frames / seconds:.2f} frames/s, encode incl.)"


def check_onnx(ctx: Context) -> str:
    try:
        import onnxruntime as ort
    except ImportError:
        raise Skip("onnxruntime not installed (pip install onnxruntime-gpu)") from None
    from esrgan.inference.export import export_onnx

    net = srvgg().to(ctx.device)
    x = torch.rand(1, 3, 64, 80, device=ctx.device)
    with torch.no_grad():
        ref = net(x).float().cpu().numpy()
    path = export_onnx(srvgg(), ctx.work / "onnx" / "srvgg.onnx")
    providers = ort.get_available_providers()
    wanted = "CUDAExecutionProvider" if ctx.cuda else "CPUExecutionProvider"
    use = [wanted] if wanted in providers else ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), providers=use)
    got = session.run(None, {"input": x.cpu().numpy()})[0]
    worst = float(np.abs(got - ref).max())
    if worst > 1e-3:
        raise RuntimeError(f"onnxruntime ({use[0]}) differs from PyTorch on {ctx.device.type} by {worst:.2g}")
    note = "" if use[0] == wanted else f"; onnxruntime has no {wanted} here (providers: {', '.join(providers)})"
    return f"SRVGGNetCompact, {use[0]} vs PyTorch on {ctx.device.type}: max {worst:.1e}{note}"


def check_serve(ctx: Context) -> str:
    try:
        from starlette.testclient import TestClient
    except (ImportError, RuntimeError) as exc:  # starlette's TestClient says RuntimeError without its httpx
        raise Skip(f"{getattr(exc, 'name', None) or exc} (the serve extra and its test client)") from None
    from esrgan.data.image import imencode
    from esrgan.serve import ServeConfig, create_app

    model = model_file(ctx)
    config = ServeConfig(model_dirs=[str(model.parent)], experiments_root=str(ctx.work / "experiments"),
                         zoo_cache=str(ctx.work / "zoo"), device=ctx.device.type, work_dir=str(ctx.work / "serve"))
    png = imencode(photo(240, 320), ".png")
    with TestClient(create_app(config), base_url="http://127.0.0.1:7860") as client:
        info = client.get("/api/info").json()
        r = client.post("/api/jobs", files=[("files", ("photo.png", png, "application/octet-stream"))],
                        data={"model": str(model)})
        if r.status_code != 200:
            raise RuntimeError(f"POST /api/jobs: {r.status_code} {r.text[:100]}")
        job, end = r.json()["job"], time.time() + 120
        while time.time() < end:
            st = client.get(f"/api/jobs/{job}").json()
            if st["state"] in ("done", "error", "cancelled"):
                break
            time.sleep(0.05)
        if st["state"] != "done":
            raise RuntimeError(f"job {st['state']}: {st.get('message')}")
    return f"a 320x240 job done on {info.get('device', ctx.device.type)}"


CHECKS = [
    Check("gpu", check_gpu, cuda_only=True),
    Check("matmul", check_matmul, cuda_only=True),
    Check("train psnr fp32", check_psnr_fp32),
    Check("train psnr amp fp16", check_psnr_fp16, cuda_only=True),
    Check("train psnr amp bf16", check_psnr_bf16, cuda_only=True),
    Check("train channels_last", check_channels_last),
    Check("train torch.compile", check_compile, cuda_only=True),
    Check("train gan fp32", check_gan_fp32),
    Check("train gan amp fp16", check_gan_fp16, cuda_only=True),
    Check("host syncs", check_host_syncs, cuda_only=True),
    Check("cudnn.benchmark", check_cudnn_benchmark, cuda_only=True),
    Check("deterministic resume", check_deterministic_resume, cuda_only=True),
    Check("degradations", check_degradations),
    Check("resume cuda->cpu", check_realesrgan_cross_device, cuda_only=True),
    Check("ddp nccl", check_ddp, cuda_only=True),
    Check("too many processes", check_more_processes_than_gpus, cuda_only=True),
    Check("metrics", check_metrics),
    Check("fps rrdbnet", check_fps_rrdbnet, cuda_only=True),
    Check("fps srvgg", check_fps_srvgg, cuda_only=True),
    Check("upscale fp16 tiled", check_tiled_fp16, cuda_only=True),
    Check("nan fallback", check_nan_fallback, cuda_only=True),
    Check("cuda module", check_cuda_module, cuda_only=True),
    Check("big image", check_big_image),
    Check("big image whole", check_whole_big_image, cuda_only=True),
    Check("upscale cli", check_upscale_cli),
    Check("video", check_video),
    Check("onnx", check_onnx),
    Check("serve", check_serve),
]
NAMES = [c.name for c in CHECKS]


# ---------------------------------------------------------------------------------------------------- running


@contextlib.contextmanager
def into_log(log: Any) -> Iterator[None]:
    """Everything a check prints (loggers set up inside it included) goes to the log, not between the rows."""
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield


def error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def run_check(check: Check, ctx: Context) -> Row:
    if check.cuda_only and not ctx.cuda:
        return Row(check.name, "skipped: no CUDA", 0.0)
    ctx.say(f"\n===== {check.name}")
    t0 = time.perf_counter()
    figure, reference, result = "", "", "ok"
    try:
        with into_log(ctx.log):
            out = check.run(ctx)
        figure, reference = out if isinstance(out, tuple) else (out, "")
    except Skip as exc:
        result = f"skipped: {exc}"
    except (Exception, SystemExit) as exc:  # a row's failure is its result (a CLI's exit too); the next row runs
        result = error_line(exc) if not isinstance(exc, SystemExit) else f"exit {exc.code} (see the log)"
        ctx.say(traceback.format_exc())
    finally:
        from esrgan.utils.logger import close_logger

        close_logger("esrgan")
        gc.collect()
        if ctx.cuda:
            torch.cuda.empty_cache()
    row = Row(check.name, result, time.perf_counter() - t0, figure, reference)
    ctx.say(f"-> {row}")
    return row


def print_table(rows: list[Row], out: Any) -> None:
    def cut(text: str, n: int) -> str:
        return text if len(text) <= n else text[: n - 1] + "~"

    width = max(len(r.check) for r in rows)
    print(f"{'check':<{width}}  {'result':<40} {'time':>7}  figure [reference]", file=out)
    for r in rows:
        ref = f" [ref: {r.reference}]" if r.reference else ""
        print(f"{r.check:<{width}}  {cut(r.result, 40):<40} {r.seconds:6.1f}s  {r.figure}{ref}", file=out)


def parse_only(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown check {', '.join(unknown) or repr(text)}; "
                                         f"the checks are: {', '.join(NAMES)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda (default); cpu runs the script end to end, the CUDA-only rows skipped")
    p.add_argument("--quick", action="store_true", help="smaller networks and images, fewer iterations and frames")
    p.add_argument("--only", type=parse_only, metavar="NAMES", help="comma-separated check names (see the table)")
    p.add_argument("--log", type=Path, help="everything the checks print (default: esrgan_gpu_check.log in the "
                   "temporary folder)")
    p.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    return p


def check_output_path(parser: argparse.ArgumentParser, flag: str, path: Path | None) -> None:
    if path is None:
        return
    if path.is_dir():
        parser.error(f"{flag} {path}: is a folder, expected a file name")
    if not path.parent.is_dir():
        parser.error(f"{flag} {path}: folder {path.parent} does not exist")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_output_path(parser, "--log", args.log)
    check_output_path(parser, "--json", args.json)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device: torch sees no GPU (torch.version.cuda = "
              f"{torch.version.cuda}); run it on a GPU machine, or with --device cpu to test the script",
              file=sys.stderr)
        return 2
    from esrgan.utils.hardware import cpu_summary

    device = torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")
    sizes = CPU if device.type == "cpu" else QUICK if args.quick else FULL
    log_path = args.log or Path(tempfile.gettempdir()) / "esrgan_gpu_check.log"
    work = Path(tempfile.mkdtemp(prefix="esrgan_gpu_check_"))
    out = sys.stdout
    selected = [c for c in CHECKS if args.only is None or c.name in args.only]
    print(f"esrgan GPU check ({'quick' if args.quick else 'full'}) on {device}; CPU: {cpu_summary()}", file=out)
    rows: list[Row] = []
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            ctx = Context(device=device, sizes=sizes, work=work, log=log)
            for check in selected:
                rows.append(run_check(check, ctx))
                print(f"  {rows[-1].check}: {rows[-1].result} ({rows[-1].seconds:.1f} s)", file=out, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(file=out)
    print_table(rows, out)
    print(f"\nlog: {log_path}", file=out)
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "quick": args.quick, "cpu": cpu_summary(),
                                         "rows": [asdict(r) for r in rows]}, indent=1))
    failed = [r for r in rows if not (r.result == "ok" or r.result.startswith("skipped"))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
