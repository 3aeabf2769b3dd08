"""Options: BasicSR files parse unchanged, our configs load, errors name the file, key path and allowed values."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from esrgan.options import (
    GANOptions,
    Options,
    OptionsError,
    load_options,
    options_from_dict,
    parse_yaml,
    save_options,
)
from esrgan.options.sections import WandbOptions
from esrgan.training.models import build_optimizer

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# BasicSR's own option files for the two ESRGAN stages (two revisions each) and its ESRGAN test file,
# verbatim (tests/fixtures/basicsr/README.md says where each comes from).
BASICSR = Path(__file__).resolve().parent / "fixtures" / "basicsr"
BASICSR_ESRGAN_X4 = (BASICSR / "train_ESRGAN_x4.yml").read_text()
BASICSR_ESRGAN_X4_OLD = (BASICSR / "train_ESRGAN_x4_old.yml").read_text()
BASICSR_PSNR_X4 = (BASICSR / "train_RRDBNet_PSNR_x4.yml").read_text()
BASICSR_PSNR_X4_OLD = (BASICSR / "train_RRDBNet_PSNR_x4_old.yml").read_text()
BASICSR_TEST_ESRGAN_X4 = (BASICSR / "test_ESRGAN_x4.yml").read_text()


@pytest.fixture
def write(tmp_path):
    def _write(text: str, name: str = "opt.yml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write


MINIMAL = """
name: tiny
model_type: SRModel
scale: 4
datasets:
  train:
    name: t
    dataroot_gt: hr
    dataroot_lq: lr
    gt_size: 32
network_g: {type: RRDBNet, num_feat: 8, num_block: 1, num_grow_ch: 4}
train:
  optim_g: {type: Adam, lr: 2e-4, betas: [0.9, 0.99]}
  total_iter: 10
  pixel_opt: {type: L1Loss}
"""

GAN_EXTRA = """
network_d: {type: VGGStyleDiscriminator, num_feat: 8}
"""


def minimal(**changes: object) -> dict:
    raw = parse_yaml(MINIMAL)
    raw.update(changes)
    return raw


def gan_raw(gan: dict, model_type: str = "ESRGANModel") -> dict:
    raw = minimal(model_type=model_type, network_d={"type": "VGGStyleDiscriminator", "num_feat": 8})
    raw["train"]["optim_d"] = {"type": "Adam", "lr": 1e-4}
    raw["train"]["gan_opt"] = {"type": "GANLoss", **gan}
    return raw


# ---------------------------------------------------------------------------------------------
# BasicSR option files, unchanged
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [BASICSR_ESRGAN_X4, BASICSR_ESRGAN_X4_OLD], ids=["1.x", "old"])
def test_basicsr_esrgan_file_parses(write, text: str) -> None:
    opt = load_options(write(text))
    assert opt.model_type == "ESRGANModel" and opt.is_gan and opt.scale == 4
    # ESRGANModel with gan_type vanilla trains the relativistic average GAN, as BasicSR does
    gan = opt.train.gan_opt
    assert isinstance(gan, GANOptions) and gan.relativistic is True
    assert gan.spec() == {
        "type": "GANLoss",
        "gan_type": "vanilla",
        "real_label_val": 1.0,
        "fake_label_val": 0.0,
        "loss_weight": 5e-3,
    }
    assert opt.train.perceptual_opt.kwargs["layer_weights"] == {"conv5_4": 1.0}
    assert opt.train.pixel_opt.spec() == {"type": "L1Loss", "loss_weight": 1e-2, "reduction": "mean"}
    assert opt.network_d.spec() == {"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": 64, "input_size": 128}
    assert opt.network_g.kwargs["num_block"] == 23 and opt.network_g.kwargs["scale"] == 4
    assert opt.path.pretrain_network_g.endswith("net_g_1000000.pth") and opt.path.strict_load_g is True
    train = opt.datasets["train"]
    assert (train.phase, train.scale, train.gt_size, train.batch_size_per_gpu) == ("train", 4, 128, 16)
    assert train.use_hflip is True and train.use_shuffle is True  # use_flip: BasicSR's old name
    assert opt.datasets["val"].phase == "val" and opt.datasets["val"].gt_size is None
    g = opt.train.optim_g
    assert (g.type, g.kwargs["lr"], g.kwargs["betas"], g.kwargs["weight_decay"]) == ("Adam", 1e-4, (0.9, 0.99), 0.0)
    assert opt.train.scheduler.milestones == [50000, 100000, 200000, 300000] and opt.train.scheduler.gamma == 0.5
    assert opt.train.total_iter == 400000 and opt.train.warmup_iter == -1
    # !!float 5e3 is an iteration count
    assert opt.val.val_freq == 5000 and isinstance(opt.val.val_freq, int)
    assert opt.logger.save_checkpoint_freq == 5000 and isinstance(opt.logger.save_checkpoint_freq, int)
    psnr = opt.val.metrics["psnr"]
    assert (psnr.type, psnr.crop_border, psnr.test_y_channel) == ("psnr", 4, False)
    assert (opt.dist_params.backend, opt.dist_params.port) == ("nccl", 29500)
    assert opt.path.experiments_root == f"experiments/{opt.name}"
    assert opt.path.models == f"experiments/{opt.name}/models"


def test_basicsr_ema_decay_is_read(write) -> None:
    assert load_options(write(BASICSR_ESRGAN_X4)).train.ema_decay == 0.999
    assert load_options(write(BASICSR_ESRGAN_X4_OLD)).train.ema_decay == 0.0


@pytest.mark.parametrize("text", [BASICSR_PSNR_X4, BASICSR_PSNR_X4_OLD], ids=["1.x", "old"])
def test_basicsr_psnr_file_parses(write, text: str) -> None:
    opt = load_options(write(text))
    assert opt.model_type == "SRModel" and not opt.is_gan
    s = opt.train.scheduler
    assert s.type == "CosineAnnealingRestartLR" and s.periods == [250000] * 4
    assert s.restart_weights == [1.0] * 4 and s.eta_min == 1e-7
    assert opt.train.optim_g.kwargs["lr"] == 2e-4 and opt.train.total_iter == 1_000_000
    assert opt.train.pixel_opt.spec() == {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}
    assert opt.train.gan_opt is None and opt.network_d is None
    assert opt.path.pretrain_network_g is None and opt.path.strict_load_g is True  # old: pretrain_model_g, strict_load
    assert opt.network_g.spec()["num_grow_ch"] == 32


def test_basicsr_wandb_section_is_read(write) -> None:
    # BasicSR's files carry logger.wandb: {project: ~, resume_id: ~}; a project turns W&B logging on
    # (tests/test_train.py::test_wandb_logs_offline runs it).
    text = BASICSR_PSNR_X4.replace("    project: ~", "    project: my_project")
    opt = load_options(write(text))
    assert opt.logger.wandb == WandbOptions(project="my_project", resume_id=None)
    assert load_options(write(BASICSR_PSNR_X4)).logger.wandb == WandbOptions(project=None, resume_id=None)


def test_old_and_new_key_together_is_an_error(write) -> None:
    text = BASICSR_ESRGAN_X4.replace("    use_flip: true\n", "    use_flip: true\n    use_hflip: false\n")
    with pytest.raises(OptionsError, match=r"datasets\.train\.use_flip: both 'use_flip'"):
        load_options(write(text))


# ---------------------------------------------------------------------------------------------
# our configs
# ---------------------------------------------------------------------------------------------

# test_*.yml and interp_*.yml are the evaluation tools' own formats (esrgan.options.testing).
TRAIN_CONFIGS = sorted(p for p in CONFIGS.glob("*.yml") if not p.name.startswith(("test_", "interp_")))


def test_the_training_configs_exist() -> None:
    names = {p.name for p in TRAIN_CONFIGS}
    expected = {"rrdb_psnr_x4.yml", "esrgan_x4.yml", "rrdb_psnr_x2.yml", "esrgan_x2.yml"}
    assert expected | {"demo_psnr_x4.yml", "demo_esrgan_x4.yml"} <= names


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_and_round_trips(path: Path, tmp_path: Path) -> None:
    from esrgan.archs import scale_argument

    opt = load_options(path)
    assert opt.network_g.kwargs[scale_argument(opt.network_g.type)] == opt.scale
    assert all(d.scale == opt.scale for d in opt.datasets.values())
    assert all(m.crop_border == opt.scale and m.test_y_channel for m in opt.val.metrics.values())
    saved = save_options(opt, tmp_path / "resolved.yml")
    assert load_options(saved) == opt


def test_published_recipe_stage1() -> None:
    opt = load_options(CONFIGS / "rrdb_psnr_x4.yml")
    train = opt.datasets["train"]
    assert train.io_backend.type == "lmdb" and train.dataroot_gt.endswith("DIV2K_train_HR_sub.lmdb")
    assert (train.gt_size, train.batch_size_per_gpu, train.use_hflip, train.use_rot) == (128, 16, True, True)
    t = opt.train
    assert (t.optim_g.type, t.optim_g.kwargs["lr"], t.optim_g.kwargs["betas"]) == ("Adam", 2e-4, (0.9, 0.99))
    assert t.ema_decay == 0.999 and t.total_iter == 1_000_000
    assert (t.scheduler.type, t.scheduler.periods, t.scheduler.eta_min) == (
        "CosineAnnealingRestartLR",
        [250000] * 4,
        1e-7,
    )
    assert t.pixel_opt.spec() == {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}
    assert opt.datasets["val"].name == "Set5"
    net = opt.network_g.kwargs
    assert (net["num_feat"], net["num_block"], net["num_grow_ch"]) == (64, 23, 32)


def test_published_recipe_stage2() -> None:
    stage1 = load_options(CONFIGS / "rrdb_psnr_x4.yml")
    opt = load_options(CONFIGS / "esrgan_x4.yml")
    # initialised from stage 1's generator
    assert opt.path.pretrain_network_g == f"{stage1.path.models}/net_g_latest.pth"
    assert opt.network_g.spec() == stage1.network_g.spec()
    t = opt.train
    assert t.pixel_opt.kwargs["loss_weight"] == 1e-2
    p = t.perceptual_opt.kwargs
    assert (p["layer_weights"], p["vgg_type"], p["use_input_norm"], p["perceptual_weight"]) == (
        {"conv5_4": 1.0},
        "vgg19",
        True,
        1.0,
    )
    assert p["pretrained"] is True and p["style_weight"] == 0.0
    assert (
        t.gan_opt.kwargs["gan_type"] == "ragan" and t.gan_opt.relativistic and t.gan_opt.kwargs["loss_weight"] == 5e-3
    )
    assert opt.network_d.spec() == {"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": 64, "input_size": 128}
    assert t.optim_g.kwargs["lr"] == t.optim_d.kwargs["lr"] == 1e-4 and t.optim_d.kwargs["betas"] == (0.9, 0.99)
    assert (t.scheduler.type, t.scheduler.milestones, t.scheduler.gamma) == (
        "MultiStepLR",
        [50000, 100000, 200000, 300000],
        0.5,
    )
    assert t.total_iter == 400_000 and t.ema_decay == 0.999
    assert opt.datasets["val"].name == "Set14" and opt.datasets["train"].gt_size == 128


@pytest.mark.parametrize("scale", [2, 4])
def test_stage2_starts_from_stage1_at_each_scale(scale: int) -> None:
    stage1 = load_options(CONFIGS / f"rrdb_psnr_x{scale}.yml")
    stage2 = load_options(CONFIGS / f"esrgan_x{scale}.yml")
    assert stage1.scale == stage2.scale == scale
    assert stage2.path.pretrain_network_g == f"{stage1.path.models}/net_g_latest.pth"


def test_demo_configs_build_small_networks_on_the_demo_data() -> None:
    from esrgan.archs import build_network
    from esrgan.losses import build_loss

    psnr = load_options(CONFIGS / "demo_psnr_x4.yml")
    gan = load_options(CONFIGS / "demo_esrgan_x4.yml")
    assert gan.path.pretrain_network_g == f"{psnr.path.models}/net_g_latest.pth"
    for opt in (psnr, gan):
        for phase in ("train", "val"):
            ds = opt.datasets[phase]
            assert ds.dataroot_gt == f"datasets/demo/{phase}/HR"
            assert ds.dataroot_lq == f"datasets/demo/{phase}/LR_bicubic/X4"
        assert opt.train.total_iter <= 1000 and opt.val.val_freq <= opt.train.total_iter
    g = build_network(gan.network_g.spec())
    assert sum(p.numel() for p in g.parameters()) < 1_000_000  # the full RRDBNet has 16.7M
    gt = gan.datasets["train"].gt_size
    assert gt == gan.network_d.kwargs["input_size"]
    d = build_network(gan.network_d.spec())
    with torch.no_grad():
        sr = g(torch.rand(1, 3, gt // 4, gt // 4))
        assert sr.shape == (1, 3, gt, gt) and d(sr).shape == (1, 1)
    # the demo's perceptual loss must not need the ImageNet file
    assert gan.train.perceptual_opt.kwargs["pretrained"] == "auto"
    assert build_loss(gan.train.pixel_opt.spec()).loss_weight == 1e-2


# ---------------------------------------------------------------------------------------------
# errors: file, key path, expected values
# ---------------------------------------------------------------------------------------------


def error_of(raw: dict, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(OptionsError) as info:
        options_from_dict(raw, overrides, source="x.yml")
    return str(info.value)


def test_unknown_key_names_path_allowed_keys_and_a_guess(write) -> None:
    path = write(MINIMAL.replace("lr: 2e-4", "lrr: 2e-4"))
    with pytest.raises(OptionsError) as info:
        load_options(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: train.optim_g.lrr: unknown argument of Adam; did you mean 'lr'?")
    assert "accepted: lr, betas, eps, weight_decay" in msg
    assert info.value.key == "train.optim_g.lrr" and info.value.file == str(path)
    assert "datasets.train.gt_siz: unknown key; did you mean 'gt_size'?" in error_of(
        minimal(datasets={"train": {"name": "t", "dataroot_gt": "a", "dataroot_lq": "b", "gt_siz": 8}})
    )


def test_wrong_types_name_expected_type_and_value() -> None:
    raw = minimal()
    raw["train"]["total_iter"] = "many"
    assert error_of(raw) == "x.yml: train.total_iter: expected an integer, got 'many'"
    raw = minimal()
    raw["train"]["total_iter"] = 10.5
    assert error_of(raw) == "x.yml: train.total_iter: expected an integer, got 10.5"
    raw = minimal()
    raw["train"]["optim_g"]["betas"] = [0.9]
    assert "train.optim_g.betas: expected a list of 2 values (a number, a number), got 1 values" in error_of(raw)
    assert error_of(minimal(scale="4x")) == "x.yml: scale: expected an integer, got '4x'"
    raw = minimal()
    raw["train"]["use_amp"] = "yes please"
    assert error_of(raw) == "x.yml: train.use_amp: expected true or false or one of auto, got 'yes please'"
    raw = minimal()
    raw["network_g"]["num_feat"] = "wide"
    assert error_of(raw) == "x.yml: network_g.num_feat: expected an integer, got 'wide'"
    assert error_of(minimal(train=[1, 2])) == "x.yml: train: expected a mapping (section of keys), got [1, 2]"


def test_unknown_names_list_the_allowed_values() -> None:
    msg = error_of(minimal(network_g={"type": "RRDB"}))
    assert msg.startswith(
        "x.yml: network_g.type: unknown network type 'RRDB' (did you mean 'RRDBNet'?); "
        "allowed generators: RRDBNet, MSRResNet, SRVGGNetCompact, ATD, CRAFT, "  # ours, then spandrel's
    )
    assert msg.endswith(", SwinIR")
    msg = error_of(minimal(network_d={"type": "RRDBNet"}))
    assert "network_d.type: unknown network type 'RRDBNet'; allowed discriminators: VGGStyleDiscriminator" in msg
    raw = minimal()
    raw["train"]["pixel_opt"] = {"type": "L2Loss"}
    assert error_of(raw) == (
        "x.yml: train.pixel_opt.type: unknown pixel loss type 'L2Loss' (did you mean 'L1Loss'?); "
        "allowed pixel losses: L1Loss, MSELoss, CharbonnierLoss, MSSSIMLoss, MSSSIML1Loss, FocalFrequencyLoss, "
        "ColorLoss"
    )
    raw = minimal()
    raw["train"]["pixel_opt"] = {"type": "L1Loss", "los_weight": 1}
    assert "train.pixel_opt.los_weight: unknown argument of L1Loss; did you mean 'loss_weight'?" in error_of(raw)
    raw = minimal()
    raw["train"]["pixel_opt"] = {"type": "L1Loss", "reduction": "avg"}
    assert error_of(raw) == "x.yml: train.pixel_opt.reduction: 'avg' is not allowed; allowed values: none, mean, sum"
    msg = error_of(gan_raw({"gan_type": "rgan"}))
    assert (
        "train.gan_opt.gan_type: 'rgan' is not allowed (did you mean 'ragan'?); allowed values: vanilla, ragan" in msg
    )
    raw = minimal()
    raw["train"]["scheduler"] = {"type": "CosineAnnealing", "periods": [10]}
    assert "train.scheduler.type: 'CosineAnnealing' is not allowed" in error_of(raw)
    assert "allowed values: SRModel, ESRGANModel" in error_of(minimal(model_type="SRGANModel"))
    raw = minimal()
    raw["train"]["optim_g"]["type"] = "Adamm"
    assert ("train.optim_g.type: unknown optimizer type 'Adamm' (did you mean 'Adam'?); allowed optimizers: Adam, "
            "AdamW") in error_of(raw)
    raw = minimal()
    raw["train"]["optim_g"]["momentum"] = 0.9
    assert error_of(raw).startswith("x.yml: train.optim_g.momentum: unknown argument of Adam; accepted: lr, betas,")
    raw = minimal()
    raw["datasets"]["trian"] = raw["datasets"].pop("train")
    assert "datasets.trian: unknown dataset phase; did you mean 'train'?" in error_of(raw)


def test_missing_and_inconsistent_sections() -> None:
    assert error_of(minimal(network_g=None)).startswith("x.yml: network_g: required section is missing")
    raw = minimal()
    del raw["name"]
    assert error_of(raw).startswith("x.yml: name: required key is missing")
    raw = minimal()
    del raw["train"]["optim_g"]
    assert error_of(raw).startswith("x.yml: train.optim_g: required for training")
    raw = minimal()
    raw["train"]["scheduler"] = {"type": "CosineAnnealingRestartLR", "periods": [4, 4]}
    assert "train.scheduler.periods: the periods cover 8 iterations, fewer than total_iter 10" in error_of(raw)
    raw = minimal()
    raw["train"]["scheduler"] = {"type": "MultiStepLR", "milestones": [5], "periods": [10]}
    assert "train.scheduler.periods: only for CosineAnnealingRestartLR" in error_of(raw)
    raw = minimal()
    raw["train"]["scheduler"] = {"type": "CosineAnnealingRestartLR", "periods": [5, 5], "restart_weights": [1]}
    assert "train.scheduler.restart_weights: needs one weight per period (2), got 1" in error_of(raw)
    raw = minimal(model_type="ESRGANModel")
    assert error_of(raw).startswith("x.yml: network_d: required for model_type ESRGANModel")
    raw = minimal()
    raw["network_g"]["scale"] = 2
    assert error_of(raw) == "x.yml: network_g.scale: 2 differs from the top-level scale 4"
    raw = minimal()
    raw["datasets"]["train"]["gt_size"] = 30
    assert "datasets.train.gt_size: 30 is not divisible by scale 4" in error_of(raw)
    raw = minimal()
    raw["train"]["ema_decay"] = 1.0
    assert "train.ema_decay: must be in [0, 1)" in error_of(raw)


def test_yaml_problems_name_the_file(write, tmp_path) -> None:
    with pytest.raises(OptionsError, match=r"missing\.yml: option file not found"):
        load_options(tmp_path / "missing.yml")
    path = write("name: a\nscale: 4\nscale: 2\n")
    with pytest.raises(
        OptionsError, match=r"opt\.yml: invalid YAML at line 3, column 1: duplicate key 'scale' \(first at line 2\)$"
    ):
        load_options(path)
    with pytest.raises(OptionsError, match=r"opt\.yml: invalid YAML"):
        load_options(write("name: [unclosed\n"))
    with pytest.raises(OptionsError, match=r"opt\.yml: expected a mapping of option sections"):
        load_options(write("- a\n- b\n"))


# ---------------------------------------------------------------------------------------------
# overrides
# ---------------------------------------------------------------------------------------------


def test_overrides_are_yaml_scalars(write) -> None:
    path = write(MINIMAL)
    opt = load_options(
        path,
        [
            "train.optim_g.lr=1e-4",
            "train.use_amp=true",
            "train.amp_dtype=fp16",
            "train.scheduler.type=MultiStepLR",
            "train.scheduler.milestones=[4, 8]",
            "network_g.num_feat=16",
            "name=renamed",
            "manual_seed=~",
        ],
    )
    assert opt.train.optim_g.kwargs["lr"] == 1e-4 and isinstance(opt.train.optim_g.kwargs["lr"], float)
    assert opt.train.use_amp is True and opt.train.amp_dtype == "fp16"
    assert opt.train.scheduler.milestones == [4, 8]
    assert opt.network_g.kwargs["num_feat"] == 16
    assert opt.name == "renamed" and opt.path.experiments_root == "experiments/renamed"
    assert isinstance(opt.manual_seed, int)  # null -> a random seed, recorded
    # applied in order: the last one wins
    assert load_options(path, ["scale=2", "scale=4"]).scale == 4


def test_bad_overrides(write) -> None:
    path = write(MINIMAL)
    with pytest.raises(OptionsError) as info:
        load_options(path, ["train.optim_g.lrr=1e-4"])
    # the optimizer's own arguments (torch's signature of Adam) are the allowed keys
    assert str(info.value).startswith(
        f"{path}: train.optim_g.lrr: unknown argument of Adam; did you mean 'lr'? accepted: lr, betas, eps, "
        "weight_decay, amsgrad,"
    )
    assert str(info.value).endswith(" (from --set train.optim_g.lrr=1e-4)")
    with pytest.raises(OptionsError, match=r"train\.total_iter: expected an integer, got 'lots' \(from --set"):
        load_options(path, ["train.total_iter=lots"])
    with pytest.raises(OptionsError, match=r"--set: override 'train\.total_iter': expected KEY\.PATH=VALUE"):
        load_options(path, ["train.total_iter"])
    with pytest.raises(OptionsError, match=r"--set: override 'train\.\.lr=1': expected KEY\.PATH=VALUE"):
        load_options(path, ["train..lr=1"])
    with pytest.raises(OptionsError, match=r"train\.total_iter is 10, not a section"):
        load_options(path, ["train.total_iter.x=1"])
    with pytest.raises(OptionsError, match=r"value is not valid YAML"):
        load_options(path, ["name=[a"])


# ---------------------------------------------------------------------------------------------
# resolution
# ---------------------------------------------------------------------------------------------


def test_resolution_of_paths_phases_scale_and_seed() -> None:
    raw = minimal(manual_seed=None, num_gpu="auto")
    raw["datasets"]["val_2"] = {"name": "v", "dataroot_gt": "~/hr", "dataroot_lq": "lr"}
    raw["val"] = {"metrics": {"psnr": {"type": "calculate_psnr"}, "ssim": {"type": "ssim", "crop_border": 0}}}
    raw["path"] = {"pretrain_network_g": "~/g.pth"}
    opt = options_from_dict(raw)
    assert opt.num_gpu == (1 if torch.cuda.is_available() else 0)  # the GPUs of this process
    assert 1 <= opt.manual_seed <= 10000
    val = opt.datasets["val_2"]
    assert (val.phase, val.scale) == ("val", 4) and val.dataroot_gt == str(Path.home() / "hr")
    assert opt.datasets_of("val") == {"val_2": val}
    assert opt.path.pretrain_network_g == str(Path.home() / "g.pth")
    p = opt.path
    assert (p.experiments_root, p.models, p.training_states, p.log, p.visualization) == (
        "experiments/tiny",
        "experiments/tiny/models",
        "experiments/tiny/training_states",
        "experiments/tiny",
        "experiments/tiny/visualization",
    )
    psnr, ssim = opt.val.metrics["psnr"], opt.val.metrics["ssim"]
    assert (psnr.type, psnr.crop_border, psnr.test_y_channel) == ("psnr", 4, True)  # crop = scale, Y
    assert (ssim.type, ssim.crop_border) == ("ssim", 0)
    # the generator takes the top-level scale when the file does not give one
    assert opt.network_g.kwargs["scale"] == 4
    assert options_from_dict(minimal(scale=2)).network_g.kwargs["scale"] == 2
    msr = minimal(network_g={"type": "MSRResNet", "num_feat": 8, "num_block": 1}, scale=2)
    assert options_from_dict(msr).network_g.kwargs["upscale"] == 2


def test_given_experiments_root_is_kept_and_sub_folders_follow_it() -> None:
    p = options_from_dict(minimal(path={"experiments_root": "/runs/x"})).path
    assert (p.experiments_root, p.models, p.training_states) == ("/runs/x", "/runs/x/models", "/runs/x/training_states")
    # path.models / training_states / log / visualization: the trainer keeps them under the experiment's root
    # (BasicSR overwrites them there too); a value that says otherwise is refused, not ignored.
    for key, value in (("models", "/ckpt"), ("training_states", "/st"), ("log", "/logs"), ("visualization", "v")):
        message = error_of(minimal(path={"experiments_root": "/runs/x", key: value}))
        assert f"path.{key}: {value!r}: the experiment keeps this in" in message
        assert "set path.experiments_root" in message
    same = {"experiments_root": "/runs/x", "models": "/runs/x/models/", "log": "/runs/x"}  # a resolved file
    assert options_from_dict(minimal(path=same)).path.models == "/runs/x/models"


def test_a_training_file_needs_its_training_section() -> None:
    # Test files are read by esrgan.options.testing (tests/test_tester.py); a training file must train.
    raw = minimal()
    del raw["train"]
    assert "train: required section is missing for training" in error_of(raw)


def test_debug_mode() -> None:
    raw = minimal(val={"val_freq": 1000}, logger={"print_freq": 100, "save_checkpoint_freq": 1000})
    opt = options_from_dict(raw, debug=True)
    assert opt.name == "debug_tiny" and opt.path.experiments_root == "experiments/debug_tiny"
    assert (opt.val.val_freq, opt.logger.print_freq, opt.logger.save_checkpoint_freq) == (8, 1, 8)
    assert options_from_dict(raw).val.val_freq == 1000


@pytest.mark.parametrize(
    ("model_type", "gan", "relativistic"),
    [
        ("ESRGANModel", {"gan_type": "vanilla"}, True),  # BasicSR: ESRGANModel is always RaGAN
        ("ESRGANModel", {"gan_type": "lsgan"}, True),
        ("ESRGANModel", {"gan_type": "ragan"}, True),
        ("ESRGANModel", {"gan_type": "vanilla", "relativistic": False}, False),  # ours: a standard GAN
        ("ESRGANModel", {"gan_type": "hinge", "relativistic": True}, True),
    ],
)
def test_relativistic_resolution(model_type: str, gan: dict, relativistic: bool) -> None:
    opt = options_from_dict(gan_raw(gan, model_type))
    assert opt.train.gan_opt.relativistic is relativistic
    assert "relativistic" not in opt.train.gan_opt.spec()  # not an argument of GANLoss


def test_relativistic_contradiction_and_gradient_penalty() -> None:
    msg = error_of(gan_raw({"gan_type": "ragan", "relativistic": False}))
    assert "train.gan_opt.relativistic: gan_type ragan is the relativistic GAN" in msg
    opt = options_from_dict(gan_raw({"gan_type": "wgan", "gp_weight": 10, "relativistic": False}))
    assert opt.train.gan_opt.gp_weight == 10.0
    assert "train.gan_opt.gp_weight: must be >= 0" in error_of(gan_raw({"gan_type": "wgan", "gp_weight": -1}))


def test_srmodel_ignores_gan_sections_loudly(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="esrgan.options"):
        opt = options_from_dict(gan_raw({"gan_type": "vanilla"}, model_type="SRModel"))
    assert "model_type SRModel trains no discriminator: network_d, train.optim_d, train.gan_opt ignored" in caplog.text
    assert opt.train.gan_opt.relativistic is False


def test_optimizer_and_float_spellings() -> None:
    raw = minimal()
    raw["train"]["optim_g"] = {"type": "AdamW", "lr": "1e-3", "betas": [0.9, 0.99], "weight_decay": 1e-2}
    opt = options_from_dict(raw)
    optim = build_optimizer([torch.nn.Parameter(torch.zeros(2))], opt.train.optim_g)
    assert isinstance(optim, torch.optim.AdamW)
    group = optim.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (1e-3, (0.9, 0.99), 1e-2)
    # 2e-4 without a dot is a float for our loader (PyYAML alone reads a string)
    assert parse_yaml("a: 2e-4\nb: 1E5\nc: 5.0e-3\nd: '2e-4'") == {"a": 2e-4, "b": 1e5, "c": 5e-3, "d": "2e-4"}


def test_to_dict_is_plain_and_reloads(tmp_path) -> None:
    opt = options_from_dict(gan_raw({"gan_type": "ragan"}), ["train.optim_g.lr=3e-4"])
    d = opt.to_dict()
    assert d["train"]["gan_opt"] == {
        "type": "GANLoss",
        "gan_type": "ragan",
        "real_label_val": 1.0,
        "fake_label_val": 0.0,
        "loss_weight": 1.0,
        "relativistic": True,
        "gp_weight": 0.0,
    }
    assert d["network_d"] == {"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": 8, "input_size": 128}
    assert d["train"]["optim_g"]["betas"] == [0.9, 0.99]
    assert d["datasets"]["train"]["io_backend"] == {"type": "disk"}
    path = save_options(opt, tmp_path / "sub" / "options.yml")
    again = load_options(path)
    assert isinstance(again, Options) and again == opt and again.to_dict() == d


def test_dataset_values_are_converted_and_checked_with_key_paths() -> None:
    raw = minimal()
    raw["datasets"]["train"]["dataset_enlarge_ratio"] = 1e2  # !!float 1e2 in a file
    assert options_from_dict(raw).datasets["train"].dataset_enlarge_ratio == 100
    assert error_of(raw, ("datasets.train.io_backend.type=lmbd",)) == (
        "x.yml: datasets.train.io_backend.type: 'lmbd' is not one of disk, lmdb "
        "(from --set datasets.train.io_backend.type=lmbd)"
    )
    assert error_of(raw, ("datasets.train.use_rot=maybe",)) == (
        "x.yml: datasets.train.use_rot: expected true or false, got 'maybe' (from --set datasets.train.use_rot=maybe)"
    )
    assert "datasets.train.dataroot_lq: required for type PairedImageDataset" in error_of(
        raw, ("datasets.train.dataroot_lq=~",)
    )


def test_overrides_use_our_names_on_a_basicsr_file(write) -> None:
    path = write(BASICSR_ESRGAN_X4_OLD)
    opt = load_options(path, ["datasets.train.use_hflip=false", "network_d.num_feat=32", "path.strict_load_g=false"])
    assert opt.datasets["train"].use_hflip is False  # the file's use_flip, renamed, then overridden
    assert opt.network_d.spec() == {"type": "VGGStyleDiscriminator", "num_in_ch": 3, "num_feat": 32, "input_size": 128}
    assert opt.path.strict_load_g is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("val.val_freq=-1", "val.val_freq: must be >= 0, got -1"),
        ("logger.print_freq=0", "logger.print_freq: must be >= 1, got 0"),
        ("logger.keep_last=-1", "logger.keep_last: must be >= 0, got -1"),
        ("train.net_d_iters=0", "train.net_d_iters: must be >= 1, got 0"),
        ("train.grad_clip=-1", "train.grad_clip: must be >= 0, got -1.0"),
        ("train.optim_g.lr=0", "train.optim_g.lr: must be > 0, got 0.0"),
    ],
)
def test_value_ranges(override: str, message: str) -> None:
    assert error_of(minimal(), (override,)) == f"x.yml: {message} (from --set {override})"


def test_basicsr_test_file_parses_as_a_test_file(write) -> None:
    from esrgan.options.testing import load_test_options

    opt = load_test_options(write(BASICSR_TEST_ESRGAN_X4))
    assert [(k, d.name, d.phase) for k, d in opt.datasets.items()] == [
        ("test_1", "Set5", "test"),
        ("test_2", "Set14", "test"),
        ("test_3", "DIV2K100", "test"),
    ]
    assert opt.datasets["test_3"].filename_tmpl == "{}x4"
    assert opt.path.pretrain_network_g.endswith("ESRGAN_SRx4_DF2KOST_official-ff704c30.pth")  # pretrain_model_g
    assert opt.path.strict_load_g is True  # strict_load
    # the training file's parser: arguments checked, defaults and the scale filled in
    assert opt.network_g.spec() == {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64,
                                    "num_block": 23, "num_grow_ch": 32, "unshuffle": None}
    assert {k: (m.type, m.crop_border, m.test_y_channel) for k, m in opt.val.metrics.items()} == {
        "psnr": ("psnr", 4, False),
        "ssim": ("ssim", 4, False),
    }


# ---------------------------------------------------------------------------------------------
# Hostile files and values: one OptionsError naming the file / key
# ---------------------------------------------------------------------------------------------


def test_option_file_that_is_not_utf8_is_one_line(tmp_path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes("name: caf\u00e9\nscale: 4\n".encode("latin-1"))
    with pytest.raises(OptionsError) as info:
        load_options(path)
    assert str(info.value) == f"{path}: not UTF-8 text (byte 0xe9 at line 1); save the option file as UTF-8"


def test_yaml_alias_bomb_is_refused_before_expanding(tmp_path) -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    path = tmp_path / "bomb.yml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 1024  # 9**9 = 387 million strings once expanded
    with pytest.raises(OptionsError, match=r"bomb.yml: YAML aliases expand to more than 100,000 values"):
        load_options(path)
    # ordinary anchors (BasicSR files use a few) still load
    assert parse_yaml("base: &b {lr: 1e-4}\nother: *b\n") == {"base": {"lr": 1e-4}, "other": {"lr": 1e-4}}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.optim_g.lr=.inf", "train.optim_g.lr: expected a finite number, got inf"),
        ("train.optim_g.lr=.nan", "train.optim_g.lr: expected a finite number, got nan"),
        ("train.optim_g.lr=-1e-4", "train.optim_g.lr: must be > 0, got -0.0001"),
        ("train.pixel_opt.loss_weight=-1", "train.pixel_opt.loss_weight: must be >= 0 (0 = off), got -1.0"),
        ("train.pixel_opt.loss_weight=.nan", "train.pixel_opt.loss_weight: expected a finite number, got nan"),
        ("train.ema_decay=.nan", "train.ema_decay: expected a finite number, got nan"),
    ],
)
def test_numbers_are_finite_and_in_range(override: str, message: str) -> None:
    assert message in error_of(minimal(), (override,))


def test_negative_weights_of_gan_and_perceptual_losses_are_refused() -> None:
    raw = gan_raw({"gan_type": "vanilla", "loss_weight": -5e-3})
    assert "train.gan_opt.loss_weight: must be >= 0 (0 = off), got -0.005" in error_of(raw)
    raw = gan_raw({"gan_type": "vanilla"})
    raw["train"]["perceptual_opt"] = {"type": "PerceptualLoss", "layer_weights": {"conv5_4": -1}}
    assert "train.perceptual_opt.layer_weights.conv5_4: must be >= 0 (0 = off), got -1.0" in error_of(raw)


def test_val_suffix_is_refused_not_ignored() -> None:
    raw = minimal(val={"val_freq": 5, "suffix": "x"})
    assert "val.suffix: not supported: validation images are saved as <image>_<iteration>.png" in error_of(raw)
    assert options_from_dict(minimal(val={"val_freq": 5, "suffix": None})).val.suffix is None  # BasicSR's "~"


def test_a_second_training_dataset_is_refused() -> None:
    raw = minimal()
    raw["datasets"]["train_1"] = dict(raw["datasets"]["train"])
    assert "datasets.train_1: one training dataset, under the key 'train'" in error_of(raw)


def test_duplicate_keys_and_float_spelling_in_test_option_files(tmp_path) -> None:
    from esrgan.options.testing import load_test_options

    path = tmp_path / "t.yml"
    path.write_text("name: t\nscale: 4\nmodels: [bicubic]\nscale: 2\ndatasets: {test_1: {dataroot_gt: hr}}\n")
    with pytest.raises(OptionsError, match=r"t.yml: invalid YAML at line 4.*duplicate key 'scale'"):
        load_test_options(path)
    path.write_text("name: t\nscale: 1e0\nmodels: [bicubic]\ndatasets: {test_1: {dataroot_gt: hr}}\n")
    assert load_test_options(path).scale == 1


# ---------------------------------------------------------------------------------------------
# Resolved once (issue 20) and nothing accepted-and-ignored (issue 19)
# ---------------------------------------------------------------------------------------------


def test_losses_that_all_weigh_zero_are_refused_and_perceptual_alone_is_a_loss() -> None:
    raw = minimal()
    raw["train"]["pixel_opt"]["loss_weight"] = 0
    msg = error_of(raw)
    assert msg == ("x.yml: train: no loss has a positive weight (pixel_opt.loss_weight 0): the generator would learn "
                   "nothing; give one of them a weight > 0")
    raw = gan_raw({"gan_type": "vanilla", "loss_weight": 0})
    raw["train"]["pixel_opt"]["loss_weight"] = 0
    assert "pixel_opt.loss_weight 0, gan_opt.loss_weight 0" in error_of(raw)
    # BasicSR's SRModel trains with a perceptual loss alone (no pixel_opt): accepted, and used
    raw = minimal()
    raw["train"]["pixel_opt"] = None
    raw["train"]["perceptual_opt"] = {"type": "PerceptualLoss", "layer_weights": {"conv1_2": 1.0}, "pretrained": False}
    assert options_from_dict(raw).train.perceptual_opt.active
    raw["train"]["perceptual_opt"].update(perceptual_weight=0, style_weight=0)
    assert "perceptual_opt.perceptual_weight 0, perceptual_opt.style_weight 0" in error_of(raw)
    # the GAN warm-up trains G with the pixel loss only: without one, it would train nothing
    raw = gan_raw({"gan_type": "vanilla"})
    raw["train"]["pixel_opt"] = None
    raw["train"]["g_warmup_iter"] = 5
    assert "train.g_warmup_iter: 5: the warm-up trains the generator with the pixel loss only" in error_of(raw)


@pytest.mark.parametrize("key", ["dist", "rank", "world_size", "is_train"])
def test_keys_basicsr_adds_at_run_time_are_refused_in_a_file(key: str) -> None:
    assert error_of(minimal(**{key: 0})).startswith(f"x.yml: {key}: not an option (")


def test_control_characters_name_the_file_and_the_position(tmp_path) -> None:
    path = tmp_path / "o.yml"
    path.write_bytes(MINIMAL.encode().replace(b"scale: 4", b"scale: 4\x07"))
    with pytest.raises(OptionsError) as info:
        load_options(path)
    assert str(info.value).startswith(f"{path}: control character 0x07 at line 4, column 9: not allowed in YAML")


def test_resolved_values_are_values_not_none() -> None:
    raw = minimal(val={"metrics": {"psnr": {"type": "psnr"}}})
    raw["train"]["scheduler"] = {"type": "CosineAnnealingRestartLR", "periods": [5, 5]}
    raw["train"]["gan_opt"] = {"type": "GANLoss", "gan_type": "vanilla"}
    opt = options_from_dict(raw)
    assert isinstance(opt.manual_seed, int) and opt.num_gpu == 1
    assert opt.train.scheduler.restart_weights == [1.0, 1.0] and opt.train.scheduler.milestones == []
    assert opt.val.metrics["psnr"].crop_border == 4 and opt.logger.wandb.project is None
    assert opt.train.gan_opt.relativistic is False  # SRModel: gan_type decides (and the section is ignored)
    # the scheduler takes the resolved lists as they are
    from esrgan.training.schedulers import build_scheduler

    sched = build_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), opt.train.scheduler)
    assert sched.restart_weights == [1.0, 1.0]


def test_the_options_name_what_the_tables_build() -> None:
    from esrgan.data.build import DATASETS
    from esrgan.options.datasets import DATASET_TYPES
    from esrgan.options.sections import MODEL_TYPES, OPTIMIZERS, optimizer_class
    from esrgan.training.build import MODELS

    assert set(MODEL_TYPES) == set(MODELS)
    assert set(DATASET_TYPES) == set(DATASETS)
    assert all(issubclass(optimizer_class(name), torch.optim.Optimizer) for name in OPTIMIZERS)


def test_a_new_optimizer_is_one_table_entry(monkeypatch) -> None:
    from esrgan.options import sections

    monkeypatch.setitem(sections.OPTIMIZERS, "NAdam", "torch.optim.NAdam")
    raw = minimal()
    raw["train"]["optim_g"] = {"type": "NAdam", "lr": 1e-3, "momentum_decay": 5e-3}
    opt = options_from_dict(raw)
    optim = build_optimizer([torch.nn.Parameter(torch.zeros(2))], opt.train.optim_g)
    assert isinstance(optim, torch.optim.NAdam) and optim.param_groups[0]["momentum_decay"] == 5e-3
    monkeypatch.setitem(sections.OPTIMIZERS, "Adan", "no_such_package.Adan")
    raw["train"]["optim_g"] = {"type": "Adan", "lr": 1e-3}
    assert error_of(raw).startswith("x.yml: train.optim_g.type: optimizer Adan needs the package 'no_such_package': "
                                    "pip install no_such_package")
