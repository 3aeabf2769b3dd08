"""Checkpoints from strangers, through the one reader (``esrgan.checkpoint``) and every command that loads one.

What must happen: a pickle that would run code is refused and runs nothing (and the message never suggests
``weights_only=False``); a truncated, corrupt, empty or lying file (safetensors headers that lie about sizes and
offsets) is one ``CheckpointError`` naming it; a wrong architecture or shape is one line; NaN weights are caught
before a result is written. Any bytes at all give a dict or the reader's own error (Hypothesis).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from corpus import rgb
from harness import Arena
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inproc import assert_names, call

from esrgan.archs import MSRResNet
from esrgan.checkpoint import CheckpointError, load_checkpoint_file, save_network
from esrgan.data.image import imwrite

pytestmark = pytest.mark.slow

ADVICE = ("weights_only=False", "weights_only` set to `False", "trusted source")


class _Boom:
    """Unpickling this runs ``open(target, 'w')``: the file appearing means code ran."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def _tiny_sd() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return MSRResNet(3, 3, num_feat=8, num_block=1, upscale=4).state_dict()


def _safetensors(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _valid_pth() -> bytes:
    buf = io.BytesIO()
    torch.save({"params": _tiny_sd()}, buf)
    return buf.getvalue()


def _valid_safetensors(tmp: Path) -> bytes:
    save_network(tmp / "v.safetensors", {"params": _tiny_sd()})
    return (tmp / "v.safetensors").read_bytes()


F32 = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}

# name -> builder(victim path) -> bytes: files the reader must refuse (CheckpointError naming the file)
BAD_CHECKPOINTS = {
    "empty.pth": lambda v: b"",
    "text.pth": lambda v: b"these are not the weights you are looking for\n",
    "half.pth": lambda v: (lambda d: d[: len(d) // 2])(_valid_pth()),
    "zip-without-pickle.pth": lambda v: _zip({"archive/version": b"3"}),
    "raw-pickle-code-p2.pth": lambda v: pickle.dumps({"params": _Boom(v)}, protocol=2),
    "raw-pickle-code-p4.pth": lambda v: pickle.dumps({"params": _Boom(v)}, protocol=4),
    "zip-pickle-code.pth": lambda v: _torch_bytes({"params": _Boom(v)}),
    "list.pth": lambda v: _torch_bytes([torch.zeros(2)]),
    "tensor.pth": lambda v: _torch_bytes(torch.zeros(2)),
    "number.pth": lambda v: _torch_bytes(3),
    "strings.pth": lambda v: _torch_bytes({"params": {"conv_first.weight": "not a tensor"}}),
    "empty-dict.pth": lambda v: _torch_bytes({}),
    "st-empty.safetensors": lambda v: b"",
    "st-length-huge.safetensors": lambda v: _safetensors({"w": F32}, b"\0" * 16, length=2**62),
    "st-length-past-end.safetensors": lambda v: _safetensors({"w": F32}, b"\0" * 16, length=10**6),
    "st-bad-json.safetensors": lambda v: struct.pack("<Q", 9) + b"{not json" + b"\0" * 16,
    "st-json-list.safetensors": lambda v: _safetensors([1, 2, 3], b""),  # type: ignore[arg-type]
    "st-offsets-past-end.safetensors": lambda v: _safetensors({"w": {**F32, "data_offsets": [0, 1 << 40]}}, b"\0" * 16),
    "st-shape-lies.safetensors": lambda v: _safetensors({"w": {**F32, "shape": [100000, 100000]}}, b"\0" * 16),
    "st-negative-shape.safetensors": lambda v: _safetensors({"w": {**F32, "shape": [-1, 4]}}, b"\0" * 16),
    "st-bad-dtype.safetensors": lambda v: _safetensors({"w": {**F32, "dtype": "Q99"}}, b"\0" * 16),
    "st-overlap.safetensors": lambda v: _safetensors({"a": F32, "b": {**F32, "data_offsets": [8, 24]}}, b"\0" * 24),
    "st-meta-lies.safetensors": lambda v: _safetensors(
        {"__metadata__": {"format": "esrgan", "param_keys": "params"}, "other.w": F32}, b"\0" * 16),
}


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def _torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("name", sorted(BAD_CHECKPOINTS))
def test_bad_checkpoint_is_one_error_naming_it(name: str, tmp_path: Path) -> None:
    victim = tmp_path / "code-ran"
    path = tmp_path / name
    path.write_bytes(BAD_CHECKPOINTS[name](str(victim)))
    with pytest.raises(CheckpointError) as err:
        sd = load_checkpoint_file(path)
        _check_tensors(sd, path)
    message = str(err.value)
    assert name in message and "\n" not in message, message
    assert not any(a in message for a in ADVICE), message
    assert not victim.exists(), "unpickling ran code"


def _check_tensors(sd: dict, path: Path) -> None:
    """What every loader does next (esrgan.loading.select_state_dict): refuse what holds no tensors."""
    from esrgan.loading import select_state_dict

    select_state_dict(sd, str(path), None)


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("kind", ["folder", "fifo", "dangling", "loop", "unreadable"])
def test_file_system_oddity_named_like_a_checkpoint(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "net.pth"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling":
        path.symlink_to(tmp_path / "gone.pth")
    elif kind == "loop":
        path.symlink_to(path)
    else:
        path.symlink_to("/proc/self/mem")
    with pytest.raises((CheckpointError, FileNotFoundError)) as err:
        load_checkpoint_file(path)
    assert "net.pth" in str(err.value) or "/proc/" in str(err.value)


# ---- property-based ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("seeds")
    return {".pth": _valid_pth(), ".safetensors": _valid_safetensors(tmp)}


@pytest.mark.hostile("refused")
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from([".pth", ".safetensors"]),
       flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 1 << 16)), junk=st.binary(max_size=64))
def test_fuzz_checkpoint_reader(tmp_path: Path, seeds: dict[str, bytes], suffix: str, flips: list[tuple[int, int]],
                                cut: int | None, junk: bytes) -> None:
    data = bytearray(seeds[suffix])
    for pos, value in flips:
        data[pos % len(data)] = value
    data = data[:cut] if cut is not None else data
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(bytes(data) + junk)
    try:
        obj = load_checkpoint_file(path)
    except CheckpointError as exc:
        assert "fuzz" in str(exc) and not any(a in str(exc) for a in ADVICE)
        return
    assert isinstance(obj, dict)


@pytest.mark.hostile("refused")
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**65), 2**65), st.text(max_size=8)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                           max_leaves=12),
       data=st.binary(max_size=64))
def test_fuzz_safetensors_header(tmp_path: Path, header: object, data: bytes) -> None:
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(_safetensors(header, data))  # type: ignore[arg-type]
    try:
        obj = load_checkpoint_file(path)
    except CheckpointError as exc:
        assert "fuzz" in str(exc)
        return
    assert isinstance(obj, dict)


# ---- the commands that load checkpoints ------------------------------------------------------------------------


@pytest.fixture
def bad_models(arena: Arena) -> dict[str, Path]:
    folder = arena.work / "models"
    folder.mkdir()
    out = {}
    for name in ("half.pth", "raw-pickle-code-p2.pth", "zip-pickle-code.pth", "st-offsets-past-end.safetensors",
                 "text.pth"):
        out[name] = folder / name
        out[name].write_bytes(BAD_CHECKPOINTS[name](str(arena.outside / "code-ran")))
    wrong = {"conv_first.weight": torch.zeros(8, 3, 3, 3), "mystery.weight": torch.zeros(5)}
    save_network(folder / "unknown-arch.pth", {"params": wrong})
    shapes = _tiny_sd()
    shapes["conv_last.weight"] = torch.zeros(3, 7, 3, 3)
    save_network(folder / "wrong-shapes.pth", {"params": shapes})
    out["unknown-arch.pth"], out["wrong-shapes.pth"] = folder / "unknown-arch.pth", folder / "wrong-shapes.pth"
    arena.input(folder)
    return out


def _image(arena: Arena) -> str:
    imwrite(arena.work / "in.png", rgb(16, 16))
    arena.input("in.png")
    return "in.png"


COMMANDS = {
    "upscale": lambda a, m: ["upscale", _image(a), "-o", "out", "--model", m],
    "export": lambda a, m: ["export", "--model", m, "-o", "net.onnx"],
    "test": lambda a, m: ["test", "--hr", _hr(a), "--model", m, "--scale", "4", "--name", "t", "-q"],
    "interp": lambda a, m: ["interp", "--psnr", m, "--gan", m, "--alpha", "0.5", "-o", "mix.pth"],
}


def _hr(arena: Arena) -> str:
    imwrite(arena.work / "hr" / "a.png", rgb(64, 64))
    arena.input("hr")
    return "hr"


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("model", ["half.pth", "raw-pickle-code-p2.pth", "zip-pickle-code.pth",
                                   "st-offsets-past-end.safetensors", "unknown-arch.pth", "wrong-shapes.pth"])
def test_command_with_a_bad_checkpoint(arena: Arena, bad_models: dict[str, Path], command: str, model: str) -> None:
    result = call(arena, *COMMANDS[command](arena, f"models/{model}"))
    assert result.code != 0 and "Traceback" not in result.err, result._show()
    assert_names(result, model)
    assert not any(a in result.err for a in ADVICE), result._show()
    assert not (arena.outside / "code-ran").exists()
    for produced in ("out", "net.onnx", "mix.pth", "experiments/t/results.json"):
        p = arena.work / produced
        assert not p.exists() or (p.is_dir() and not any(p.iterdir())), f"{produced} written"


@pytest.fixture
def nan_model(arena: Arena) -> str:
    sd = _tiny_sd()
    sd["conv_first.weight"][0, 0, 0, 0] = float("nan")
    save_network(arena.work / "nan.pth", {"params": sd})
    arena.input("nan.pth")
    return "nan.pth"


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("fmt", ["onnx", "pt"])
def test_export_refuses_nan_weights(arena: Arena, nan_model: str, fmt: str) -> None:
    """The probe: NaN weights exported with exit 0 and 'max abs difference 0.00e+00'."""
    result = call(arena, "export", "--model", nan_model, "-o", f"net.{fmt}")
    result.assert_refused("nan.pth", "NaN or infinite", "conv_first.weight")
    assert not (arena.work / f"net.{fmt}").exists()


@pytest.mark.hostile("refused")
def test_upscale_refuses_nan_weights(arena: Arena, nan_model: str) -> None:
    result = call(arena, "upscale", _image(arena), "-o", "out", "--model", nan_model)
    assert result.code != 0 and "Traceback" not in result.err, result._show()
    assert_names(result, "nan.pth")
    assert not (arena.work / "out").exists() or not any((arena.work / "out").iterdir())


@pytest.mark.hostile("refused")
def test_raw_pickle_in_a_fresh_process_runs_nothing_and_gives_no_advice(arena: Arena) -> None:
    """The probe: a raw (non-zip) pickle still printed torch's advice to re-run with weights_only=False."""
    (arena.work / "evil.pth").write_bytes(pickle.dumps({"params": _Boom(str(arena.outside / "code-ran"))}, protocol=2))
    arena.input("evil.pth")
    result = arena.run("upscale", _image(arena), "-o", "out", "--model", "evil.pth", timeout=90)
    assert result.code != 0 and "Traceback" not in result.err, result._show()
    assert_names(result, "evil.pth", "refused to load")
    assert not any(a in result.err + result.out for a in ADVICE), result._show()


@pytest.mark.hostile("correct")
def test_checkpoint_with_wrapper_prefixes_and_extra_keys_loads(tmp_path: Path) -> None:
    """Keys saved through DataParallel and torch.compile (``module._orig_mod.``) load as the plain network."""
    from esrgan import load_model

    sd = {f"module._orig_mod.{k}": v for k, v in _tiny_sd().items()}
    torch.save({"params_ema": sd, "iter": 7, "optimizers": []}, tmp_path / "wrapped.pth")
    net = load_model(tmp_path / "wrapped.pth")
    x = torch.from_numpy(rgb(8, 8).transpose(2, 0, 1)[None].astype(np.float32) / 255)
    ref = MSRResNet(3, 3, num_feat=8, num_block=1, upscale=4)
    ref.load_state_dict(_tiny_sd())
    torch.testing.assert_close(net(x), ref.eval()(x))
