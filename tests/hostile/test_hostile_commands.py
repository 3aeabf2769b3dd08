"""Every command's flags and paths as a hostile user gives them: out-of-range numbers, names with a leading dash,
unicode and 250 bytes, outputs where a file or folder is in the way, traversal in the names the program builds.

What must happen: the right result (an odd but legal name is kept), or one line naming the flag, file or value and
a non-zero exit, before anything is written; nothing outside the run's folders, no input changed. Commands run in
process (``inproc.call``); those that must not run unbounded get a process of their own with a timeout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from corpus import rgb
from harness import Arena
from inproc import assert_names, call

from esrgan.checkpoint import save_network
from esrgan.data.image import imread, imwrite

pytestmark = pytest.mark.slow


@pytest.fixture
def model(arena: Arena, model_file: Path) -> str:
    (arena.work / "m.safetensors").write_bytes(model_file.read_bytes())
    arena.input("m.safetensors")
    return "m.safetensors"


def _img(arena: Arena, name: str = "a.png", size: int = 16) -> str:
    imwrite(arena.work / name, rgb(size, size))
    arena.input(name)
    return name


def _hr(arena: Arena, folder: str = "hr") -> str:
    for i in range(2):
        imwrite(arena.work / folder / f"{i}.png", rgb(64, 64, seed=i))
    arena.input(folder)
    return folder


def _nothing_written(arena: Arena, *names: str) -> None:
    for name in names:
        p = arena.work / name
        assert not p.exists() or (p.is_dir() and not any(p.rglob("*"))), f"{name} was written"


# ---- upscale --------------------------------------------------------------------------------------------------


@pytest.mark.hostile("correct")
@pytest.mark.parametrize("name", ["-dash.png", "ünï 图 name.png", "L" * 240 + ".png", "a;rm -rf x.png", "$HOME.png"])
def test_upscale_keeps_odd_but_legal_names(arena: Arena, model: str, name: str) -> None:
    _img(arena, name)
    result = call(arena, "upscale", "-o", "out", "--model", model, "--", name)
    result.assert_ok()
    out = arena.work / "out" / (Path(name).stem + "_x4.png")
    assert imread(out).shape == (64, 64, 3)


@pytest.mark.hostile("refused")
def test_upscale_output_name_over_the_file_system_limit(arena: Arena, model: str) -> None:
    name = "L" * 250 + ".png"  # legal; "<stem>_x4.png" is 257 bytes
    _img(arena, name)
    result = call(arena, "upscale", "-o", "out", "--model", model, name)
    assert result.code != 0 and "Traceback" not in result.err, result._show()
    assert_names(result, "name too long")
    _nothing_written(arena, "out")


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("flag", "value", "mention"), [
    ("--tile", "-1", "tile"), ("--tile-pad", "-5", "tile_pad"), ("--batch-tiles", "0", "batch_tiles"),
    ("--passes", "0", "--passes"), ("--quality", "1000", "--quality"), ("--precision", "fp64", "--precision"),
    ("--device", "tpu", "--device"), ("--ext", "gif", "--ext"),
])
def test_upscale_flag_out_of_range(arena: Arena, model: str, flag: str, value: str, mention: str) -> None:
    result = call(arena, "upscale", _img(arena), "-o", "out", "--model", model, flag, value)
    assert result.code != 0 and "Traceback" not in result.err, result._show()
    assert_names(result, mention, value)
    _nothing_written(arena, "out")


@pytest.mark.hostile("refused")
def test_upscale_output_under_a_file(arena: Arena, model: str) -> None:
    (arena.work / "afile").write_text("in the way")
    arena.input("afile")
    result = call(arena, "upscale", _img(arena), "-o", "afile/out", "--model", model)
    assert result.code != 0 and "Traceback" not in result.err, result._show()
    assert_names(result, "afile")


@pytest.mark.hostile("refused")
def test_upscale_suffix_cannot_leave_the_output_folder(arena: Arena, model: str) -> None:
    result = call(arena, "upscale", _img(arena), "-o", "deep/er/out", "--model", model, "--suffix", "/../../../x")
    result.assert_refused("--suffix")
    assert not (arena.work / "deep" / "x.png").exists()


@pytest.mark.hostile("refused")
def test_upscale_passes_beyond_the_pixel_limit(arena: Arena, model: str) -> None:
    result = arena.run("upscale", _img(arena), "-o", "out", "--model", model, "--passes", "6", timeout=8)
    result.assert_refused("--passes")


@pytest.mark.hostile("refused")
def test_upscale_folder_named_like_an_image(arena: Arena, model: str) -> None:
    (arena.work / "dir.png").mkdir()
    result = call(arena, "upscale", "dir.png", "-o", "out", "--model", model)
    assert result.code != 0
    assert "no such" not in result.err, result._show()


@pytest.mark.hostile("correct")
def test_upscale_folder_with_a_broken_link_names_it(arena: Arena, model: str) -> None:
    (arena.work / "in").mkdir()
    _img(arena, "in/a.png")
    (arena.work / "in" / "b.png").symlink_to(arena.work / "in" / "moved.png")  # the photo was moved away
    result = call(arena, "upscale", "in", "-o", "out", "--model", model)
    assert result.code == 0, result._show()
    assert sorted(p.name for p in (arena.work / "out").iterdir()) == ["a_x4.png"]
    assert "b.png: a link to" in result.err and "which does not exist; skipped" in result.err, result._show()


# ---- video ----------------------------------------------------------------------------------------------------

_NOT_VIDEOS = {"text.mp4": b"not a video at all\n", "empty.mp4": b"", "folder.mp4": None}


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("name", sorted(_NOT_VIDEOS))
def test_video_input_that_is_not_a_video(arena: Arena, model: str, name: str, request: pytest.FixtureRequest) -> None:
    pytest.importorskip("av")
    path = arena.work / name
    if _NOT_VIDEOS[name] is None:
        path.mkdir()
    else:
        path.write_bytes(_NOT_VIDEOS[name])
    result = call(arena, "video", name, "-o", "out.mkv", "--model", model)
    assert result.code != 0 and "Traceback" not in result.err, result._show()
    assert_names(result, name)
    assert "no such" not in result.err, result._show()


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("flag", "value"), [("--start", "-5"), ("--duration", "0"), ("--duration", "nan"),
                                             ("--crf", "-3"), ("--batch", "0")])
def test_video_flag_out_of_range(arena: Arena, model: str, flag: str, value: str,
                                 request: pytest.FixtureRequest) -> None:
    pytest.importorskip("av")
    from synthetic_video import make_test_clip

    arena.input(make_test_clip(arena.work / "clip.mkv", frames=3, audio=None))
    result = call(arena, "video", "clip.mkv", "-o", "out.mkv", "--model", model, flag, value)
    assert result.code != 0 and "Traceback" not in result.err, result._show()
    assert_names(result, flag.lstrip("-"))
    _nothing_written(arena, "out.mkv")


# ---- export ---------------------------------------------------------------------------------------------------


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("args", "mentions"), [
    (["-o", "net.onnx", "--opset", "3"], ["--opset 3", "11.."]),
    (["-o", "net.onnx", "--opset", "99"], ["--opset 99"]),
    (["-o", "/proc/net.onnx"], ["/proc/net.onnx"]),            # a folder no one can write to, root included
    (["-o", "afile/net.onnx"], ["afile"]),                     # a file where the folder should be
    (["-o", "dir.onnx"], ["dir.onnx", "folder"]),              # a folder where the file should be
    (["-o", "net.tflite"], ["net.tflite", "unknown format"]),
    (["-o", "/proc/net.pt"], ["/proc/net.pt"]),
])
def test_export_refusals_are_one_line(arena: Arena, model: str, args: list[str], mentions: list[str]) -> None:
    (arena.work / "afile").write_text("in the way")
    (arena.work / "dir.onnx").mkdir()
    arena.input("afile")
    result = call(arena, "export", "--model", model, *args)
    result.assert_refused(*mentions)
    assert not list(arena.work.glob("*.onnx")) or list(arena.work.glob("*.onnx")) == [arena.work / "dir.onnx"]


@pytest.mark.hostile("correct")
def test_export_then_run_the_onnx_file(arena: Arena, model: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    result = call(arena, "export", "--model", model, "-o", "net.onnx")
    result.assert_ok()
    session = ort.InferenceSession(str(arena.work / "net.onnx"), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 10, 14)
    from esrgan import load_model

    ref = load_model(arena.work / model)(x).detach().numpy()
    got = session.run(None, {"input": x.numpy()})[0]
    assert got.shape == (1, 3, 40, 56) and abs(got - ref).max() < 1e-4


# ---- interp ---------------------------------------------------------------------------------------------------


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("args", "mentions"), [
    (["--alpha", "nan", "-o", "i.pth"], ["alpha", "nan"]),
    (["--alpha", "2", "-o", "i.pth"], ["alpha", "2.0"]),
    (["--alpha", "0.5", "-o", "i.txt"], ["i.txt", ".pth"]),
    (["--alpha", "0.5", "-o", "m.safetensors"], ["m.safetensors", "--overwrite"]),
    (["--alpha", "0.5", "-o", "afile/i.pth"], ["afile"]),
    (["--sweep", "0:1:1e-9", "--hr", "hr", "--scale", "4", "--name", "s"], ["1,000,000,000 alphas"]),
    (["--sweep", "0:1:0", "--hr", "hr", "--scale", "4", "--name", "s"], ["step > 0"]),
    (["--sweep", "a,b", "--hr", "hr", "--scale", "4", "--name", "s"], ["'a,b'"]),
    (["--sweep", "0,1", "--hr", "hr", "--scale", "4", "--name", "s", "--device", "cuda:7"], ["--device cuda:7"]),
])
def test_interp_refusals_are_one_line(arena: Arena, model: str, args: list[str], mentions: list[str]) -> None:
    (arena.work / "afile").write_text("in the way")
    _hr(arena)
    result = call(arena, "interp", "--psnr", model, "--gan", model, *args)
    result.assert_refused(*mentions)
    _nothing_written(arena, "experiments", "i.pth", "i.txt")


@pytest.mark.hostile("correct")
def test_interp_at_the_ends_is_each_model_bit_for_bit(arena: Arena, model: str) -> None:
    other = {k: v + 1 for k, v in __import__("esrgan.checkpoint", fromlist=["x"]).load_checkpoint_file(
        arena.work / model)["params_ema"].items()}
    save_network(arena.work / "other.pth", {"params": other})
    for alpha, want in (("0", "m"), ("1", "other")):
        result = call(arena, "interp", "--psnr", model, "--gan", "other.pth", "--alpha", alpha, "-o", f"a{alpha}.pth")
        result.assert_ok()
        got = torch.load(arena.work / f"a{alpha}.pth", weights_only=True)["params"]
        ref = other if want == "other" else __import__("esrgan.checkpoint", fromlist=["x"]).load_checkpoint_file(
            arena.work / model)["params_ema"]
        assert all(torch.equal(got[k], ref[k]) for k in ref)


# ---- test -----------------------------------------------------------------------------------------------------


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("args", "mentions"), [
    (["--scale", "1000", "--model", "bicubic"], ["smaller than the scale x1000"]),
    (["--scale", "2"], ["upscales x4", "x2"]),
    (["--scale", "-4"], ["-4"]),
    (["--scale", "4", "--metrics", "bogus"], ["bogus"]),
    (["--scale", "4", "--device", "cuda"], ["--device cuda", "not available"]),
    (["--scale", "4", "--device", "nonsense"], ["--device nonsense"]),
    (["--scale", "4", "--experiments-root", "afile"], ["afile"]),
    (["--scale", "4", "--lr", "lrbad"], ["size mismatch", "16x16"]),
    (["--scale", "4", "--hr", "nonexistent"], ["nonexistent"]),
])
def test_test_refusals_are_one_line(arena: Arena, model: str, args: list[str], mentions: list[str]) -> None:
    (arena.work / "afile").write_text("in the way")
    _hr(arena)
    imwrite(arena.work / "lrbad" / "0.png", rgb(15, 15))
    imwrite(arena.work / "lrbad" / "1.png", rgb(16, 16))
    hr = [] if "--hr" in args else ["--hr", "hr"]
    models = [] if "--model" in args else ["--model", model]
    result = call(arena, "test", *hr, *models, "--name", "t", "-q", *args)
    result.assert_refused(*mentions)


@pytest.mark.hostile("correct")
def test_test_with_the_same_folder_and_model_twice_keeps_both(arena: Arena) -> None:
    _hr(arena)
    result = call(arena, "test", "--hr", "hr", "--hr", "hr", "--model", "bicubic", "--model", "bicubic",
                  "--scale", "4", "--name", "twice", "-q")
    result.assert_ok()
    import json

    run = arena.work / "experiments" / "twice"
    results = json.loads((run / "results.json").read_text())
    assert len(results["sets"]) == 2, list(results["sets"])  # the second folder's set gets a name of its own
    assert results["models"] == ["bicubic", "bicubic_2"]  # and so does the second model


# ---- prepare --------------------------------------------------------------------------------------------------


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("args", "mentions"), [
    (["extract-subimages", "--input", "afile", "--output", "o"], ["afile"]),
    (["extract-subimages", "--input", "hr", "--output", "afile"], ["afile"]),
    (["extract-subimages", "--input", "hr", "--output", "o", "--crop-size", "0", "--step", "0"], ["--crop-size 0"]),
    (["extract-subimages", "--input", "hr", "--output", "o", "--compress-level", "99"], ["--compress-level 99"]),
    (["make-lr", "--input", "hr", "--output", "o", "--scale", "100"], ["0.png", "smaller than --scale 100"]),
    (["make-lr", "--input", "hr", "--output", "o", "--scale", "0"], ["--scale 0"]),
    (["make-lr", "--input", "hr", "--output", "o", "--scale", "4", "--filename-tmpl", "../../x{}"],
     ["--filename-tmpl", "'../../x0001'"]),
    (["make-lr", "--input", "hr", "--output", "o", "--scale", "4", "--filename-tmpl", "{}/{}"], ["--filename-tmpl"]),
    (["make-lr", "--input", "hr", "--output", "o", "--scale", "4", "--filename-tmpl", "{0}{1}"], ["--filename-tmpl"]),
    (["create-lmdb", "--input", "hr", "--output", "afile"], ["afile", "--overwrite"]),
    (["verify-lmdb", "afile"], ["afile"]),
    (["verify-lmdb", "hr"], ["meta_info.txt"]),
    (["meta-info", "--input", "hr", "--output", "afile/x.txt"], ["afile"]),
    (["multiscale", "--input", "hr", "--output", "o", "--factors", "0"], ["--factors"]),
    (["degrade", "--input", "hr", "--output", "o", "--seed", "1", "--preview", "hr"], ["hr", "folder"]),
    (["degrade", "--input", "hr", "--output", "o", "--seed", "1", "--scale", "0"], ["--scale 0"]),
    (["download", "NoSuchSet", "--root", "d"], ["NoSuchSet"]),
    (["demo", "--root", "afile"], ["afile"]),
])
def test_prepare_refusals_are_one_line(arena: Arena, args: list[str], mentions: list[str]) -> None:
    (arena.work / "afile").write_text("in the way")
    arena.input("afile")
    _hr(arena)
    result = call(arena, "prepare", *args, *(["--workers", "1"] if args[0] in ("extract-subimages", "make-lr") else []))
    result.assert_refused(*mentions)
    assert "Errno" not in result.err, result._show()
    assert not list(arena.outside.parent.glob("x0001*")), "written outside the output folder"


# ---- zoo, demo, serve, train ----------------------------------------------------------------------------------


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("args", "mentions"), [
    (["zoo", "download", "nosuch"], ["nosuch", "known"]),
    (["zoo", "download", "../../outside/victim.txt"], ["unknown zoo model"]),
    (["demo", "--root", "afile"], ["--root afile", "is a file"]),
    (["serve", "--port", "99999"], ["--port", "99999"]),
    (["serve", "--port", "-1"], ["--port"]),
    (["serve", "--host", "999.1.1.1"], ["--host 999.1.1.1"]),
    (["serve", "--work-dir", "afile"], ["--work-dir afile"]),
    (["serve", "--max-pixels", "0"], ["--max-pixels"]),
    (["serve", "--max-upload-mb", "-1"], ["--max-upload-mb"]),
    (["serve", "--model-dir", "nonexistent"], ["nonexistent"]),
    (["serve", "--device", "cuda"], ["cuda"]),
    (["train", "-opt", "nonexistent.yml"], ["nonexistent.yml"]),
    (["train", "-opt", "afile", "--set", "no-equals-sign"], ["no-equals-sign"]),
    (["nosuchcommand"], ["unknown command", "nosuchcommand"]),
])
def test_other_commands_refusals_are_one_line(arena: Arena, args: list[str], mentions: list[str]) -> None:
    (arena.work / "afile").write_text("name: x\n")
    arena.input("afile")
    if args[0] == "serve":
        pytest.importorskip("uvicorn")
    result = call(arena, *args)
    result.assert_refused(*mentions)


# ---- LMDB pairs: keys that do not match ----------------------------------------------------------------------


def _lmdb_pair(arena: Arena, lr_names: str) -> tuple[str, str]:
    from tiny_training import make_tiny_data

    data = make_tiny_data(arena.work / "data", n_train=2, n_val=1)
    lr = data / "train" / "LR"
    for p in sorted(lr.iterdir()):
        p.rename(lr / (lr_names.format(p.stem) + ".png"))
    for side in ("HR", "LR"):
        res = call(arena, "prepare", "create-lmdb", "--input", f"data/train/{side}", "--output", f"{side}.lmdb",
                   "--workers", "1")
        res.assert_ok()
    arena.input("data")
    return "HR.lmdb", "LR.lmdb"


def _train_file(arena: Arena, hr: str, lr: str, **dataset: object) -> str:
    import yaml
    from tiny_training import tiny_options_dict

    opt = tiny_options_dict(arena.work / "data", arena.work / "experiments", total_iter=2)
    opt["datasets"]["train"].update(dataroot_gt=hr, dataroot_lq=lr, io_backend={"type": "lmdb"}, **dataset)
    opt["logger"] = {"print_freq": 1, "save_checkpoint_freq": 2, "use_tb_logger": False}
    opt["val"]["val_freq"] = 2
    (arena.work / "o.yml").write_text(yaml.safe_dump(opt))
    return "o.yml"


@pytest.mark.hostile("refused")
def test_lmdb_keys_without_partners_are_one_line_with_the_mapping(arena: Arena) -> None:
    """The probe: an HR key with no LR partner was a 42-line traceback."""
    hr, lr = _lmdb_pair(arena, "low_{}")
    result = call(arena, "train", "-opt", _train_file(arena, hr, lr))
    result.assert_refused("HR key '000'", "no LR partner", "filename_tmpl: 'low_{}'")
    assert not list((arena.work / "experiments").rglob("*.pth"))


@pytest.mark.hostile("correct")
@pytest.mark.parametrize(("names", "tmpl"), [("{}x4", None), ("low_{}", "low_{}")])
def test_lmdb_keys_pair_by_the_template_or_the_x4_suffix(arena: Arena, names: str, tmpl: str | None) -> None:
    from esrgan.data.paired_dataset import PairedImageDataset
    from esrgan.options.datasets import DatasetOptions

    hr, lr = _lmdb_pair(arena, names)
    opt = DatasetOptions(dataroot_gt=str(arena.work / hr), dataroot_lq=str(arena.work / lr),
                         io_backend={"type": "lmdb"}, gt_size=16, **({"filename_tmpl": tmpl} if tmpl else {}))
    ds = PairedImageDataset(opt)
    assert [(g.key, q.key) for g, q in ds.pairs] == [("000", names.format("000")), ("001", names.format("001"))]
    item = ds[0]
    assert tuple(item["gt"].shape) == (3, 16, 16) and tuple(item["lq"].shape) == (3, 4, 4)


# ---- links where outputs go, damaged training states ----------------------------------------------------------


@pytest.mark.hostile("correct")
def test_upscale_overwrite_replaces_a_link_not_its_target(arena: Arena, model: str) -> None:
    """An output name that is a symbolic link to someone else's file: --overwrite replaces the link, never writes
    through it (the arena checks the victim is unchanged)."""
    (arena.work / "out").mkdir()
    (arena.work / "out" / "a_x4.png").symlink_to(arena.outside / "victim.png")
    result = call(arena, "upscale", _img(arena), "-o", "out", "--model", model, "--overwrite")
    result.assert_ok()
    out = arena.work / "out" / "a_x4.png"
    assert not out.is_symlink() and imread(out).shape == (64, 64, 3)


@pytest.mark.hostile("refused")
def test_auto_resume_from_a_damaged_training_state(arena: Arena) -> None:
    import yaml
    from tiny_training import make_tiny_data, tiny_options_dict

    data = make_tiny_data(arena.work / "data", n_train=2, n_val=1)
    raw = tiny_options_dict(data, arena.work / "experiments", total_iter=2)
    raw["logger"]["use_tb_logger"] = False
    (arena.work / "o.yml").write_text(yaml.safe_dump(raw))
    states = arena.work / "experiments" / "tiny" / "training_states"
    states.mkdir(parents=True)
    (states / "4.state").write_bytes(b"garbage, as after a crash of the disk")
    arena.input(states)
    result = call(arena, "train", "-opt", "o.yml", "--auto-resume")
    result.assert_refused("4.state")
    assert not list((arena.work / "experiments" / "tiny").glob("models/*.pth"))
