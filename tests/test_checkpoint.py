"""Checkpoint formats: foreign key layouts load strictly and give our outputs; safe loading; atomic saving."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from esrgan import load_model
from esrgan.archs import MSRResNet, RRDBNet, VGGStyleDiscriminator
from esrgan.checkpoint import CheckpointError, load_checkpoint_file, save_network, save_torch_atomic
from esrgan.loading import load_generator


def tiny(scale: int = 4, **kw) -> RRDBNet:
    return RRDBNet(3, 3, 8, 2, 4, scale, **kw).eval()


def to_official(sd: dict) -> dict:
    """Our keys -> the ESRGAN repo's RRDB_ESRGAN_x4.pth names (written independently of the loader)."""
    out = {}
    for k, v in sd.items():
        k = re.sub(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2.", k)
        k = k.replace("conv_body.", "trunk_conv.").replace("conv_hr.", "HRconv.")
        k = re.sub(r"^conv_up(\d)\.", r"upconv\1.", k)
        out[k] = v
    return out


def to_old(sd: dict, num_block: int, n_up: int) -> dict:
    """Our keys -> the old ESRGAN sequential names: model.0, model.1.sub.N..., model.<3i>, HR, last."""
    names = {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_block}"}
    names |= {f"conv_up{i}": f"model.{3 * i}" for i in range(1, n_up + 1)}
    names |= {"conv_hr": f"model.{3 * n_up + 2}", "conv_last": f"model.{3 * n_up + 4}"}
    out = {}
    for k, v in sd.items():
        m = re.match(r"^body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)$", k)
        if m:
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{m[4]}"] = v
        else:
            layer, param = k.rsplit(".", 1)
            out[f"{names[layer]}.{param}"] = v
    return out


def same_output(a: torch.nn.Module, b: torch.nn.Module, size: int = 8) -> None:
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_old_layout_x4_names_match_the_issue():
    keys = set(to_old(tiny(4).state_dict(), 2, 2))
    for k in ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight", "model.1.sub.2.weight", "model.3.weight",
              "model.6.weight", "model.8.weight", "model.10.weight"):
        assert k in keys


@pytest.mark.parametrize(
    ("layout", "scale"),
    [("official", 4), ("official", 8), ("old", 4), ("old", 2), ("old", 8), ("old", 1), ("official", 2)],
)
def test_foreign_layouts_load_strictly_with_same_output(tmp_path, layout, scale):
    ref = tiny(scale, unshuffle=False) if scale <= 2 else tiny(scale)
    sd = ref.state_dict()
    n_up = {1: 0, 2: 1, 4: 2, 8: 3}[scale]
    foreign = to_official(sd) if layout == "official" else to_old(sd, 2, n_up)
    assert not set(foreign) & set(sd) - {"conv_first.weight", "conv_first.bias", "conv_last.weight", "conv_last.bias"}
    path = tmp_path / f"{layout}_x{scale}.pth"
    torch.save(foreign, path)  # these repos saved bare state dicts

    arch, kwargs, mapped = load_generator(path)
    assert arch == "RRDBNet"
    assert {k: kwargs[k] for k in ("num_in_ch", "num_out_ch", "num_feat", "num_block", "num_grow_ch", "scale")} == {
        "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 2, "num_grow_ch": 4, "scale": scale
    }
    assert set(mapped) == set(sd)
    model = load_model(str(path))
    assert not model.training
    same_output(model, ref)


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_our_layout_round_trip_and_detection(tmp_path, scale, suffix):
    ref = tiny(scale)
    path = save_network(tmp_path / f"net_g{suffix}", {"params": ref.state_dict(), "params_ema": ref.state_dict()})
    assert path.is_file() and not [p for p in tmp_path.iterdir() if p != path]  # no temp files left
    arch, kwargs, _ = load_generator(path)
    # BasicSR's own argument set: x1/x2 are recognised by the pixel-unshuffle-widened conv_first
    assert (arch, kwargs) == (
        "RRDBNet",
        {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 2, "num_grow_ch": 4, "scale": scale},
    )
    same_output(load_model(path), ref)


def test_params_ema_preferred_over_params(tmp_path):
    a, b = tiny(), tiny()
    path = tmp_path / "both.pth"
    save_network(path, {"params": a.state_dict(), "params_ema": b.state_dict()})
    same_output(load_model(path), b)
    save_network(path, {"params": a.state_dict()})
    same_output(load_model(path), a)


def test_realesrgan_style_file_with_module_prefix_and_other_channels(tmp_path):
    ref = RRDBNet(1, 1, 8, 1, 4, 2).eval()  # grey x2 with unshuffle: conv_first has 4 input channels
    torch.save({"params_ema": {f"module.{k}": v for k, v in ref.state_dict().items()}}, tmp_path / "g.pth")
    _, kwargs, _ = load_generator(tmp_path / "g.pth")
    assert kwargs["num_in_ch"] == 1 and kwargs["scale"] == 2 and "unshuffle" not in kwargs
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path / "g.pth")(x), ref(x), rtol=0, atol=0)


@pytest.mark.parametrize("upscale", [2, 3, 4])
def test_msrresnet_detected(tmp_path, upscale):
    ref = MSRResNet(3, 3, 8, 3, upscale).eval()
    save_network(tmp_path / "m.safetensors", {"params": ref.state_dict()})
    arch, kwargs, _ = load_generator(tmp_path / "m.safetensors")
    assert (arch, kwargs) == ("MSRResNet", {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 3,
                                            "upscale": upscale})
    same_output(load_model(tmp_path / "m.safetensors"), ref)


def test_safetensors_layout_and_flat_foreign_safetensors(tmp_path):
    from safetensors.torch import save_file

    ref = tiny()
    sd = ref.state_dict()
    save_network(tmp_path / "ours.safetensors", {"params": sd, "params_ema": sd})  # shared tensors are fine
    loaded = load_checkpoint_file(tmp_path / "ours.safetensors")
    assert set(loaded) == {"params", "params_ema"}
    assert all(torch.equal(loaded["params_ema"][k], v) for k, v in sd.items())
    # a plain flat safetensors state dict (as chaiNNer/spandrel converters write) in the official layout
    save_file({k: v.contiguous() for k, v in to_official(sd).items()}, str(tmp_path / "flat.safetensors"))
    same_output(load_model(tmp_path / "flat.safetensors"), ref)


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"params": {"conv_first.weight": torch.zeros(1)}, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match=r"refused to load .*evil\.pth.*weights_only=True"):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file_names_the_file(tmp_path, suffix):
    path = save_network(tmp_path / f"net{suffix}", {"params": tiny().state_dict()})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        load_model(path)


def test_foreign_and_missing_files(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint at all")
    with pytest.raises(CheckpointError, match=re.escape(str(text))):
        load_checkpoint_file(text)
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        load_model(tmp_path / "nope.pth")
    disc = tmp_path / "net_d.pth"
    save_network(disc, {"params": VGGStyleDiscriminator(3, 4).state_dict()})
    with pytest.raises(CheckpointError, match=r"net_d\.pth.*not a generator state dict.*layouts: RRDBNet/basicsr"):
        load_model(disc)
    state = tmp_path / "100.state"
    save_torch_atomic(state, {"iter": 100, "optimizers": [{"state": {}}]})
    with pytest.raises(CheckpointError, match=r"100\.state: no generator weights found"):
        load_model(state)


def test_old_layout_with_pixel_shuffle_indices_is_refused_clearly(tmp_path):
    sd = to_old(tiny().state_dict(), 2, 2)
    sd["model.11.weight"] = sd.pop("model.10.weight")  # indices of an unknown upsampler variant
    sd["model.11.bias"] = sd.pop("model.10.bias")
    torch.save(sd, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=r"odd\.pth: old ESRGAN layout.*not supported"):
        load_model(tmp_path / "odd.pth")


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "net_g_5.pth"
    first = tiny().state_dict()
    save_network(path, {"params": first})
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_network(path, {"params": tiny().state_dict()})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net_g_5.pth"]


def test_save_torch_atomic_training_state_loads_safely(tmp_path):
    model = tiny()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model(torch.rand(1, 3, 8, 8)).mean().backward()
    opt.step()
    state = {"epoch": 1, "iter": 7, "optimizers": [opt.state_dict()], "schedulers": [{"milestones": {5: 1}}]}
    path = save_torch_atomic(tmp_path / "training_states" / "7.state", state)
    back = load_checkpoint_file(path)
    assert back["iter"] == 7 and back["schedulers"][0]["milestones"] == {5: 1}
    opt2 = torch.optim.Adam(tiny().parameters(), lr=1e-4)
    opt2.load_state_dict(back["optimizers"][0])
    s0 = next(iter(opt.state_dict()["state"].values()))["exp_avg"]
    s1 = next(iter(opt2.state_dict()["state"].values()))["exp_avg"]
    assert torch.equal(s0, s1)


def test_load_model_device_and_path_types(tmp_path):
    path = save_network(tmp_path / "g.pth", {"params": tiny().state_dict()})
    model = load_model(Path(path), device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    with pytest.raises(TypeError, match=r"save_network: params\['x'\] is a int"):
        save_network(tmp_path / "bad.pth", {"params": {"x": 3}})


def test_an_interrupt_inside_torch_save_stays_an_interrupt_and_leaves_nothing(tmp_path, monkeypatch):
    """A second Ctrl-C landing inside torch.save made its zip writer fail its size check on the way out, and
    that RuntimeError (a traceback, exit 1) replaced the KeyboardInterrupt (exit 130)."""
    import builtins

    from esrgan import checkpoint

    class InterruptedFile:
        def __init__(self, f):
            self.f, self.writes = f, 0

        def write(self, data):
            self.writes += 1
            if self.writes == 3:  # inside a record, as a signal handler raises between two writes
                raise KeyboardInterrupt
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(checkpoint, "open", lambda p, mode: InterruptedFile(builtins.open(p, mode)),  # noqa: SIM115
                        raising=False)
    target = tmp_path / "net_g_2.pth"
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_torch_atomic(target, {"params": {"w": torch.arange(100_000, dtype=torch.float32)}})
    assert list(tmp_path.iterdir()) == []
