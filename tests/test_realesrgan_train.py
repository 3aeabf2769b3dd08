"""Real-ESRGAN training: the published option files train unchanged, exact resume with the pair queue,
the queue's mixing, and option errors that name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from esrgan.checkpoint import load_checkpoint_file
from esrgan.data.degradations.pair_queue import TrainingPairQueue
from esrgan.data.image import imwrite
from esrgan.options import OptionsError, load_options
from esrgan.options.realesrgan import RealESRGANOptions
from esrgan.training.trainer import Trainer

FIXTURES = Path(__file__).parent / "fixtures" / "realesrgan"
NET = "train_realesrnet_x4plus.yml"
GAN = "train_realesrgan_x4plus.yml"


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory) -> Path:
    from skimage import data

    root = tmp_path_factory.mktemp("realhr") / "HR"
    img = data.astronaut()
    for i, (y, x) in enumerate([(0, 0), (100, 300), (300, 100), (380, 380)]):
        imwrite(root / f"{i:03d}.png", np.ascontiguousarray(img[y : y + 120, x : x + 120]))
    return root


def _overrides(hr: Path, exp: Path, total_iter: int, *extra: str) -> list[str]:
    """Only data paths and sizes change (tiny networks, small patches, CPU), as a user's --set would."""
    return [
        f"datasets.train.dataroot_gt={hr}", "datasets.train.meta_info=null",
        "datasets.train.crop_pad_size=96", "datasets.train.gt_size=32", "gt_size=32", "queue_size=4",
        "datasets.train.batch_size_per_gpu=2", "datasets.train.num_worker_per_gpu=0",
        "network_g.num_feat=8", "network_g.num_block=1", "network_g.num_grow_ch=8",
        "path.pretrain_network_g=null", f"path.experiments_root={exp}", "num_gpu=0",
        f"train.total_iter={total_iter}", "logger.print_freq=1", "logger.use_tb_logger=false",
        *extra,
    ]  # fmt: skip


GAN_EXTRA = ("network_d.num_feat=8", "train.perceptual_opt.pretrained=false")


def _train(name: str, hr: Path, exp: Path, total_iter: int, *extra: str, auto_resume: bool = False) -> Trainer:
    opt = load_options(FIXTURES / name, _overrides(hr, exp, total_iter, *extra))
    trainer = Trainer(opt, interactive=False, auto_resume=auto_resume)
    assert trainer.run() == 0
    return trainer


def test_published_realesrnet_file_trains_and_writes_checkpoints(hr_folder, tmp_path):
    exp = tmp_path / "net"
    trainer = _train(NET, hr_folder, exp, 4, "logger.save_checkpoint_freq=2")
    log = next(exp.glob("train_*.log")).read_text()
    assert "RealESRNetModel" in log and " l_pix: " in log
    for it in (2, 4):
        assert (exp / "models" / f"net_g_{it}.pth").is_file()
    state = load_checkpoint_file(exp / "training_states" / "4.state")
    assert len(state["rank_states"]) == 1  # one process
    queue = state["rank_states"][0]["degradation"]["queue"]
    # a queue of 4 pairs of batch 2: full after two iterations; LR and GT are 8-bit exact, stored as uint8
    assert queue["ptr"] == 4 and queue["lq"].dtype == torch.uint8 and tuple(queue["lq"].shape) == (4, 3, 8, 8)
    assert tuple(queue["gt"].shape) == (4, 3, 32, 32)
    assert isinstance(trainer.model.degrader.rng.torch, torch.Generator)


def test_published_realesrgan_file_trains_unet_d_with_usm_targets(hr_folder, tmp_path):
    exp = tmp_path / "gan"
    trainer = _train(GAN, hr_folder, exp, 3, *GAN_EXTRA)
    log = next(exp.glob("train_*.log")).read_text()
    for key in ("l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "l_d_fake", "out_d_real", "out_d_fake"):
        assert f" {key}: " in log, key
    d = load_checkpoint_file(exp / "models" / "net_d_3.pth")["params"]
    assert any(k.endswith("weight_orig") for k in d)  # spectral norm (UNetDiscriminatorSN)
    model = trainer.model
    assert type(model.net_d).__name__ == "UNetDiscriminatorSN" and model.relativistic is False
    # l1_gt_usm, percep_gt_usm true; gan_gt_usm false (the file's choice)
    gt = torch.rand(2, 3, 32, 32)
    model._gt_usm = gt + 1
    pix, percep, gan = model.loss_targets(gt)
    assert pix is model._gt_usm and percep is model._gt_usm and gan is gt
    saved = next(exp.glob("options_*.yml")).read_text()
    assert "relativistic: false" in saved and "queue_size: 4" in saved


@pytest.mark.slow
def test_exact_resume_with_queue_and_degradation_state(hr_folder, tmp_path):
    """10 iterations + resume + 10 equal 20 straight: the queue (full after 2) and the degradation's
    generators come back with the training state (RealESRNet stage; the GAN parts resume as ESRGAN's)."""
    straight = tmp_path / "straight"
    _train(NET, hr_folder, straight, 20)
    resumed = tmp_path / "resumed"
    _train(NET, hr_folder, resumed, 10)
    trainer = _train(NET, hr_folder, resumed, 20, auto_resume=True)
    assert trainer.start_iter == 10
    for key in ("params", "params_ema"):
        a = load_checkpoint_file(straight / "models" / "net_g_20.pth")[key]
        b = load_checkpoint_file(resumed / "models" / "net_g_20.pth")[key]
        for k in a:
            assert torch.equal(a[k], b[k]), (key, k)
    sa = load_checkpoint_file(straight / "training_states" / "20.state")["rank_states"][0]["degradation"]
    sb = load_checkpoint_file(resumed / "training_states" / "20.state")["rank_states"][0]["degradation"]
    assert torch.equal(sa["queue"]["lq"], sb["queue"]["lq"]) and torch.equal(sa["rng"]["torch"], sb["rng"]["torch"])
    # and the degradation did matter: a run with another seed ends elsewhere
    other = tmp_path / "other"
    _train(NET, hr_folder, other, 20, "manual_seed=1")
    c = load_checkpoint_file(other / "models" / "net_g_20.pth")["params"]
    a = load_checkpoint_file(straight / "models" / "net_g_20.pth")["params"]
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_queue_mixes_batches_and_keeps_pairs():
    queue = TrainingPairQueue(6)
    g = torch.Generator().manual_seed(0)
    seen: list[float] = []
    for step in range(8):
        ids = torch.arange(step * 2, step * 2 + 2, dtype=torch.float32)
        lq = ids.view(2, 1, 1, 1).expand(2, 3, 2, 2).clone()
        gt = (ids * 10).view(2, 1, 1, 1).expand(2, 3, 8, 8).clone()
        out_lq, out_gt = queue(lq, gt, g)
        assert torch.equal(out_gt[:, :, :2, :2], out_lq * 10)  # each LR stays with its GT
        got = out_lq[:, 0, 0, 0].tolist()
        if step < 3:
            assert got == ids.tolist()  # filling: the batch passes through
        else:
            assert all(v < step * 2 for v in got)  # from earlier batches
            assert set(got) & set(seen) == set()  # a pair leaves the pool once
            seen.extend(got)
        pool = set(queue.lq[:, 0, 0, 0].tolist())
        assert len(pool) == min(6, 2 * (step + 1))
    assert len(set(seen)) == 10 and any(v < 6 for v in seen) and any(v >= 6 for v in seen)
    with pytest.raises(ValueError, match="not divisible by the batch size 4"):
        TrainingPairQueue(6)(torch.zeros(4, 3, 2, 2), torch.zeros(4, 3, 8, 8))
    state = queue.state_dict()
    assert state["lq"].dtype == torch.float32  # not 8-bit values: kept as they are
    other = TrainingPairQueue(6)
    other.load_state_dict(state)
    assert other.ptr == 6 and torch.equal(other.lq, queue.lq) and torch.equal(other.gt, queue.gt)


@pytest.mark.parametrize(
    ("override", "key", "words"),
    [
        ("queue_size=5", "queue_size", "not divisible by the batch size 2"),
        ("resize_prob=[0.2, 0.7, 0.2]", "resize_prob", "sum to 1"),
        ("resize_prob2=[0.5, 0.5]", "resize_prob2", "expected 3 probabilities"),
        ("noise_range2=[25, 1]", "noise_range2", "min 25.0 > max 1.0"),
        ("jpeg_range=[30, 120]", "jpeg_range", "<= 100"),
        ("gray_noise_prob=1.5", "gray_noise_prob", "probability"),
        ("datasets.train.blur_kernel_size2=41", "datasets.train.blur_kernel_size2", "too large for the patch"),
        ("datasets.train.blur_kernel_size=22", "datasets.train.blur_kernel_size", "odd"),
        ("datasets.train.kernel_prob=[0.5, 0.5, 0.12, 0.03, 0.12, 0.03]", "datasets.train.kernel_prob", "sum to 1"),
        ("datasets.train.betag_range=[4, 0.5]", "datasets.train.betag_range", "min 4.0 > max 0.5"),
    ],
)
def test_bad_degradation_options_are_refused_at_load_naming_the_key(hr_folder, tmp_path, override, key, words):
    with pytest.raises(OptionsError) as info:
        load_options(FIXTURES / NET, [*_overrides(hr_folder, tmp_path / "x", 2), override])
    assert info.value.key == key and words in str(info.value)
    assert not (tmp_path / "x").exists()


def test_option_engine_knows_every_real_esrgan_key():
    from esrgan import options

    keys = {f.name for f in dataclasses.fields(RealESRGANOptions)}
    assert keys == options.REAL_KEYS
    # one typed section of Options whose keys sit at the top level of the file (BasicSR's layout)
    (section,) = [f for f in dataclasses.fields(options.Options) if f.name == "real_esrgan"]
    assert section.metadata["inline"] and section.type in ("RealESRGANOptions", RealESRGANOptions)
    assert not keys & {f.name for f in dataclasses.fields(options.Options)}


@pytest.mark.parametrize(
    "name", ["realesrnet_x4plus", "realesrgan_x4plus", "realesrnet_x2plus", "realesrgan_x2plus", "demo_realesrgan_x4"]
)
def test_shipped_real_esrgan_configs_load(name):
    opt = load_options(Path(__file__).parents[1] / "configs" / f"{name}.yml")
    assert opt.is_real and opt.datasets["train"].type == "RealESRGANDataset"
    assert (opt.model_type == "RealESRGANModel") == (opt.network_d is not None)
    if opt.scale == 2:
        assert opt.network_g.kwargs["scale"] == 2


def test_x2_network_starts_from_x4_weights_non_strictly(tmp_path):
    """Real-ESRGAN's x2 recipe starts from RealESRGAN_x4plus: strict_load false skips the reshaped first layer."""
    from esrgan.archs import build_network
    from esrgan.checkpoint import save_network
    from esrgan.loading import load_weights_into

    small = {"type": "RRDBNet", "num_feat": 8, "num_block": 1, "num_grow_ch": 8}
    x4 = build_network({**small, "scale": 4})
    save_network(tmp_path / "x4.pth", {"params_ema": x4.state_dict()})
    x2 = build_network({**small, "scale": 2})
    first = x2.conv_first.weight.detach().clone()
    load_weights_into(x2, tmp_path / "x4.pth", param_key="params_ema", strict=False)
    assert torch.equal(x2.conv_first.weight, first)  # 12 input channels at x2: kept as initialised
    assert torch.equal(x2.conv_body.weight, x4.conv_body.weight)
    with pytest.raises((ValueError, RuntimeError)):
        load_weights_into(x2, tmp_path / "x4.pth", param_key="params_ema", strict=True)


DDP_CHILD = """
import sys
from pathlib import Path

import torch

sys.path.insert(0, sys.argv[3])
from test_realesrgan_train import NET, _overrides  # noqa: E402

from esrgan.options import load_options  # noqa: E402
from esrgan.training.dist import init_dist  # noqa: E402
from esrgan.training.trainer import Trainer  # noqa: E402

torch.set_num_threads(1)
hr, exp = Path(sys.argv[1]), Path(sys.argv[2])
info = init_dist("pytorch")
fixtures = Path(sys.argv[3]) / "fixtures" / "realesrgan"
for total, resume in ((2, False), (4, True)):
    sets = _overrides(hr, exp, total, "datasets.train.batch_size_per_gpu=1", "queue_size=2")
    opt = load_options(fixtures / NET, sets)
    trainer = Trainer(opt, dist_info=info, interactive=False, auto_resume=resume)
    assert trainer.start_iter == (2 if resume else 0), trainer.start_iter
    assert trainer.run() == 0
"""


@pytest.mark.slow
def test_each_rank_keeps_its_own_degradation_state(hr_folder, tmp_path):
    """Two processes (torchrun, gloo): each draws its own degradations; both states are saved and resumed."""
    import os
    import subprocess
    import sys

    script = tmp_path / "child.py"
    script.write_text(DDP_CHILD)
    tests = Path(__file__).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(hr_folder), str(tmp_path / "exp"), str(tests)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for it in (2, 4):
        ranks = load_checkpoint_file(tmp_path / "exp" / "training_states" / f"{it}.state")["rank_states"]
        assert len(ranks) == 2
        a, b = (r["degradation"] for r in ranks)
        assert not torch.equal(a["rng"]["torch"], b["rng"]["torch"])  # seeded per rank
        assert a["queue"]["ptr"] == b["queue"]["ptr"] == 2
        assert not torch.equal(a["queue"]["gt"], b["queue"]["gt"])  # different samples per rank


def test_missing_meta_info_fails_before_the_experiment_folder_is_touched(hr_folder, tmp_path):
    missing = f"datasets.train.meta_info={tmp_path / 'nope.txt'}"
    opt = load_options(FIXTURES / NET, [*_overrides(hr_folder, tmp_path / "exp", 2), missing])
    with pytest.raises(FileNotFoundError, match=r"datasets\.train\.meta_info: .*nope\.txt not found"):
        Trainer(opt, interactive=False)
    assert not (tmp_path / "exp").exists()


def test_paired_finetuning_without_degradation(hr_folder, tmp_path, natural_image):
    """Real-ESRGAN's pair-data fine-tuning: high_order_degradation false, RealESRGANPairedDataset with meta_info."""
    from esrgan.imageops.imresize import imresize

    root = tmp_path / "pairs"
    for i in range(2):
        hr = np.ascontiguousarray(natural_image[100 * i : 100 * i + 64, :64])
        imwrite(root / "gt" / f"{i}.png", hr)
        imwrite(root / "lq" / f"{i}.png", imresize(hr, 0.25))
    (root / "meta.txt").write_text("gt/0.png, lq/0.png\ngt/1.png, lq/1.png\n")
    sets = [
        "high_order_degradation=false", "datasets.train.type=RealESRGANPairedDataset",
        f"datasets.train.dataroot_gt={root}", f"datasets.train.dataroot_lq={root}",
        f"datasets.train.meta_info={root / 'meta.txt'}",
    ]  # fmt: skip
    opt = load_options(FIXTURES / GAN, [*_overrides(hr_folder, tmp_path / "exp", 2, *GAN_EXTRA), *sets])
    trainer = Trainer(opt, interactive=False)
    assert trainer.run() == 0
    log = next((tmp_path / "exp").glob("train_*.log")).read_text()
    assert " l_g_gan: " in log and " l_d_real: " in log
    state = load_checkpoint_file(tmp_path / "exp" / "training_states" / "2.state")
    assert state["rank_states"][0]["degradation"]["queue"]["ptr"] == 0  # given pairs: nothing degraded or queued


def test_x2_stage_degrades_to_half_size(hr_folder, tmp_path):
    exp = tmp_path / "x2"
    _train(NET, hr_folder, exp, 2, "scale=2", "network_g.scale=2")
    queue = load_checkpoint_file(exp / "training_states" / "2.state")["rank_states"][0]["degradation"]["queue"]
    assert tuple(queue["lq"].shape) == (4, 3, 16, 16) and tuple(queue["gt"].shape) == (4, 3, 32, 32)


def test_dataset_and_model_types_must_fit(hr_folder, tmp_path):
    sets = _overrides(hr_folder, tmp_path / "x", 2)
    with pytest.raises(OptionsError, match="cannot train on") as info:
        load_options(FIXTURES / NET, [*sets, "model_type=SRModel"])
    assert info.value.key == "datasets.train.type"
    paired = [*sets, "datasets.train.type=RealESRGANPairedDataset", f"datasets.train.dataroot_lq={hr_folder}"]
    with pytest.raises(OptionsError, match="high_order_degradation: false") as info:
        load_options(FIXTURES / NET, paired)
    assert info.value.key == "datasets.train.type"
    pairs = load_options(FIXTURES / NET, [*paired, "high_order_degradation=false"])
    assert pairs.real_esrgan.high_order_degradation is False
