"""Optimizers beyond Adam: Adan against the paper's Algorithm 1, schedule-free AdamW's two points, and both
through the trainer (a tiny run that learns and resumes bit-exactly)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from tiny_training import make_tiny_data, tiny_options_dict

from esrgan.checkpoint import load_checkpoint_file
from esrgan.optim import Adan, evaluation_point, start_training
from esrgan.options import OptionsError, options_from_dict
from esrgan.training.trainer import Trainer


def _adan_by_the_paper(p0, grads, lr, betas_paper, eps, wd):
    """Algorithm 1 of the Adan paper in its own notation (beta_i weigh the new term), scalar by scalar, with the
    bias correction of the official release."""
    b1, b2, b3 = betas_paper
    p = list(p0)
    m = [0.0] * len(p)
    v = [0.0] * len(p)
    n = [0.0] * len(p)
    prev = None
    for k, g in enumerate(grads, start=1):
        for i in range(len(p)):
            d = 0.0 if prev is None else g[i] - prev[i]
            m[i] = (1 - b1) * m[i] + b1 * g[i]
            v[i] = (1 - b2) * v[i] + b2 * d
            n[i] = (1 - b3) * n[i] + b3 * (g[i] + (1 - b2) * d) ** 2
            m_hat = m[i] / (1 - (1 - b1) ** k)
            v_hat = v[i] / (1 - (1 - b2) ** k)
            n_hat = n[i] / (1 - (1 - b3) ** k)
            eta = lr / (math.sqrt(n_hat) + eps)
            p[i] = (p[i] - eta * (m_hat + (1 - b2) * v_hat)) / (1 + lr * wd)
        prev = g
    return p


def test_adan_follows_the_papers_algorithm_step_by_step():
    grads = [[0.5, -1.0, 2.0], [0.1, -0.7, 2.5], [-0.3, 0.2, 1.0], [0.4, 0.4, -0.5], [1.0, -2.0, 0.3]]
    p0 = [0.2, -0.4, 1.5]
    want = _adan_by_the_paper(p0, grads, lr=0.05, betas_paper=(0.02, 0.08, 0.01), eps=1e-8, wd=0.02)
    param = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = Adan([param], lr=0.05, weight_decay=0.02)  # default betas (0.98, 0.92, 0.99) = the paper's (0.02, 0.08, 0.01)
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    assert param.detach().tolist() == pytest.approx(want, rel=1e-12, abs=1e-14)
    assert max(abs(a - b) for a, b in zip(want, p0)) > 0.05  # it did move


def test_adan_state_dict_resumes_exactly():
    import io

    torch.manual_seed(0)
    start = torch.randn(4, 3)

    def steps(param, opt, first, last):
        for i in range(first, last):
            param.grad = torch.sin(param.detach() * (i + 1))  # a gradient that depends on the step
            opt.step()

    param = torch.nn.Parameter(start.clone())
    opt = Adan([param], lr=1e-2, weight_decay=1e-3, no_prox=True)
    steps(param, opt, 0, 6)
    straight = param.detach().clone()

    param = torch.nn.Parameter(start.clone())
    opt = Adan([param], lr=1e-2, weight_decay=1e-3, no_prox=True)
    steps(param, opt, 0, 3)
    buf = io.BytesIO()  # as a training state file: saved, then read back in a fresh optimizer
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    param = torch.nn.Parameter(param.detach().clone())
    opt = Adan([param], lr=1e-2, weight_decay=1e-3, no_prox=True)
    opt.load_state_dict(torch.load(buf, weights_only=True))
    steps(param, opt, 3, 6)
    assert torch.equal(param.detach(), straight)


def test_schedule_free_evaluation_point_is_the_average_and_the_training_point_comes_back_bit_exactly():
    schedulefree = pytest.importorskip("schedulefree")
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(5))
    opt = schedulefree.AdamWScheduleFree([param], lr=0.1)
    start_training([opt])
    for i in range(4):
        param.grad = param.detach() * 0.5 + i
        opt.step()
    y = param.detach().clone()
    z = opt.state[param]["z"]
    beta1 = opt.param_groups[0]["betas"][0]
    with evaluation_point([opt]) as moved:
        assert moved
        x = param.detach().clone()
        with evaluation_point([opt]) as again:  # re-entrant: already at x
            assert not again and torch.equal(param.detach(), x)
    # y = (1 - beta1) z + beta1 x  (the package's definition of the training point)
    torch.testing.assert_close(y, (1 - beta1) * z + beta1 * x, rtol=0, atol=1e-6)
    assert not torch.equal(x, y)
    assert torch.equal(param.detach(), y) and opt.param_groups[0]["train_mode"]


# ---- through the trainer -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_data(tmp_path_factory.mktemp("optdata"), n_train=4, n_val=1, size=32)


OPTIMIZER_SPECS = {
    "Adan": {"type": "Adan", "lr": 1e-3, "betas": [0.98, 0.92, 0.99], "weight_decay": 0.01},
    "AdamWScheduleFree": {"type": "AdamWScheduleFree", "lr": 2e-3, "warmup_steps": 2},
}


def _options(data_root: Path, exp: Path, optim: dict, total: int, name: str, resume: str | None = None):
    raw = tiny_options_dict(data_root, exp, total_iter=total, name=name, gt_size=16)
    raw["train"]["optim_g"] = dict(optim)
    raw["train"]["ema_decay"] = 0.0  # validation and the published weights are the optimizer's own
    raw["train"].pop("scheduler")
    raw["val"] = {"val_freq": 2, "metrics": {"psnr": {"type": "psnr"}}}
    raw["logger"] = {"print_freq": 1, "save_checkpoint_freq": 2, "use_tb_logger": False}
    if resume:
        raw["path"]["resume_state"] = resume
    return options_from_dict(raw)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OPTIMIZER_SPECS))
def test_each_optimizer_trains_and_resumes_bit_exactly(name, data_root, tmp_path, one_thread):
    if name == "AdamWScheduleFree":
        pytest.importorskip("schedulefree")
    spec = OPTIMIZER_SPECS[name]
    straight = _options(data_root, tmp_path / "a", spec, 4, "straight")
    trainer = Trainer(straight, interactive=False)
    assert trainer.run() == 0
    first = load_checkpoint_file(Path(straight.path.models) / "net_g_2.pth")["params"]
    last = load_checkpoint_file(Path(straight.path.models) / "net_g_4.pth")["params"]
    assert any(not torch.equal(first[k], last[k]) for k in first)  # it trains
    assert type(trainer.model.optimizer_g).__name__ == name

    half = _options(data_root, tmp_path / "b", spec, 2, "half")
    assert Trainer(half, interactive=False).run() == 0
    state = str(Path(half.path.training_states) / "2.state")
    resumed = _options(data_root, tmp_path / "b", spec, 4, "half", resume=state)
    assert Trainer(resumed, interactive=False).run() == 0
    again = load_checkpoint_file(Path(resumed.path.models) / "net_g_4.pth")["params"]
    for k in last:
        assert torch.equal(last[k], again[k]), k
    a = torch.load(Path(straight.path.training_states) / "4.state", weights_only=True)["model"]
    b = torch.load(Path(resumed.path.training_states) / "4.state", weights_only=True)["model"]
    for k in a["networks"]["net_g"]:
        assert torch.equal(a["networks"]["net_g"][k], b["networks"]["net_g"][k]), k
    if name == "AdamWScheduleFree":
        # the published weights are the average x, the training state keeps the training point y
        trained = a["networks"]["net_g"]
        assert any(not torch.equal(trained[k], last[k]) for k in last)
        assert a["optimizers"][0]["param_groups"][0]["train_mode"] is True


def test_adan_betas_are_three_and_a_missing_schedulefree_names_the_package(data_root, tmp_path, monkeypatch):
    raw = tiny_options_dict(data_root, tmp_path, total_iter=2)
    raw["train"]["optim_g"] = {"type": "Adan", "lr": 1e-3, "betas": [0.9, 0.99]}
    with pytest.raises(OptionsError, match=r"train\.optim_g\.betas: expected a list of 3 values"):
        options_from_dict(raw)
    raw["train"]["optim_g"] = {"type": "Adan", "lr": 1e-3, "betas": [0.98, 0.92, 1.5]}
    with pytest.raises(OptionsError, match=r"train\.optim_g\.betas: each beta must be in \[0, 1\)"):
        options_from_dict(raw)
    monkeypatch.setitem(sys.modules, "schedulefree", None)
    raw["train"]["optim_g"] = {"type": "AdamWScheduleFree", "lr": 1e-3}
    with pytest.raises(OptionsError, match=r"train\.optim_g\.type: optimizer AdamWScheduleFree needs the package "
                                           r"'schedulefree': pip install schedulefree"):
        options_from_dict(raw)
