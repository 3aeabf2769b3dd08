"""Upscaler: tiling geometry, tiled == whole, precision, OOM fallback, threads, grey/RGBA/16-bit, outscale, passes."""

from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio
from torch import nn
from torch.nn import functional as F

from esrgan.archs import RRDBNet
from esrgan.inference import Upscaler, probe_model, resolve_precision
from esrgan.inference.tiling import Span, tile_grid, tile_spans


class TinySR(nn.Module):
    """``depth`` 3x3 convs at LR (receptive radius = depth + 1 LR pixels), pixel shuffle, nearest residual.

    Random weights but an image-like output (the nearest-upsampled input plus a small learned term),
    so PSNRs between two outputs are meaningful.
    """

    def __init__(self, depth: int = 3, feat: int = 8, scale: int = 4, in_ch: int = 3, unshuffle: int = 1) -> None:
        super().__init__()
        self.scale, self.unshuffle = scale, unshuffle
        self.first = nn.Conv2d(in_ch * unshuffle**2, feat, 3, padding=1)
        self.body = nn.Sequential(
            *[m for _ in range(depth - 1) for m in (nn.Conv2d(feat, feat, 3, padding=1), nn.ReLU())]
        )
        self.last = nn.Conv2d(feat, in_ch * (scale * unshuffle) ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        y = F.pixel_shuffle(self.last(self.body(self.first(y))), self.scale * self.unshuffle)
        return F.interpolate(x, scale_factor=self.scale, mode="nearest") + 0.1 * y


class Blur(nn.Module):
    """``depth`` fixed [1 2 1]^2/16 blurs, then nearest x2: receptive radius ``depth``, Gaussian-like weights."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (torch.outer(k, k) / 16).expand(3, 1, 3, 3).clone())
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.depth):
            x = F.conv2d(x, self.kernel.to(x.dtype), padding=1, groups=3)
        return F.interpolate(x, scale_factor=2, mode="nearest")


def _img(natural_image: np.ndarray, h: int = 64, w: int = 80) -> np.ndarray:
    return np.ascontiguousarray(natural_image[180 : 180 + h, 200 : 200 + w])


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.transpose(2, 0, 1).copy()).float().div(255)[None]


def _psnr_float(a: torch.Tensor, b: torch.Tensor) -> float:
    return peak_signal_noise_ratio(b.numpy(), a.numpy(), data_range=1.0)


# --------------------------------------------------------------------------- geometry


def test_tile_spans_hand_computed() -> None:
    # 100 px, tiles <= 32 with 8 px context: n = ceil(84 / 32) = 3 windows of ceil(84 / 3) + 16 = 44 px at
    # 0, 28, 56; cores split the 16 px overlaps in the middle (36, 64). Border cores are larger (36 > 28).
    assert tile_spans(100, 32, 8) == [Span(0, 44, 0, 36), Span(28, 72, 36, 64), Span(56, 100, 64, 100)]
    assert tile_spans(30, 32, 8) == [Span(0, 30, 0, 30)]
    # tile and pad rounded up to the multiple (4): tile 10 -> 12, pad 3 -> 4
    assert tile_spans(24, 10, 3, multiple=4) == [Span(0, 16, 0, 12), Span(8, 24, 12, 24)]
    # 512 px in tiles <= 256 with 10 px context: 2 windows of 266 (3.9% more pixels than the image)
    assert tile_spans(512, 256, 10) == [Span(0, 266, 0, 256), Span(246, 512, 256, 512)]
    with pytest.raises(ValueError, match="not a multiple of 4"):
        tile_spans(30, 8, 2, multiple=4)


@pytest.mark.parametrize("multiple", [1, 2, 4])
def test_tile_spans_properties(multiple: int) -> None:
    for size, tile, pad in itertools.product(range(multiple, 130, 3 * multiple), range(1, 70, 5), range(0, 20, 3)):
        spans = tile_spans(size, tile, pad, multiple)
        pad_m, tile_m = -(-pad // multiple) * multiple, -(-tile // multiple) * multiple
        assert len({s.win_end - s.win_start for s in spans}) == 1  # one window size -> tiles stack into a batch
        assert spans[0].core_start == 0 and spans[-1].core_end == size
        for a, b in itertools.pairwise(spans):
            assert a.core_end == b.core_start  # cores cover the image exactly once
        for s in spans:
            assert 0 <= s.win_start <= s.core_start < s.core_end <= s.win_end <= size
            assert all(v % multiple == 0 for v in s)
            # at least `pad` pixels of context on every side that is not the image border
            assert s.core_start - s.win_start >= pad_m or s.win_start == 0
            assert s.win_end - s.core_end >= pad_m or s.win_end == size
            assert len(spans) == 1 or s.win_end - s.win_start <= tile_m + 2 * pad_m  # memory bounded by the tile
    assert len(tile_grid(40, 72, 16, 4)) == len(tile_spans(40, 16, 4)) * len(tile_spans(72, 16, 4)) == 2 * 4


# --------------------------------------------------------------------------- tiled vs whole


@pytest.mark.parametrize("unshuffle", [1, 2, 4])
def test_tiled_equals_whole_when_context_covers_receptive_field(natural_image: np.ndarray, unshuffle: int) -> None:
    # receptive radius = 3 LR convs (x unshuffle input pixels) <= tile_pad: tiling must be exact up to float rounding
    net = TinySR(depth=3, scale=4 // unshuffle if unshuffle < 4 else 1, unshuffle=unshuffle)
    x = _t(_img(natural_image, 52, 76))  # not multiples of 8: size padding to the unshuffle factor is exercised
    whole = Upscaler(net, device="cpu", precision="fp32").upscale_tensor(x)
    tiled = Upscaler(net, device="cpu", precision="fp32", tile=16, tile_pad=3 * unshuffle, batch_tiles=3)
    tiled = tiled.upscale_tensor(x)
    assert whole.shape == (1, 3, 52 * net.scale, 76 * net.scale)
    torch.testing.assert_close(tiled, whole, atol=2e-6, rtol=0)


def test_tiled_vs_whole_psnr_bound_is_meaningful(natural_image: np.ndarray) -> None:
    # Blur(12) reaches 12 px but its weights decay like a Gaussian (sigma ~2.4 px): with tile_pad 10 < 12 the
    # tiled output differs from the whole one (so the check is not vacuous) yet stays far above 45 dB; without
    # context (tile_pad 0) the seams are visible and the 45 dB bound catches them.
    net = Blur(12)
    x = _t(_img(natural_image, 96, 96))
    whole = Upscaler(net, device="cpu", precision="fp32").upscale_tensor(x)
    padded = Upscaler(net, device="cpu", precision="fp32", tile=32, tile_pad=10).upscale_tensor(x)
    seams = Upscaler(net, device="cpu", precision="fp32", tile=32, tile_pad=0).upscale_tensor(x)
    assert (padded - whole).abs().max() > 1e-6
    assert _psnr_float(padded, whole) >= 45
    assert _psnr_float(seams, whole) < 45


def test_tiled_vs_whole_rrdbnet_natural_image(natural_image: np.ndarray) -> None:
    # A random RRDBNet (default PyTorch init; ESRGAN's 0.1-scaled init gives an all-zero clamped output)
    # plus a nearest residual so the output is image-like. Its receptive field (~20 LR px for one block)
    # exceeds tile_pad 10, but its far weights are tiny: a weak test on its own, hence the Blur test above.
    rrdb = RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
    for m in rrdb.modules():
        if isinstance(m, nn.Conv2d):
            m.reset_parameters()

    class WithResidual(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, scale_factor=4, mode="nearest") + rrdb(x)

    img = _img(natural_image, 64, 64)
    whole = Upscaler(WithResidual(), device="cpu", precision="fp32").upscale_tensor(_t(img))
    tiled = Upscaler(WithResidual(), device="cpu", precision="fp32", tile=24, tile_pad=10).upscale_tensor(_t(img))
    assert whole.std() > 0.1 and (tiled - whole).abs().max() > 0
    assert _psnr_float(tiled, whole) >= 45
    tiled_img = Upscaler(WithResidual(), device="cpu", precision="fp32", tile=24, tile_pad=10).upscale(img)
    assert tiled_img.shape == (256, 256, 3)
    whole_img = whole[0].permute(1, 2, 0).mul(255).round().numpy()
    assert np.abs(tiled_img - whole_img).max() <= 1


def test_batch_tiles_and_channels_last_do_not_change_results(natural_image: np.ndarray) -> None:
    net = TinySR(depth=2)
    x = _t(_img(natural_image, 40, 56))
    kw = dict(device="cpu", precision="fp32", tile=16, tile_pad=4)
    ref = Upscaler(net, **kw, batch_tiles=1, channels_last=False).upscale_tensor(x)
    for batch, cl in [(5, False), (64, True), (2, True)]:
        out = Upscaler(net, **kw, batch_tiles=batch, channels_last=cl).upscale_tensor(x)
        torch.testing.assert_close(out, ref, atol=2e-6, rtol=0)


def test_upscale_tensor_batch_and_clamp() -> None:
    net = TinySR(depth=1)
    x = torch.rand(3, 3, 20, 24)
    up = Upscaler(net, device="cpu", precision="fp32", tile=8, tile_pad=2)
    out = up.upscale_tensor(x)
    with torch.inference_mode():
        ref = net(x).clamp(0, 1)
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=0)
    assert out.min() >= 0 and out.max() <= 1 and ref.max() == 1  # the raw output overshoots; ours is clamped
    with pytest.raises(ValueError, match="3-channel input"):
        up.upscale_tensor(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="float NCHW"):
        up.upscale_tensor(torch.zeros(3, 8, 8))


def test_model_is_copied_not_modified() -> None:
    net = TinySR(depth=1).train()
    Upscaler(net, device="cpu", precision="bf16")
    assert net.training and next(net.parameters()).dtype == torch.float32 and next(net.parameters()).requires_grad


# --------------------------------------------------------------------------- out of memory


class OOMAbove(nn.Module):
    """Raises torch.OutOfMemoryError for inputs with more than ``limit`` pixels, like a GPU would."""

    def __init__(self, net: nn.Module, limit: int) -> None:
        super().__init__()
        self.net, self.limit = net, limit
        self.sizes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(x.shape))
        if x.shape[0] * x.shape[-2] * x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.net(x)


def test_out_of_memory_halves_tile_and_retries(natural_image: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    base = TinySR(depth=2)
    x = _t(_img(natural_image, 64, 64))
    up = Upscaler(OOMAbove(base, limit=48 * 48), device="cpu", precision="fp32", tile=0, tile_pad=4, batch_tiles=1)
    with caplog.at_level(logging.WARNING, logger="esrgan.inference"):
        out = up.upscale_tensor(x)
    # whole 64x64 fails -> tiles <= 32 (2 x 2 windows of ceil(56 / 2) + 8 = 36 px: 1296 px) fit
    assert "retrying this image with 32-pixel tiles" in caplog.text
    assert {s[-2:] for s in up.model.sizes[-4:]} == {(36, 36)}
    ref = Upscaler(base, device="cpu", precision="fp32", tile=32, tile_pad=4).upscale_tensor(x)
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=0)

    # probes (<= 24 px) fit, the 32x32 memory probe fails: sized from the 16x16 output then
    hopeless = Upscaler(OOMAbove(base, limit=30 * 30), device="cpu", precision="fp32", tile=0, tile_pad=10)
    with pytest.raises(RuntimeError, match="out of memory on cpu even with 16-pixel tiles"):
        hopeless.upscale_tensor(x)


def test_network_input_is_bounded_by_the_tile(natural_image: np.ndarray) -> None:
    # what bounds memory: the network never sees more than batch_tiles windows of tile + 2 * tile_pad pixels
    recorder = OOMAbove(TinySR(depth=1), limit=10**9)
    up = Upscaler(recorder, device="cpu", precision="fp32", tile=16, tile_pad=4, batch_tiles=3)
    recorder_in_upscaler = up.model
    recorder_in_upscaler.sizes.clear()
    out = up.upscale(np.ascontiguousarray(natural_image[:100, :130]))
    assert out.shape == (400, 520, 3)
    sizes = recorder_in_upscaler.sizes
    assert len(sizes) == 6 * 8 // 3  # 6 x 8 windows (ceil((100 - 8) / 16), ceil((130 - 8) / 16)), 3 per pass
    assert all(n <= 3 and h <= 24 and w <= 24 for n, _, h, w in sizes)


def test_other_runtime_errors_are_not_retried() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[-1] > 16:
                raise RuntimeError("something else")
            return F.interpolate(x, scale_factor=2)

    with pytest.raises(RuntimeError, match="something else"):
        Upscaler(Broken(), device="cpu", precision="fp32").upscale_tensor(torch.rand(1, 3, 32, 32))


# --------------------------------------------------------------------------- precision and device


def _mock_cpu(monkeypatch: pytest.MonkeyPatch, **features: bool) -> None:
    """Pretend the CPU has (or lacks) the given features, as torch._C._cpu._get_cpu_capability() reports them."""
    from esrgan.inference import upscaler
    from esrgan.utils import hardware

    monkeypatch.setattr(hardware, "cpu_features", lambda: {"avx2": True, **features})
    monkeypatch.setattr(upscaler, "_LOGGED", set())  # the choice is logged once per process: once per test here


def test_resolve_precision_auto_from_cpu_capabilities(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    # a CPU with native bf16 matrix instructions (AMX or AVX512-BF16): bf16, logged once
    for native in ({"amx_bf16": True, "amx_tile": True}, {"avx512_bf16": True}):
        _mock_cpu(monkeypatch, **native)
        with caplog.at_level(logging.INFO, logger="esrgan.inference"):
            caplog.clear()
            assert resolve_precision("auto", cpu) == torch.bfloat16
            assert resolve_precision("auto", cpu) == torch.bfloat16
        assert caplog.text.count("precision auto: bf16") == 1 and next(iter(native)) in caplog.text
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="esrgan.inference"):
            assert resolve_precision("bf16", cpu) == torch.bfloat16
        assert caplog.text == ""  # native: no warning
    # AVX2 / AVX512 without the bf16 extensions (or with the flags reported False): fp32
    for features in ({}, {"avx512_f": True, "avx512_bf16": False, "amx_bf16": False}):
        _mock_cpu(monkeypatch, **features)
        with caplog.at_level(logging.INFO, logger="esrgan.inference"):
            caplog.clear()
            assert resolve_precision("auto", cpu) == torch.float32
        assert caplog.text.count("precision auto: fp32") == 1
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="esrgan.inference"):
            assert resolve_precision("bf16", cpu) == torch.bfloat16  # asked for explicitly: runs, with a warning
        assert "without native bf16" in caplog.text and "slower" in caplog.text
    assert resolve_precision("auto", cuda) == torch.float16
    assert resolve_precision("fp32", cuda) == torch.float32
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="esrgan.inference"):
        assert resolve_precision("fp32", cpu) == torch.float32
    assert caplog.text == ""
    with pytest.raises(ValueError, match="auto, fp32, fp16, bf16; got 'half'"):
        resolve_precision("half", cpu)


def test_upscaler_default_precision_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    _mock_cpu(monkeypatch, amx_bf16=True)
    assert Upscaler(TinySR(depth=1), device="cpu").dtype == torch.bfloat16
    _mock_cpu(monkeypatch)
    assert Upscaler(TinySR(depth=1), device="cpu").dtype == torch.float32


def test_cpu_features_come_from_torch() -> None:
    from esrgan.utils.hardware import cpu_features, cpu_native_bf16, cpu_summary

    caps = cpu_features()
    assert isinstance(caps, dict)
    if caps:  # torch 2.14 reports the CPU's flags; native bf16 is read from them
        assert set(cpu_native_bf16()) == {f for f in ("amx_bf16", "avx512_bf16") if caps.get(f)}
    assert "native bf16:" in cpu_summary()


def test_explicit_bf16_on_cpu_runs_close_to_fp32(natural_image: np.ndarray) -> None:
    net = TinySR(depth=2)
    img = _img(natural_image, 24, 24)
    fp32 = Upscaler(net, device="cpu", precision="fp32").upscale(img)
    bf16 = Upscaler(net, device="cpu", precision="bf16")
    assert bf16.dtype == torch.bfloat16 and next(bf16.model.parameters()).dtype == torch.bfloat16
    # bf16 keeps 8 bits of mantissa: within a few levels of 255
    assert np.abs(bf16.upscale(img).astype(int) - fp32).max() <= 4
    assert peak_signal_noise_ratio(fp32, bf16.upscale(img)) > 40


def test_probe_model_rrdbnet_scales() -> None:
    cpu = torch.device("cpu")
    for scale, multiple in [(1, 4), (2, 2), (4, 1), (8, 1)]:
        info = probe_model(RRDBNet(3, 3, 8, 1, 4, scale).eval(), cpu, torch.float32)
        assert (info.scale, info.in_ch, info.out_ch, info.multiple) == (scale, 3, 3, multiple)
    info = probe_model(RRDBNet(1, 1, 8, 1, 4, 4).eval(), cpu, torch.float32)
    assert (info.scale, info.in_ch, info.out_ch) == (4, 1, 1)
    with pytest.raises(ValueError, match="image-to-image"):
        probe_model(nn.Linear(3, 3), cpu, torch.float32)


# --------------------------------------------------------------------------- threads


def test_concurrent_calls_from_threads_match_sequential(natural_image: np.ndarray) -> None:
    up = Upscaler(TinySR(depth=2), device="cpu", precision="fp32", tile=12, tile_pad=3, batch_tiles=2)
    images = [np.ascontiguousarray(natural_image[i * 40 : i * 40 + 28 + 4 * i, 100 : 130 + 2 * i]) for i in range(6)]
    expected = [up.upscale(im) for im in images]
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(len(images))

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(3):
            results[i] = up.upscale(images[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, exp in enumerate(expected):
        np.testing.assert_array_equal(results[i], exp)


# --------------------------------------------------------------------------- numpy images: modes, depth, sizes


def test_rgb_uint8_matches_tensor_path(natural_image: np.ndarray) -> None:
    net = TinySR(depth=2)
    img = _img(natural_image, 20, 28)
    up = Upscaler(net, device="cpu", precision="fp32")
    out = up.upscale(img)
    assert out.dtype == np.uint8 and out.shape == (80, 112, 3)
    with torch.inference_mode():
        ref = net(_t(img)).clamp(0, 1).mul(255).round()[0].permute(1, 2, 0).numpy().astype(np.uint8)
    assert np.abs(out.astype(int) - ref).max() <= 1  # 1 level: rounding of values within float error of .5


def test_grey_runs_as_rgb_and_comes_back_grey(natural_image: np.ndarray) -> None:
    net = TinySR(depth=2)
    grey = cv2.cvtColor(_img(natural_image, 20, 24), cv2.COLOR_RGB2GRAY)
    up = Upscaler(net, device="cpu", precision="fp32")
    out = up.upscale(grey)
    assert out.shape == (80, 96) and out.dtype == np.uint8
    with torch.inference_mode():
        rgb = net(torch.from_numpy(grey).float().div(255).expand(1, 3, -1, -1))
    expected = (0.299 * rgb[0, 0] + 0.587 * rgb[0, 1] + 0.114 * rgb[0, 2]).clamp(0, 1).mul(255).round().numpy()
    assert np.abs(out.astype(int) - expected).max() <= 1
    hw1 = up.upscale(grey[:, :, None])
    assert hw1.shape == (80, 96, 1)
    np.testing.assert_array_equal(hw1[:, :, 0], out)


def test_grey_network_runs_each_colour_channel(natural_image: np.ndarray) -> None:
    net = TinySR(depth=2, in_ch=1)
    img = _img(natural_image, 16, 20)
    up = Upscaler(net, device="cpu", precision="fp32")
    assert up.info.in_ch == 1
    out = up.upscale(img)
    assert out.shape == (64, 80, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], up.upscale(img[:, :, c]))


@pytest.mark.parametrize("alpha_upsampler", ["model", "bicubic"])
def test_rgba_keeps_alpha(natural_image: np.ndarray, alpha_upsampler: str) -> None:
    img = _img(natural_image, 20, 24)
    yy, xx = np.mgrid[:20, :24]
    alpha = np.clip(xx * 12 + yy * 3, 0, 255).astype(np.uint8)
    rgba = np.dstack([img, alpha])
    up = Upscaler(TinySR(depth=2), device="cpu", precision="fp32", tile=12, tile_pad=3, alpha_upsampler=alpha_upsampler)
    out = up.upscale(rgba)
    assert out.shape == (80, 96, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, :3], up.upscale(img))
    if alpha_upsampler == "model":
        np.testing.assert_array_equal(out[:, :, 3], up.upscale(alpha))
    else:
        np.testing.assert_array_equal(out[:, :, 3], cv2.resize(alpha, (96, 80), interpolation=cv2.INTER_CUBIC))


def test_uint16_stays_16_bit(natural_image: np.ndarray) -> None:
    net = TinySR(depth=2)
    img16 = _img(natural_image, 16, 16).astype(np.uint16) * 257 + np.arange(16, dtype=np.uint16)[:, None, None] * 7
    up = Upscaler(net, device="cpu", precision="fp32", tile=8, tile_pad=3)
    out = up.upscale(img16)
    assert out.dtype == np.uint16 and out.shape == (64, 64, 3)
    with torch.inference_mode():
        ref = net(torch.from_numpy(img16.transpose(2, 0, 1).astype(np.float32) / 65535)[None])
    ref = ref.clamp(0, 1).mul(65535).round()[0].permute(1, 2, 0).numpy()
    assert np.abs(out.astype(np.int64) - ref).max() <= 1
    assert np.unique(out % 257).size > 200  # real 16-bit values, not 8-bit ones scaled by 257
    rgba16 = np.dstack([img16, np.full((16, 16), 40000, np.uint16)])
    out_rgba = Upscaler(net, device="cpu", precision="fp32", alpha_upsampler="bicubic").upscale(rgba16)
    assert out_rgba.dtype == np.uint16 and (out_rgba[:, :, 3] == 40000).all()


def test_outscale_resizes_with_area_or_lanczos(natural_image: np.ndarray) -> None:
    img = _img(natural_image, 21, 27)
    up = Upscaler(TinySR(depth=1), device="cpu", precision="fp32")
    full = up.upscale(img)
    np.testing.assert_array_equal(up.upscale(img, outscale=4), full)
    down = up.upscale(img, outscale=2.5)
    assert down.shape == (round(21 * 2.5), round(27 * 2.5), 3)  # 52 x 68 (round half to even: 52.5 -> 52)
    np.testing.assert_array_equal(down, cv2.resize(full, (68, 52), interpolation=cv2.INTER_AREA))
    up6 = up.upscale(img[:, :, 0], outscale=6)
    assert up6.shape == (126, 162)
    np.testing.assert_array_equal(
        up6, cv2.resize(up.upscale(img[:, :, 0]), (162, 126), interpolation=cv2.INTER_LANCZOS4)
    )


def test_passes_chain_the_network_in_float(natural_image: np.ndarray) -> None:
    net = TinySR(depth=1, scale=2)
    img = _img(natural_image, 12, 10)
    up = Upscaler(net, device="cpu", precision="fp32", tile=8, tile_pad=2)
    out = up.upscale(img, passes=2)
    assert out.shape == (48, 40, 3)
    twice = up.upscale_tensor(up.upscale_tensor(_t(img)))
    expected = twice.mul(255).round()[0].permute(1, 2, 0).numpy()
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert up.upscale(img, outscale=2, passes=2).shape == (24, 20, 3)


def test_bad_inputs_are_named() -> None:
    up = Upscaler(TinySR(depth=1), device="cpu", precision="fp32")
    with pytest.raises(ValueError, match="uint8 or uint16 image array; got float32"):
        up.upscale(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="1, 3 or 4 channels; got shape"):
        up.upscale(np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(ValueError, match="passes must be >= 1"):
        up.upscale(np.zeros((8, 8, 3), np.uint8), passes=0)
    with pytest.raises(ValueError, match="outscale must be > 0"):
        up.upscale(np.zeros((8, 8, 3), np.uint8), outscale=0)
    with pytest.raises(ValueError, match="precision must be one of"):
        Upscaler(TinySR(depth=1), device="cpu", precision="fp8")
    with pytest.raises(ValueError, match="batch_tiles must be >= 1"):
        Upscaler(TinySR(depth=1), device="cpu", precision="fp32", batch_tiles=0)


def test_progress_counts_every_forward_pass_of_the_call(natural_image: np.ndarray) -> None:
    # 64x80 RGBA in 24-pixel tiles, alpha through the network, two passes: the total is known up front
    # and every call advances it by one, ending at (total, total).
    rgba = np.concatenate([_img(natural_image), np.full((64, 80, 1), 200, np.uint8)], axis=2)
    up = Upscaler(TinySR(scale=2), tile=24, tile_pad=4, batch_tiles=2)
    calls: list[tuple[int, int]] = []
    out = up.upscale(rgba, passes=2, progress=lambda d, t: calls.append((d, t)))
    per_pass = [up.forward_passes(1, 64, 80), up.forward_passes(1, 128, 160)]
    total = 2 * sum(per_pass)  # colour and alpha
    assert per_pass[0] == -(-len(tile_grid(64, 80, 24, 4)) // 2) > 1
    assert calls == [(i, total) for i in range(1, total + 1)]
    np.testing.assert_array_equal(out, up.upscale(rgba, passes=2))


def test_progress_exception_stops_the_call(natural_image: np.ndarray) -> None:
    class Stop(Exception):
        pass

    seen: list[int] = []

    def stop_at_two(done: int, total: int) -> None:
        seen.append(done)
        if done == 2:
            raise Stop

    up = Upscaler(TinySR(), tile=16, tile_pad=2)
    with pytest.raises(Stop):
        up.upscale(_img(natural_image), progress=stop_at_two)
    assert seen == [1, 2]
    # The whole-image path reports too: one forward pass.
    calls: list[tuple[int, int]] = []
    Upscaler(TinySR()).upscale_tensor(torch.rand(1, 3, 8, 8), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 1)]


def test_progress_after_out_of_memory_restart_ends_at_the_new_total(natural_image: np.ndarray) -> None:
    # The whole 64x64 image fails, the run restarts in 32-pixel tiles: the count starts again and the
    # total becomes the tiled run's 4 passes, so the bar ends full instead of past (or short of) 100%.
    up = Upscaler(OOMAbove(TinySR(depth=2), limit=48 * 48), device="cpu", tile=0, tile_pad=4, batch_tiles=1)
    calls: list[tuple[int, int]] = []
    up.upscale_tensor(_t(_img(natural_image, 64, 64)), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


# --------------------------------------------------------------------------- non-finite outputs


class NaNInHalf(nn.Module):
    """An fp16 overflow as some models have on GPUs: Inf/NaN in fp16, fine in bf16 and fp32."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.dtypes: list[torch.dtype] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.dtypes.append(x.dtype)
        y = self.net(x)
        if x.dtype == torch.float16 and x.shape[-1] > 16:  # the probes pass; real tiles overflow
            y = y * torch.tensor(float("nan"), dtype=y.dtype)
        return y


def test_fp16_nan_output_is_redone_wider_with_one_warning(
    natural_image: np.ndarray, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = TinySR(depth=2)
    img = _img(natural_image, 40, 56)
    ref = Upscaler(net, device="cpu", precision="fp32", tile=16, tile_pad=4).upscale(img)
    for native, wider in ((True, torch.bfloat16), (False, torch.float32)):
        _mock_cpu(monkeypatch, amx_bf16=native)
        up = Upscaler(NaNInHalf(net), device="cpu", precision="fp16", tile=16, tile_pad=4)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="esrgan.inference"):
            out = up.upscale(img)
            again = up.upscale(img)
        warnings = [r for r in caplog.records if "NaN/Inf" in r.getMessage()]
        assert len(warnings) == 1 and "NaInHalf" not in warnings[0].getMessage()
        assert f"redone in {'bf16' if native else 'fp32'}" in warnings[0].getMessage()
        # every tile was redone (the fp16 copy still runs first), and the result is the wider run's
        assert up._wider[wider].dtypes.count(wider) == 2 * len(tile_grid(40, 56, 16, 4))
        assert np.abs(out.astype(int) - ref).max() <= (3 if native else 1)
        np.testing.assert_array_equal(out, again)


def test_nan_weights_are_an_error_naming_the_model(tmp_path: Path, natural_image: np.ndarray) -> None:
    from esrgan.checkpoint import save_network
    from esrgan.inference.upscaler import NonFiniteOutputError

    net = RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
    with torch.no_grad():
        net.conv_body.weight[0, 0, 1, 1] = float("nan")
    path = tmp_path / "diverged.pth"
    save_network(path, {"params": net.state_dict()})
    for precision in ("fp32", "bf16"):
        up = Upscaler(str(path), device="cpu", precision=precision)
        with pytest.raises(NonFiniteOutputError, match=r"model .*diverged\.pth produced NaN/Inf values"):
            up.upscale(_img(natural_image, 24, 24))
    with pytest.raises(NonFiniteOutputError, match=r"model RRDBNet produced NaN/Inf values \(tried fp32\)"):
        Upscaler(net, device="cpu", precision="fp32", tile=8, tile_pad=2).upscale_tensor(torch.rand(1, 3, 24, 24))


# --------------------------------------------------------------------------- automatic tiles


def test_auto_tile_whole_when_it_fits_else_largest_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    from esrgan.inference import upscaler as upscaler_module

    up = Upscaler(RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=4), device="cpu", precision="fp32")
    # the largest activation of RRDBNet x4 is num_feat channels at the output size: 8 x 16 per input pixel
    assert up.info.activation_per_pixel == pytest.approx(8 * 16)
    per_pixel = up.bytes_per_pixel()
    assert per_pixel == pytest.approx(8 * 16 * 4 * upscaler_module.PEAK_PER_ACTIVATION)
    assert up.auto_tile(100, 100, budget=100 * 100 * per_pixel) == 0
    assert up.auto_tile(100, 100, images=2, budget=100 * 100 * per_pixel) > 0
    # windows of tile + 2 pad fit the budget; tiles are multiples of 8
    tile = up.auto_tile(1000, 1000, budget=400 * 400 * per_pixel)
    assert tile == (400 - 2 * up.tile_pad) // 8 * 8
    # the budget is a share of the free memory now
    monkeypatch.setattr(upscaler_module, "free_memory", lambda device: 1000 * 1000 * per_pixel)
    assert up.auto_tile(700, 700) == 0 and up.auto_tile(800, 800) > 0
