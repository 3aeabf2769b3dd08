"""Declared selection criteria: the grammar, the choice, and their use in training (val.select) and sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_nets import tiny_rrdbnet
from tiny_training import make_tiny_data, tiny_options_dict

from esrgan.checkpoint import load_checkpoint_file, save_network
from esrgan.data.image import imwrite
from esrgan.metrics.selection import Condition, parse_criterion
from esrgan.options import OptionsError, options_from_dict

PAPER = "lowest lpips with psnr_y no more than 0.5 dB below the PSNR model"


def test_the_grammar_reads_the_declared_sentence():
    c = parse_criterion("  Lowest LPIPS   with psnr_y no more than 0.5 dB below the PSNR model and "
                        "color_drift at most 2")
    assert (c.objective, c.lowest) == ("lpips", True)
    assert c.conditions == (Condition("psnr_y", "below", 0.5), Condition("color_drift", "at most", 2.0))
    assert c.needs_reference and c.metrics == ["lpips", "psnr_y", "color_drift"]
    assert c.describe({"psnr_y": 27.25}) == "lowest lpips with psnr_y >= 26.75 and color_drift <= 2"
    c2 = parse_criterion("highest ssim_y with niqe no more than 1 above the psnr model and psnr_y at least 25 db")
    assert c2.conditions == (Condition("niqe", "above", 1.0), Condition("psnr_y", "at least", 25.0))
    assert not parse_criterion("highest psnr_y").needs_reference
    for bad, says in (
        ("", "a selection criterion is a sentence"),
        ("smallest lpips", "expected 'lowest METRIC' or 'highest METRIC' first"),
        ("lowest lpips with psnr_y below 0.5", "cannot read the condition 'psnr_y below 0.5'"),
        ("lowest lpips with psnr_y no more than -1 below the psnr model", "must be >= 0"),
        ("lowest lpips with psnr_y no more than 0.5 below the gan model", "cannot read the condition"),
        ("lowest lpips with psnr_y at least nan", "cannot read the condition"),
        ("lowest lpips and psnr_y at least 3", "expected 'lowest METRIC'"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_criterion(bad)


def test_the_choice_on_a_hand_table():
    c = parse_criterion(PAPER)
    ref = {"lpips": 0.30, "psnr_y": 27.40}
    table = [(0.0, ref), (0.5, {"lpips": 0.22, "psnr_y": 26.95}), (0.7, {"lpips": 0.18, "psnr_y": 26.90}),
             (0.8, {"lpips": 0.15, "psnr_y": 26.80}), (1.0, {"lpips": 0.12, "psnr_y": 26.10}),
             (0.9, {"lpips": float("nan"), "psnr_y": 27.0})]
    assert c.choose(table, ref)[0] == 0.7  # 26.90 >= 27.40 - 0.5; 0.8 is 0.6 dB below
    assert parse_criterion("lowest lpips").choose(table)[0] == 1.0  # NaN is never chosen
    assert parse_criterion("lowest lpips with psnr_y at least 30").choose(table) is None
    equal = [(1, {"psnr_y": 2.0}), (2, {"psnr_y": 2.0})]
    assert parse_criterion("highest psnr_y").choose(equal)[0] == 1  # the first of equals
    with pytest.raises(ValueError, match=r"'dists' is not scored here; scored: lpips, psnr_y"):
        parse_criterion("lowest dists").check_metrics(["lpips", "psnr_y"])


# ---- training ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 48 px: a 32-px validation crop is flat, where RRDBNet's untrained start (an enlargement) scores inf dB.
    return make_tiny_data(tmp_path_factory.mktemp("seldata"), n_train=4, n_val=2, size=48)


def _raw(data_root, exp, total=6, select="highest ssim with psnr_y no more than 0.5 dB below the PSNR model",
         name="sel"):
    raw = tiny_options_dict(data_root, exp, total_iter=total, name=name)
    raw["val"]["val_freq"] = 2
    raw["val"]["select"] = select
    raw["logger"] = {"print_freq": 2, "save_checkpoint_freq": 2, "use_tb_logger": False}
    raw["train"].pop("scheduler")
    return raw


def test_val_select_is_checked_at_load(data_root, tmp_path):
    opt = options_from_dict(_raw(data_root, tmp_path))
    crit = opt.val.criterion()
    assert crit.objective == "ssim" and crit.conditions[0].metric == "psnr"  # psnr_y: the Y-channel psnr metric
    for select, says in (("lowest lpips", "val.select: selection criterion 'lowest lpips': 'lpips' is not scored "
                                          "here; scored: psnr, ssim"),
                         ("best psnr", "val.select: selection criterion 'best psnr': expected 'lowest METRIC'"),
                         (3, "val.select: expected a string")):
        with pytest.raises(OptionsError) as info:
            options_from_dict(_raw(data_root, tmp_path, select=select))
        assert says in str(info.value)
    raw = _raw(data_root, tmp_path)
    del raw["datasets"]["val"]
    with pytest.raises(OptionsError, match=r"val\.select: chooses among validations"):
        options_from_dict(raw)


@pytest.mark.slow
def test_training_keeps_the_checkpoint_the_criterion_chooses_and_resumes_the_choice(data_root, tmp_path, one_thread):
    from esrgan.training.trainer import Trainer

    straight = options_from_dict(_raw(data_root, tmp_path / "a"))
    assert Trainer(straight, interactive=False).run() == 0
    root = Path(straight.path.experiments_root)
    sel = json.loads((root / "selection.json").read_text())
    assert sel["criterion"].startswith("highest ssim") and sel["dataset"] == "tinyval"
    ref = sel["reference"]["values"]
    assert sel["reference"]["iter"] == 0 and sel["bounds"] == f"highest ssim with psnr >= {ref['psnr'] - 0.5:.4g}"
    cands = sel["candidates"]
    assert [c["iter"] for c in cands] == [2, 4, 6]
    for c in cands:
        assert c["meets"] == (c["values"]["psnr"] >= ref["psnr"] - 0.5)
    meeting = [c for c in cands if c["meets"]]
    assert meeting, "the tiny run should stay within 0.5 dB of its start"
    best = max(meeting, key=lambda c: c["values"]["ssim"])
    assert sel["chosen"] == {"iter": best["iter"], "values": best["values"]}
    chosen = load_checkpoint_file(root / "models" / "net_g_selected.pth")
    numbered = load_checkpoint_file(root / "models" / f"net_g_{best['iter']}.pth")
    for key in ("params", "params_ema"):
        assert all(torch.equal(chosen[key][k], numbered[key][k]) for k in numbered[key])

    # 4 + resume + 2: the same reference, candidates and choice
    half = options_from_dict(_raw(data_root, tmp_path / "b", total=4))
    assert Trainer(half, interactive=False).run() == 0
    raw = _raw(data_root, tmp_path / "b")
    raw["path"]["resume_state"] = str(Path(half.path.training_states) / "4.state")
    assert Trainer(options_from_dict(raw), interactive=False).run() == 0
    again = json.loads((Path(half.path.experiments_root) / "selection.json").read_text())
    assert again["reference"] == sel["reference"] and again["candidates"] == cands and again["chosen"] == sel["chosen"]


# ---- sweeps ------------------------------------------------------------------------------------------------------

@pytest.fixture
def sweep_inputs(tmp_path: Path, natural_image: np.ndarray):
    psnr_path, gan_path = tmp_path / "psnr.pth", tmp_path / "gan.pth"
    save_network(psnr_path, {"params": tiny_rrdbnet(1, 0.35).state_dict()})
    save_network(gan_path, {"params": tiny_rrdbnet(2, 0.6).state_dict()})
    folder = tmp_path / "Tiny" / "HR"
    imwrite(folder / "p.png", natural_image[200:264, 200:264])
    return psnr_path, gan_path, folder


def test_sweep_chooses_the_alpha_and_writes_it_in_json_table_and_report(tmp_path, sweep_inputs):
    from esrgan.evaluation.sweep import run_sweep
    from esrgan.evaluation.testsets import make_test_set
    from esrgan.report import write_sweep_report
    from esrgan.report.pages import collect_sweep_data

    psnr_path, gan_path, hr = sweep_inputs
    select = "lowest color_drift with psnr no more than 0.3 dB below the PSNR model"
    report = run_sweep(psnr_path, gan_path, "0:1:0.25", [make_test_set(None, hr)], 4, "sel", experiments_root=tmp_path,
                       device="cpu", progress=False, select=select, save_images=False)
    means = {a: report.means[a]["Tiny"] for a in report.alphas}
    bound = means[0.0]["psnr_y"] - 0.3
    meeting = [a for a in report.alphas if means[a]["psnr_y"] >= bound]
    want = min(meeting, key=lambda a: (means[a]["color_drift"], a))
    saved = json.loads((tmp_path / "sel" / "sweep.json").read_text())["selection"]
    assert saved["criterion"] == select and saved["alpha"] == want
    assert saved["sets"]["Tiny"]["meets"] == meeting and saved["sets"]["Tiny"]["bounds"].endswith(f"{bound:.4g}")
    assert f"Tiny: alpha {want:g}" in report.format_table()
    write_sweep_report(tmp_path / "sel")
    page = collect_sweep_data(tmp_path / "sel")
    assert page["selection"]["sets"]["Tiny"]["alpha"] == f"{want:g}"
    cd = next(m for m in page["metrics"] if m["key"] == "color_drift")
    assert cd["input"] and cd["direction"] == -1  # not offered as a perception axis


def test_sweep_selection_refusals(tmp_path, sweep_inputs, capsys):
    from esrgan.commands import interp

    psnr_path, gan_path, hr = sweep_inputs
    base = ["--psnr", str(psnr_path), "--gan", str(gan_path), "--hr", str(hr), "--scale", "4", "--name", "x",
            "--experiments-root", str(tmp_path / "exp"), "-q", "--device", "cpu"]
    for extra, says in (
        (["--sweep", "0:1:0.5", "--select", "lowest lpips"], "'lpips' is not scored here; scored: psnr_y, ssim_y"),
        (["--sweep", "0.5,1", "--select", PAPER.replace("lpips", "color_drift")], "alpha 0, which the sweep's alphas"),
        (["--sweep", "0:1:0.5", "--select", "worst lpips"], "--select: selection criterion 'worst lpips'"),
    ):
        assert interp.main(base + extra) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert not (tmp_path / "exp" / "x").exists()  # refused before anything was scored or written
