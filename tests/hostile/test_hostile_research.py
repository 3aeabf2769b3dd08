"""Hostile scenarios of the research surfaces: optimizer arguments (Adan, schedule-free AdamW), selection criteria
(val.select, interp --select), the training-pairs preview (prepare degrade --options --preview) and val.tile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import Arena
from inproc import call
from tiny_nets import tiny_rrdbnet
from training_files import earlier_run, train_file

from esrgan.checkpoint import save_network
from esrgan.data.image import imwrite

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent.parent / "fixtures" / "realesrgan"


# ---- optimizer arguments -------------------------------------------------------------------------------------------

@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("optim", "mentions"), [
    ({"type": "Adan", "lr": 1e-3, "betas": [0.9, 0.99]}, ["train.optim_g.betas", "expected a list of 3 values"]),
    ({"type": "Adan", "lr": 1e-3, "betas": [0.98, 0.92, 1.0]}, ["train.optim_g.betas", "each beta must be in [0, 1)"]),
    ({"type": "Adan", "lr": 1e-3, "eps": -1e-8}, ["train.optim_g.eps", "must be >= 0"]),
    ({"type": "Adan", "lr": 0}, ["train.optim_g.lr", "must be > 0"]),
    ({"type": "adan", "lr": 1e-3}, ["train.optim_g.type", "did you mean 'Adan'"]),
    ({"type": "Adan", "lr": 1e-3, "max_grad_norm": 1.0}, ["train.optim_g.max_grad_norm", "unknown argument of Adan"]),
    ({"type": "AdamWScheduleFree", "lr": "fast"}, ["train.optim_g.lr", "expected a number"]),
    ({"type": "AdamWScheduleFree", "lr": 1e-3, "warmup_steps": -5}, ["train.optim_g.warmup_steps", "must be >= 0"]),
    ({"type": "AdamWScheduleFree", "lr": 1e-3, "momentum": 0.9}, ["train.optim_g.momentum", "unknown argument"]),
])
def test_bad_optimizer_arguments_are_refused_naming_the_key(arena: Arena, optim, mentions) -> None:
    if optim["type"] == "AdamWScheduleFree":
        pytest.importorskip("schedulefree")
    opt = train_file(arena, ("train.optim_g", optim))
    earlier_run(arena)
    call(arena, "train", "-opt", opt).assert_refused(*mentions, code=2)


@pytest.mark.hostile("refused")
def test_schedule_free_without_its_package_names_the_install(arena: Arena, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "schedulefree", None)
    opt = train_file(arena, ("train.optim_g", {"type": "AdamWScheduleFree", "lr": 1e-3}))
    earlier_run(arena)
    call(arena, "train", "-opt", opt).assert_refused("train.optim_g.type", "pip install schedulefree", code=2)


# ---- val.select and interp --select ----------------------------------------------------------------------------

@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("select", "mentions"), [
    ("lowest", ["val.select", "expected 'lowest METRIC' or 'highest METRIC' first"]),
    ("lowest lpips", ["val.select", "'lpips' is not scored here; scored: psnr, ssim"]),
    ("highest psnr with ssim no more than 0.1 below the gan model", ["val.select", "cannot read the condition"]),
    ("highest psnr with ssim at least 1e999", ["val.select", "bounds must be finite"]),
    ("highest psnr with " + "ssim at least " * 10000, ["val.select", "cannot read the condition", "..."]),
    ("", ["val.select", "a selection criterion is a sentence"]),
    (["highest", "psnr"], ["val.select", "expected a string"]),
])
def test_bad_selection_criteria_in_a_training_file_are_one_line(arena: Arena, select, mentions) -> None:
    opt = train_file(arena, ("val.select", select))
    earlier_run(arena)
    result = call(arena, "train", "-opt", opt)
    result.assert_refused(*mentions, code=2)
    assert len(result.last_line) < 600  # a 100 kB criterion is not echoed whole


@pytest.mark.hostile("correct")
def test_a_criterion_in_capitals_over_several_lines_selects(arena: Arena) -> None:
    select = "HIGHEST  SSIM\nwith psnr_y   no more than 30 dB\tbelow the PSNR model"
    opt = train_file(arena, ("val.select", select), ("val.val_freq", 1), total_iter=2)
    call(arena, "train", "-opt", opt).assert_ok()
    sel = json.loads((arena.work / "experiments" / "tiny" / "selection.json").read_text())
    assert sel["criterion"] == select and [c["iter"] for c in sel["candidates"]] == [1, 2]
    assert sel["chosen"]["iter"] in (1, 2)
    assert (arena.work / "experiments" / "tiny" / "models" / "net_g_selected.pth").is_file()


@pytest.fixture
def sweep_pair(arena: Arena, natural_image) -> list[str]:
    save_network(arena.work / "psnr.pth", {"params": tiny_rrdbnet(1, 0.35).state_dict()})
    save_network(arena.work / "gan.pth", {"params": tiny_rrdbnet(2, 0.6).state_dict()})
    imwrite(arena.work / "HR" / "a.png", natural_image[:48, :48])
    for name in ("psnr.pth", "gan.pth", "HR"):
        arena.input(name)
    return ["interp", "--psnr", "psnr.pth", "--gan", "gan.pth", "--hr", "HR", "--scale", "4", "--name", "s",
            "-q", "--device", "cpu"]


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("extra", "mentions"), [
    (["--sweep", "0:1:0.5", "--select", "lowest niqe"], ["'niqe' is not scored here"]),
    (["--sweep", "0.5,1", "--select", "highest ssim_y with psnr_y no more than 1 below the psnr model"],
     ["alpha 0", "leave out"]),
    (["--sweep", "0:1:0.5", "--select", "lowest lpips; rm -rf /"], ["--select", "expected 'lowest METRIC'"]),
    (["--sweep", "0:1:0.5", "--select", "highest psnr_y with psnr_y no more than -0.5 below the psnr model"],
     ["--select", "must be >= 0"]),
])
def test_bad_sweep_criteria_are_refused_before_any_scoring(arena: Arena, sweep_pair, extra, mentions) -> None:
    call(arena, *sweep_pair, *extra).assert_refused(*mentions, code=1)
    assert not (arena.work / "experiments" / "s").exists()


@pytest.mark.hostile("correct")
def test_a_criterion_no_alpha_meets_says_so_and_the_sweep_completes(arena: Arena, sweep_pair) -> None:
    result = call(arena, *sweep_pair, "--sweep", "0:1:0.5", "--select", "highest ssim_y with psnr_y at least 99")
    result.assert_ok()
    assert "none meets the conditions" in result.out
    sel = json.loads((arena.work / "experiments" / "s" / "sweep.json").read_text())["selection"]
    assert sel["alpha"] is None and [s["meets"] for s in sel["sets"].values()] == [[]]


# ---- the training-pairs preview -------------------------------------------------------------------------------------

def _real_file(arena: Arena) -> str:
    """A tiny Real-ESRGAN training file (RealESRNetModel) over three HR images in the arena."""
    from skimage import data

    from esrgan.options import load_options, save_options

    img = data.astronaut()
    for i in range(3):
        imwrite(arena.work / "hr" / f"{i}.png", img[100 * i : 100 * i + 100, 100:200])
    opt = load_options(FIXTURES / "train_realesrnet_x4plus.yml", [
        f"datasets.train.dataroot_gt={arena.work / 'hr'}", "datasets.train.meta_info=null",
        "datasets.train.crop_pad_size=96", "datasets.train.gt_size=32", "gt_size=32", "queue_size=2",
        "datasets.train.batch_size_per_gpu=1", "datasets.train.num_worker_per_gpu=0", "network_g.num_block=1",
        "path.pretrain_network_g=null", f"path.experiments_root={arena.work / 'experiments' / 'r'}", "num_gpu=0",
    ])  # fmt: skip
    save_options(opt, arena.work / "real.yml")
    arena.input("hr")
    arena.input("real.yml")
    return "real.yml"


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("flags", "mentions"), [
    (["--preview", "gallery.png"], ["--preview gallery.png", "folder"]),
    (["--preview", "g", "--steps", "0"], ["--steps 0", "1 to 50"]),
    (["--preview", "g", "--steps", "1000000"], ["--steps 1000000", "1 to 50"]),
    (["--preview", "g", "--seed", "3"], ["--seed", "leave them out"]),
    (["--preview", "g", "--hr-output", "x"], ["--hr-output", "leave them out"]),
    ([], ["add --preview dir"]),
    (["--preview", "real.yml/inside"], ["real.yml"]),
])
def test_bad_preview_flags_are_one_line(arena: Arena, flags, mentions) -> None:
    opt = _real_file(arena)
    call(arena, "prepare", "degrade", "--options", opt, *flags).assert_refused(*mentions)
    assert not (arena.work / "g").exists()


@pytest.mark.hostile("refused")
def test_preview_of_a_file_that_degrades_nothing_is_refused(arena: Arena) -> None:
    opt = train_file(arena)  # a paired ESRGAN file
    call(arena, "prepare", "degrade", "--options", opt, "--preview", "g").assert_refused("model_type",
                                                                                       "expected a real-esrgan")


@pytest.mark.hostile("refused")
def test_preview_never_writes_into_a_folder_with_files_unless_told(arena: Arena) -> None:
    opt = _real_file(arena)
    (arena.work / "g").mkdir()
    (arena.work / "g" / "report.html").write_text("someone's page")
    arena.input("g")
    call(arena, "prepare", "degrade", "--options", opt, "--preview", "g").assert_refused("g", "--overwrite")


@pytest.mark.hostile("correct")
def test_preview_with_a_folder_name_of_spaces_and_marks(arena: Arena) -> None:
    opt = _real_file(arena)
    out = "my <preview> & 'pairs'"
    call(arena, "prepare", "degrade", "--options", opt, "--preview", out, "--steps", "1").assert_ok()
    html = (arena.work / out / "report.html").read_text(encoding="utf-8")
    assert "<preview>" not in html.split("<body>")[0]  # the title is escaped
    assert len(list((arena.work / out / "images").glob("*_lq.png"))) == 1


# ---- val.tile ----------------------------------------------------------------------------------------------------

@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("sets", "mentions"), [
    ([("val.tile", -8)], ["val.tile", "must be >= 0"]),
    ([("val.tile", "auto")], ["val.tile", "expected an integer"]),
    ([("val.tile", 16), ("val.tile_pad", -1)], ["val.tile_pad", "must be >= 0"]),
    ([("val.tile_pad", 16)], ["val.tile_pad", "only for tiled validation"]),
    ([("val.tile", 2**80)], ["val.tile"]),
])
def test_bad_val_tile_values_are_refused(arena: Arena, sets, mentions) -> None:
    opt = train_file(arena, *sets)
    earlier_run(arena)
    call(arena, "train", "-opt", opt).assert_refused(*mentions, code=2)


@pytest.mark.hostile("correct")
@pytest.mark.parametrize("tile", [1, 10**9])
def test_tiny_and_huge_tiles_validate_like_the_whole_image(arena: Arena, tile: int) -> None:
    runs = {}
    for name, extra in (("whole", []), ("tiled", [("val.tile", tile), ("val.tile_pad", 4)])):
        opt = train_file(arena, ("name", name), ("path.experiments_root", str(arena.work / "experiments" / name)),
                         ("train.total_iter", 1), ("val.val_freq", 1), *extra)
        (arena.work / f"{name}.yml").write_text((arena.work / opt).read_text())
        call(arena, "train", "-opt", f"{name}.yml").assert_ok()
        log = next((arena.work / "experiments" / name).glob("train_*.log")).read_text()
        runs[name] = float(log.split("validation tinyval @ iter 1: psnr: ")[1].split()[0])
    assert runs["tiled"] == pytest.approx(runs["whole"], abs=0.05)
