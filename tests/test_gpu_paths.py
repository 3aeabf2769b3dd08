"""The CUDA and multi-GPU paths, simulated on a CPU (issue 25): a patched device count, compute capability or
generator state shows what a GPU machine would do. What only a GPU can show is in benchmarks/gpu_check.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from esrgan.training import dist as dist_utils
from esrgan.training.dist import DistInfo
from esrgan.training.preflight import pick_device


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A machine with 2 GPUs as torch sees it; the list records ``torch.cuda.set_device`` calls."""
    chosen: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    return chosen


@pytest.fixture
def torchrun_env(monkeypatch: pytest.MonkeyPatch):
    """Sets the variables torchrun gives rank ``rank`` of ``world`` (``local_rank`` on its node)."""

    def set_env(rank: int, world: int, local_rank: int) -> None:
        for key, value in {"RANK": rank, "WORLD_SIZE": world, "LOCAL_RANK": local_rank,
                           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": 29999}.items():
            monkeypatch.setenv(key, str(value))

    return set_env


def _minimal_file(tmp_path: Path, **changes: object) -> Path:
    raw = {
        "name": "gpu_paths",
        "num_gpu": "auto",
        "manual_seed": 1,
        "datasets": {"train": {"name": "t", "type": "PairedImageDataset", "dataroot_gt": str(tmp_path),
                               "dataroot_lq": str(tmp_path), "gt_size": 16, "batch_size_per_gpu": 1}},
        "network_g": {"type": "RRDBNet", "num_feat": 8, "num_block": 1, "num_grow_ch": 8},
        "path": {"experiments_root": str(tmp_path / "exp")},
        "train": {"optim_g": {"type": "Adam", "lr": 1e-4}, "total_iter": 1,
                  "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0}},
        **changes,
    }
    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


# ---- num_gpu: auto, the device of each process ---------------------------------------------------------------


def test_num_gpu_auto_is_one_gpu_per_process_on_a_two_gpu_machine(two_gpus, tmp_path: Path, monkeypatch) -> None:
    from esrgan.commands import train as train_cmd
    from esrgan.options import load_options

    assert load_options(_minimal_file(tmp_path)).num_gpu == 1
    started = []
    monkeypatch.setattr("esrgan.training.trainer.train", lambda opt, **kw: started.append((opt, kw)) or 0)
    # the README's quick start on a 2-GPU machine: one process, not refused
    assert train_cmd.main(["-opt", str(_minimal_file(tmp_path))]) == 0
    assert started and started[0][0].num_gpu == 1 and not started[0][1]["dist_info"].distributed
    assert pick_device(1, DistInfo()) == torch.device("cuda", 0)
    # under a launcher, each process trains on its own GPU
    assert pick_device(1, DistInfo(rank=1, world_size=2, local_rank=1, distributed=True)) == torch.device("cuda", 1)


def test_more_processes_than_gpus_is_one_line_before_any_gpu_or_process_group(
    two_gpus, torchrun_env, monkeypatch, tmp_path: Path, capsys
) -> None:
    from esrgan.commands import train as train_cmd

    groups: list[str] = []
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: groups.append(kw["backend"]))
    torchrun_env(rank=2, world=3, local_rank=2)  # torchrun --nproc_per_node 3 on a 2-GPU node
    with pytest.raises(RuntimeError, match=r"local rank 2 needs GPU 2, but this node has 2 GPUs: start at most 2 "
                                           r"processes per node \(torchrun --nproc_per_node 2\)"):
        dist_utils.init_dist("pytorch", backend="nccl")
    assert two_gpus == [] and groups == []  # no second rank on GPU 0, no NCCL group that would fail later
    assert train_cmd.main(["-opt", str(_minimal_file(tmp_path)), "--launcher", "pytorch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "local rank 2 needs GPU 2" in err
    with pytest.raises(RuntimeError, match="local rank 2 needs GPU 2"):
        pick_device(1, DistInfo(rank=2, world_size=3, local_rank=2, distributed=True))
    # num_gpu: 0 trains on the CPU (gloo) whatever the GPUs: any number of processes
    dist_utils.init_dist("pytorch", backend="gloo", use_gpu=False)
    assert two_gpus == [] and groups == ["gloo"]
    # within the node's GPUs, each rank takes its own
    torchrun_env(rank=1, world=2, local_rank=1)
    dist_utils.init_dist("pytorch", backend="nccl")
    assert two_gpus == [1] and groups == ["gloo", "nccl"]


# ---- bf16 from the compute capability of the device used -----------------------------------------------------


@pytest.fixture
def volta_beside_hopper(monkeypatch: pytest.MonkeyPatch) -> None:
    """GPU 0 (the current device) is an H100 (9.0), GPU 1 a V100 (7.0); torch says bf16 "works" on both."""
    capabilities = {0: (9, 0), 1: (7, 0)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda device=None: capabilities[torch.device(device).index if not isinstance(device, int)
                                                         else device])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")


def test_training_autocast_is_fp16_with_the_scaler_where_bf16_is_emulated(volta_beside_hopper, caplog) -> None:
    from esrgan.training.precision import amp_dtype_for

    with caplog.at_level("WARNING", logger="esrgan.training.precision"):
        assert amp_dtype_for(True, "bf16", torch.device("cuda", 1)) == torch.float16
    assert "bf16 is emulated on cuda:1 (compute capability 7.0; native from 8.0)" in caplog.text
    # the device used, not the current one; an explicit fp16, fp32 and the CPU are left as asked
    assert amp_dtype_for(True, "bf16", torch.device("cuda", 0)) == torch.bfloat16
    assert amp_dtype_for(True, "fp16", torch.device("cuda", 1)) == torch.float16
    assert amp_dtype_for(False, "bf16", torch.device("cuda", 1)) is None
    assert amp_dtype_for(True, "bf16", torch.device("cpu")) == torch.bfloat16


def test_inference_overflow_fallback_tries_bf16_only_where_it_is_native(volta_beside_hopper, caplog) -> None:
    from esrgan.inference.upscaler import bf16_is_fast, resolve_precision

    assert not bf16_is_fast(torch.device("cuda", 1))  # fp16 overflow on a V100: straight to fp32
    assert bf16_is_fast(torch.device("cuda", 0))
    with caplog.at_level("WARNING", logger="esrgan"):
        assert resolve_precision("bf16", torch.device("cuda", 1)) == torch.bfloat16  # asked for: runs, with a warning
    assert "precision bf16 on Tesla V100: emulated before compute capability 8.0" in caplog.text


# ---- inference on a GPU ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED"])
def test_a_cudnn_or_cublas_allocation_failure_is_retried_with_smaller_tiles(status: str, caplog) -> None:
    from esrgan.inference.upscaler import Upscaler

    class Workspace(torch.nn.Module):  # x2 nearest; its "library" cannot allocate a workspace above 40 pixels
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if max(x.shape[-2:]) > 40:
                raise RuntimeError(f"cuDNN error: {status}" if "CUDNN" in status
                                   else f"CUDA error: {status} when calling `cublasCreate(handle)`")
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    up = Upscaler(Workspace(), device="cpu", precision="fp32", tile_pad=4)
    x = torch.rand(1, 3, 64, 64)
    with caplog.at_level("WARNING", logger="esrgan"):
        out = up.upscale_tensor(x)
    assert torch.equal(out, torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    assert "out of memory on cpu with the whole image; retrying this image with 32-pixel tiles" in caplog.text


def test_automatic_tiles_count_the_wider_copy_a_nan_fallback_brings_to_the_device(monkeypatch) -> None:
    from esrgan.inference import upscaler as upscaler_module
    from esrgan.inference.upscaler import MEMORY_SHARE, Upscaler

    class Heavy(torch.nn.Module):  # x2, with 1 M weights that do nothing (a large network's weight memory)
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 12, 3, padding=1)
            self.unused = torch.nn.Parameter(torch.zeros(1 << 20))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.pixel_shuffle(self.conv(x), 2)

    up = Upscaler(Heavy(), device="cpu", precision="bf16", tile_pad=8)  # wider copy on a NaN: fp32 (4 MiB)
    activations = 64 * 64 * up.bytes_per_pixel()
    fp32_copy = sum(p.numel() for p in Heavy().parameters()) * 4
    # free memory for the whole image's activations, but not for them and the fp32 copy of the weights
    monkeypatch.setattr(upscaler_module, "free_memory", lambda device: (activations + fp32_copy / 2) / MEMORY_SHARE)
    assert up.auto_tile(64, 64) > 0
    assert up.auto_tile(64, 64) == up.auto_tile(64, 64, budget=max(activations - fp32_copy / 2, 0))
    up._wider_model(torch.float32)  # once the copy exists, the device's free memory counts it
    assert up.auto_tile(64, 64) == 0


# ---- the training loop on a GPU ---------------------------------------------------------------------------


def test_step_time_waits_for_the_device_once_per_iteration(tmp_path: Path, monkeypatch) -> None:
    # A GPU runs the step after the host queued it: without a wait the step's time is the queueing and the
    # "data" time absorbs the compute (the next batch's copy waits for it).
    from tiny_training import make_tiny_data, tiny_options_dict

    from esrgan.options import options_from_dict
    from esrgan.training import trainer as trainer_module
    from esrgan.utils import hardware

    waited: list[object] = []
    monkeypatch.setattr(torch.cuda, "synchronize", waited.append)
    hardware.synchronize(torch.device("cuda", 1))
    hardware.synchronize(torch.device("cpu"))
    assert waited == [torch.device("cuda", 1)]

    devices: list[torch.device] = []
    monkeypatch.setattr(trainer_module, "synchronize", devices.append)
    data = make_tiny_data(tmp_path / "data", n_train=4, n_val=1)
    opt = options_from_dict(tiny_options_dict(data, tmp_path / "exp", total_iter=3), ["val.val_freq=0"])
    assert trainer_module.Trainer(opt, interactive=False).run() == 0
    assert devices == [torch.device("cpu")] * 3


def test_cudnn_benchmark_on_cuda_unless_deterministic_and_settings_put_back(monkeypatch) -> None:
    from esrgan.training.preflight import CUBLAS_WORKSPACE_CONFIG, restore_kernels, set_kernels

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    before = (torch.backends.cudnn.deterministic, torch.are_deterministic_algorithms_enabled())
    saved = set_kernels(torch.device("cuda", 0), deterministic=False)
    assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
    restore_kernels(saved)
    assert not torch.backends.cudnn.benchmark
    set_kernels(torch.device("cpu"), deterministic=False)
    assert not torch.backends.cudnn.benchmark  # nothing to benchmark on the CPU

    saved = set_kernels(torch.device("cuda", 0), deterministic=True)
    try:
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()  # no kernel: a warning, not a stopped run
        import os

        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE_CONFIG == ":4096:8"
    finally:
        restore_kernels(saved)
    assert (torch.backends.cudnn.deterministic, torch.are_deterministic_algorithms_enabled()) == before


def test_train_deterministic_holds_during_the_run_only(tmp_path: Path) -> None:
    from tiny_training import make_tiny_data, tiny_options_dict

    from esrgan.options import options_from_dict
    from esrgan.training.trainer import Trainer

    data = make_tiny_data(tmp_path / "data", n_train=4, n_val=1)
    opt = options_from_dict(tiny_options_dict(data, tmp_path / "exp", total_iter=2),
                            ["val.val_freq=0", "train.deterministic=true"])
    assert opt.train.deterministic is True
    trainer = Trainer(opt, interactive=False)
    step = trainer.model.optimize_parameters
    seen: list[bool] = []

    def watched(lq, gt, it):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return step(lq, gt, it)

    trainer.model.optimize_parameters = watched
    assert trainer.run() == 0
    assert seen == [True, True] and not torch.are_deterministic_algorithms_enabled()


def test_automatic_tiles_keep_activations_below_two_to_the_31_elements(monkeypatch) -> None:
    # A card with 141 GB fits RRDBNet x4's activations for ~8.7 MP whole: 1,024 elements per input pixel, 8.9e9
    # in the last convolutions, past what 32-bit-indexed CUDA kernels address.
    from esrgan.inference import upscaler as upscaler_module
    from esrgan.inference.upscaler import MAX_ACTIVATION_ELEMENTS, Upscaler

    class Wide(torch.nn.Module):  # x4 with 64 channels at the output size: 1,024 elements per input pixel
        def __init__(self) -> None:
            super().__init__()
            self.up = torch.nn.Upsample(scale_factor=4)
            self.conv = torch.nn.Conv2d(3, 64, 1)
            self.out = torch.nn.Conv2d(64, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.conv(self.up(x)))

    monkeypatch.setattr(upscaler_module, "free_memory", lambda device: 141e9)
    up = Upscaler(Wide(), device="cpu", precision="fp32")
    assert up.info.activation_per_pixel == 1024
    assert up.auto_tile(1400, 1400) == 0  # 2.0e9 elements: whole
    tile = up.auto_tile(3000, 3000)  # 9.2e9: tiled, each window below the limit
    assert tile > 0 and (tile + 2 * up.tile_pad) ** 2 * 1024 <= MAX_ACTIVATION_ELEMENTS
    assert up.auto_tile(3000, 3000, budget=1e15) == tile
