"""Trainer building blocks against hand-computed values: EMA, schedules, sampler, RNG state, folders."""

from __future__ import annotations

import io
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from esrgan.data.sampling import EpochSampler, SeededDataset
from esrgan.options import OptionsError, SchedulerOptions, from_mapping
from esrgan.training.ema import ModelEMA
from esrgan.training.experiment import archive_if_exists, latest_state, prune
from esrgan.training.models import SRModel
from esrgan.training.rng import get_rng_state, set_rng_state
from esrgan.training.schedulers import CosineAnnealingRestartLR, build_scheduler


def test_ema_averages_parameters_and_float_buffers_and_copies_integer_buffers() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(net, decay=0.9)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net[1].running_mean.fill_(2.0)
        net[1].num_batches_tracked.fill_(7)
    ema.update(net)
    sd = ema.state_dict()
    # ema = 0.9 * old + 0.1 * new, with new = old + 1 -> old + 0.1
    torch.testing.assert_close(sd["0.weight"], start["0.weight"] + 0.1)
    torch.testing.assert_close(sd["1.bias"], start["1.bias"] + 0.1)
    torch.testing.assert_close(sd["1.running_mean"], torch.full((2,), 0.2))  # 0.9 * 0 + 0.1 * 2
    assert int(sd["1.num_batches_tracked"]) == 7
    assert not any(p.requires_grad for p in ema.module.parameters())
    # a second update with decay 0.5 halves the remaining gap
    ema.update(net, decay=0.5)
    torch.testing.assert_close(ema.state_dict()["0.weight"], start["0.weight"] + 0.55)
    with pytest.raises(ValueError, match="ema_decay"):
        ModelEMA(net, decay=1.0)


def test_cosine_restart_schedule_matches_the_formula_at_every_step() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=2e-4)
    sched = CosineAnnealingRestartLR(opt, periods=[10, 10], restart_weights=[1.0, 0.5], eta_min=1e-7)
    lrs = []
    for _ in range(25):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()

    def expected(t: int) -> float:
        if t >= 20:
            return 1e-7
        start, weight = (0, 1.0) if t <= 10 else (10, 0.5)
        return 1e-7 + weight * 0.5 * (2e-4 - 1e-7) * (1 + math.cos(math.pi * (t - start) / 10))

    assert lrs == pytest.approx([expected(t) for t in range(25)], rel=1e-9, abs=1e-15)
    assert lrs[10] == pytest.approx(1e-7)  # end of the first period, as BasicSR
    assert lrs[11] == pytest.approx(expected(11))  # restart at half weight


def test_multistep_schedule_and_unknown_scheduler() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, SchedulerOptions("MultiStepLR", milestones=[2, 4], gamma=0.5))
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25]
    # Unknown schedulers and keys are refused when the options are read, naming the key.
    with pytest.raises(OptionsError, match=r"train.scheduler.type: 'Step' is not allowed"):
        from_mapping(SchedulerOptions, {"type": "Step"}, "train.scheduler")
    with pytest.raises(OptionsError, match=r"train.scheduler.step_size: unknown key"):
        from_mapping(SchedulerOptions, {"type": "MultiStepLR", "milestones": [1], "step_size": 3}, "train.scheduler")


def test_warmup_scales_the_scheduled_lr_and_puts_it_back() -> None:
    model = SRModel.__new__(SRModel)  # only the lr bookkeeping is exercised
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    model.optimizers, model.warmup_iter = [opt], 4
    model.schedulers = [build_scheduler(opt, SchedulerOptions("MultiStepLR", milestones=[2], gamma=0.1))]
    seen = []
    for it in range(1, 6):
        model.update_learning_rate(it)
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        model.step_schedulers()
    # iteration t < 4 uses scheduled_lr * t / 4; the schedule (0.1 from iteration 3) is unaffected
    assert seen == pytest.approx([0.25, 0.5, 0.075, 0.1, 0.1])


def test_sampler_splits_one_global_order_between_ranks_and_resumes_by_position() -> None:
    single = EpochSampler(10, seed=3, world_size=1)
    ranks = [EpochSampler(10, seed=3, rank=r, world_size=2) for r in range(2)]
    for s in (single, *ranks):
        s.set_epoch(4)
    order = list(single)
    assert sorted(i for i, _ in order) == list(range(10))
    r0, r1 = list(ranks[0]), list(ranks[1])
    assert r0 == order[0::2] and r1 == order[1::2]
    # batch i of 2 ranks with batch 1 == batch i of one process with batch 2
    for i in range(5):
        assert {r0[i], r1[i]} == set(order[2 * i : 2 * i + 2])
    # another epoch, another order; same epoch, same order
    single.set_epoch(5)
    assert list(single) != order
    single.set_epoch(4, start=6)
    assert list(single) == order[6:] and len(single) == 4
    # uneven split pads by wrapping around, like DistributedSampler
    odd = [EpochSampler(5, seed=1, rank=r, world_size=2) for r in range(2)]
    assert len(odd[0]) == len(odd[1]) == 3


def test_seeded_dataset_makes_augmentation_a_function_of_the_sample_seed() -> None:
    class Noisy(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> tuple[int, float, float, float]:
            return i, random.random(), float(np.random.rand()), float(torch.rand(()))

    ds = SeededDataset(Noisy())
    random.seed(1)
    outside = random.random()
    random.seed(1)
    a = ds[(2, 12345)]
    assert random.random() == outside  # the caller's stream is untouched in the main process
    assert ds[(2, 12345)] == a and ds[(2, 999)] != a


def test_seeded_dataset_in_the_main_process_leaves_the_cuda_generators_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # num_worker_per_gpu: 0 loads in the training process, whose CUDA generators draw the gradient penalty's
    # weights: reseeding them per sample would make those draws follow the last sample's seed.
    reseeded: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded.append)
    monkeypatch.setattr(torch.cuda, "manual_seed", reseeded.append)

    class Draw(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int) -> float:
            return float(torch.rand(()))

    ds = SeededDataset(Draw())
    assert ds[(0, 7)] == ds[(0, 7)] != ds[(0, 8)]  # the CPU generator is still seeded per sample
    assert reseeded == []


def test_rng_state_round_trips_through_weights_only_load() -> None:
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = get_rng_state()
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    expected = (random.random(), np.random.randn(), torch.rand(3))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    set_rng_state(loaded)
    got = (random.random(), np.random.randn(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_experiment_folder_helpers(tmp_path) -> None:
    states = tmp_path / "training_states"
    states.mkdir()
    assert latest_state(states) is None
    for it in (5, 40, 100, 7):
        (states / f"{it}.state").write_bytes(b"")
    (states / "notes.txt").write_text("x")
    assert latest_state(states).name == "100.state"  # numeric, not lexical, order
    removed = prune(states, r"^(\d+)\.state$", keep_last=2)
    assert sorted(p.name for p in removed) == ["5.state", "7.state"]
    assert sorted(p.name for p in states.iterdir()) == ["100.state", "40.state", "notes.txt"]
    archived = archive_if_exists(tmp_path / "training_states")
    assert archived.name.startswith("training_states_archived_") and (archived / "100.state").exists()
    assert archive_if_exists(tmp_path / "absent") is None


@pytest.mark.parametrize("scaled", [False, True], ids=["fp32", "fp16-scaler"])
def test_grad_clip_bounds_the_total_gradient_norm_after_unscaling(scaled: bool) -> None:
    # SGD with lr 1: the update is minus the (clipped) gradient, so its norm is the clipped norm.
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    x = torch.randn(5, 4)

    def update_norm(clip: float) -> tuple[float, float]:
        model = SRModel.__new__(SRModel)  # only the backward/step path is exercised
        model.grad_clip = clip
        model.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, enabled=scaled)
        copy = nn.Linear(4, 3)
        copy.load_state_dict(net.state_dict())
        opt = torch.optim.SGD(copy.parameters(), lr=1.0)
        before = torch.cat([p.detach().flatten().clone() for p in copy.parameters()])
        loss = (copy(x) * 10).square().mean()
        grads = torch.autograd.grad(loss, list(copy.parameters()), retain_graph=True)
        model._backward_step(loss, opt, list(copy.parameters()))
        after = torch.cat([p.detach().flatten() for p in copy.parameters()])
        return float((before - after).norm()), float(torch.cat([g.flatten() for g in grads]).norm())

    moved, grad_norm = update_norm(0.0)
    assert grad_norm > 1.0 and moved == pytest.approx(grad_norm, rel=1e-5)  # no clipping: the full gradient
    moved, _ = update_norm(0.5)
    assert moved == pytest.approx(0.5, rel=1e-5)  # clipped to 0.5 (the scaler's 1024 factor removed first)
    moved, _ = update_norm(1e6)
    assert moved == pytest.approx(grad_norm, rel=1e-5)  # a bound above the norm changes nothing


def test_srmodel_trains_with_a_perceptual_loss_as_basicsr_does() -> None:
    from tiny_training import tiny_options_dict

    from esrgan.options import options_from_dict

    raw = tiny_options_dict("d", "e")
    raw["train"]["pixel_opt"] = {"type": "L1Loss", "loss_weight": 0.5}
    raw["train"]["perceptual_opt"] = {"type": "PerceptualLoss", "layer_weights": {"conv1_2": 1.0},
                                      "style_weight": 1.0, "pretrained": False}
    torch.manual_seed(0)
    model = SRModel(options_from_dict(raw), torch.device("cpu"))
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    lq, gt = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        expected_pix = 0.5 * (model.net_g(lq) - gt).abs().mean()
    losses = model.optimize_parameters(lq, gt, 1)
    assert set(losses) == {"l_pix", "l_percep", "l_style"}  # BasicSR's SRModel names
    torch.testing.assert_close(losses["l_pix"], expected_pix)
    assert losses["l_percep"] > 0 and losses["l_style"] > 0
    assert any(not torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())


def _pretend_cpu(monkeypatch: pytest.MonkeyPatch, **features: bool) -> None:
    """Pretend the CPU has (or lacks) features, as torch._C._cpu._get_cpu_capability() reports them."""
    from esrgan.utils import hardware

    monkeypatch.setattr(hardware, "cpu_features", lambda: {"avx2": True, **features})


def _train_options(**keys: object):
    from tiny_training import tiny_options_dict

    from esrgan.options import options_from_dict

    raw = tiny_options_dict("d", "e")
    raw["train"].update(keys)
    return options_from_dict(raw).train


@pytest.mark.parametrize("features", [{}, {"avx512_bf16": False, "amx_bf16": False}])
def test_auto_precision_keeps_fp32_on_a_cpu_without_native_bf16(monkeypatch, features) -> None:
    from esrgan.training.precision import training_precision

    _pretend_cpu(monkeypatch, **features)
    t = _train_options()
    assert t.use_amp == "auto" and t.channels_last == "auto"  # the defaults
    p = training_precision(t, torch.device("cpu"))
    assert p.autocast is None and not p.grad_scaler and not p.channels_last
    assert p.note.startswith("training precision: fp32, contiguous (NCHW) (train.use_amp: auto; this CPU has no native")
    # the whole model follows it: no autocast in the step
    _pretend_cpu(monkeypatch, **features)
    from tiny_training import tiny_options_dict

    from esrgan.options import options_from_dict

    model = SRModel(options_from_dict(tiny_options_dict("d", "e")), torch.device("cpu"))
    assert model.amp_dtype is None and not model.scaler.is_enabled()


@pytest.mark.parametrize("feature", ["avx512_bf16", "amx_bf16"])
def test_auto_precision_is_bf16_where_the_cpu_has_it_with_the_way_back(monkeypatch, feature) -> None:
    from esrgan.training.precision import training_precision

    _pretend_cpu(monkeypatch, **{feature: True})
    p = training_precision(_train_options(), torch.device("cpu"))
    assert p.autocast == torch.bfloat16 and not p.grad_scaler and p.channels_last
    assert feature in p.note and p.note.endswith("train.use_amp: false trains in fp32")
    back = training_precision(_train_options(use_amp=False), torch.device("cpu"))
    assert back.autocast is None and back.note == "training precision: fp32, contiguous (NCHW) (train.use_amp: false)"
    nchw = training_precision(_train_options(channels_last=False), torch.device("cpu"))
    assert not nchw.channels_last and "contiguous (NCHW)" in nchw.note


def test_explicit_amp_and_gpus(monkeypatch) -> None:
    from esrgan.training.precision import training_precision

    _pretend_cpu(monkeypatch)
    forced = training_precision(_train_options(use_amp=True), torch.device("cpu"))  # asked for: bf16, with the cost
    assert forced.autocast == torch.bfloat16 and "emulated and several times slower" in forced.note
    fp16 = training_precision(_train_options(use_amp=True, amp_dtype="fp16"), torch.device("cpu"))
    assert fp16.autocast == torch.float16 and fp16.grad_scaler
    gpu = training_precision(_train_options(), torch.device("cuda"))  # the decision, not a run: no GPU needed
    assert gpu.autocast == torch.float16 and gpu.grad_scaler and gpu.channels_last and "with a grad scaler" in gpu.note
    assert not training_precision(_train_options(), torch.device("mps")).channels_last


def test_use_amp_values_are_checked() -> None:
    from esrgan.options import OptionsError

    with pytest.raises(OptionsError, match=r"train.use_amp: expected true or false or one of auto, got 'fast'"):
        _train_options(use_amp="fast")


def test_a_training_state_resumes_across_precisions(monkeypatch) -> None:
    """A state saved with fp16's grad scaler resumes in fp32 and the other way round (auto decides per machine):
    the weights and optimizer come back, a scaler keeps its start where the state had none."""
    from tiny_training import tiny_options_dict

    from esrgan.options import options_from_dict

    _pretend_cpu(monkeypatch)

    def model(**keys: object) -> SRModel:
        raw = tiny_options_dict("d", "e")
        raw["train"].update(keys)
        return SRModel(options_from_dict(raw), torch.device("cpu"))

    fp16, fp32 = model(use_amp=True, amp_dtype="fp16"), model(use_amp=False)
    assert fp16.scaler.is_enabled() and not fp32.scaler.is_enabled()
    fp16.scaler.scale(torch.ones(()))  # the scale is made on first use
    assert fp16.state_dict()["scaler"]["scale"] == 65536.0 and fp32.state_dict()["scaler"] == {}
    for source, target in ((fp16, fp32), (fp32, fp16)):
        state = source.state_dict()
        target.load_state_dict(state)
        for k, v in source.net_g.state_dict().items():
            torch.testing.assert_close(target.net_g.state_dict()[k], v)
    assert fp16.scaler.is_enabled() and fp16.scaler.get_scale() == 65536.0  # the fp32 state left it as it was
