"""What the Upscaler does with real trained weights (../shared/models) on real photos (Set14).

Random or tiny networks hide tiling seams and precision losses: these tests use the published
Real-ESRGAN generators on ~200-pixel crops, forced into several tiles.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from synthetic_video import make_pan_clip

from esrgan import load_model
from esrgan.data.image import imread
from esrgan.inference import Upscaler
from esrgan.inference.upscaler import TILE_PADS
from esrgan.inference.video import upscale_video
from esrgan.utils.hardware import cpu_native_bf16

ANIME_6B = "RealESRGAN_x4plus_anime_6B.pth"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@pytest.fixture(scope="module")
def anime_6b(shared_models: Path) -> torch.nn.Module:
    return load_model(shared_models / ANIME_6B)


@pytest.fixture(scope="module")
def baboon(shared_data: Path) -> np.ndarray:
    return imread(shared_data / "Set14" / "HR" / "baboon.png")[100:276, 100:276]  # fur: seams show most here


def test_default_pad_tiles_are_seamless_with_real_weights(anime_6b: torch.nn.Module, baboon: np.ndarray) -> None:
    # 40-pixel tiles on a 176-pixel photo: 2 x 2 windows of (88 + 2 pad), every core border inside the image.
    whole = Upscaler(anime_6b, device="cpu", precision="fp32").upscale(baboon)
    tiled_up = Upscaler(anime_6b, device="cpu", precision="fp32", tile=40)
    assert tiled_up.tile_pad == TILE_PADS[torch.float32] and tiled_up.forward_passes(1, *baboon.shape[:2]) == 4
    tiled = tiled_up.upscale(baboon)
    assert np.abs(tiled.astype(int) - whole).max() <= 8 and _psnr(tiled, whole) >= 50
    # the old 10-pixel pad leaves visible seams on the same crop (so the check above is not vacuous)
    old = Upscaler(anime_6b, device="cpu", precision="fp32", tile=40, tile_pad=10).upscale(baboon)
    assert np.abs(old.astype(int) - whole).max() > 30


@pytest.mark.skipif(
    not cpu_native_bf16(), reason="bf16 is the default only on CPUs with native bf16 (emulated, this takes minutes)"
)
def test_default_pad_tiles_are_seamless_in_bf16_with_real_weights(anime_6b: torch.nn.Module, shared_data: Path) -> None:
    # bf16, the default on this CPU, gets the wider bf16 pad: at the fp32 pad (48 px) this crop is 11 levels off.
    comic = imread(shared_data / "Set14" / "HR" / "comic.png")[100:324, 30:254]  # line art: bf16 errors peak here
    whole = Upscaler(anime_6b, device="cpu", precision="bf16").upscale(comic)
    tiled_up = Upscaler(anime_6b, device="cpu", precision="bf16", tile=48)
    assert tiled_up.tile_pad == TILE_PADS[torch.bfloat16] and tiled_up.forward_passes(1, *comic.shape[:2]) == 4
    tiled = tiled_up.upscale(comic)
    assert np.abs(tiled.astype(int) - whole).max() <= 8 and _psnr(tiled, whole) >= 50


def test_bf16_stays_close_to_fp32_with_real_weights(anime_6b: torch.nn.Module, baboon: np.ndarray) -> None:
    fp32 = Upscaler(anime_6b, device="cpu", precision="fp32").upscale(baboon[:96, :96])
    bf16 = Upscaler(anime_6b, device="cpu", precision="bf16").upscale(baboon[:96, :96])
    assert 45 <= _psnr(bf16, fp32) < float("inf")


def test_default_pad_tiles_are_seamless_with_the_compact_model(shared_models: Path, baboon: np.ndarray) -> None:
    # SRVGGNetCompact (16 convs): receptive radius 18 input pixels, inside the default pad: exact up to rounding
    net = load_model(shared_models / "realesr-animevideov3_x4.pth")
    whole = Upscaler(net, device="cpu", precision="fp32").upscale(baboon)
    tiled = Upscaler(net, device="cpu", precision="fp32", tile=40).upscale(baboon)
    assert np.abs(tiled.astype(int) - whole).max() <= 1 and _psnr(tiled, whole) >= 60
    old = Upscaler(net, device="cpu", precision="fp32", tile=40, tile_pad=10).upscale(baboon)
    assert np.abs(old.astype(int) - whole).max() >= 2  # 10 px of context is too little even here (3 levels)


def test_video_with_real_weights_matches_the_per_frame_upscaler(
    shared_models: Path, shared_data: Path, tmp_path: Path
) -> None:
    # What users see in a video (black, shuffled or blocky frames) only shows with a trained network on real texture.
    net = load_model(shared_models / "realesr-animevideov3_x4.pth")
    photo = imread(shared_data / "Set14" / "HR" / "baboon.png")
    clip = make_pan_clip(tmp_path / "clip.mp4", photo, frames=4, width=96, height=64)
    up = Upscaler(net, device="cpu")  # precision auto, tile 0: what esrgan video runs by default
    stats = upscale_video(up, clip, tmp_path / "out.mp4", show_progress=False)
    frames_in, frames_out = _decode(clip), _decode(tmp_path / "out.mp4")
    assert stats.frames == len(frames_in) == len(frames_out) == 4
    expected = [up.upscale(f) for f in frames_in]
    for i, got in enumerate(frames_out):
        assert got.shape == (256, 384, 3)
        # the same frame through the Upscaler, up to the encoder's loss (libx264 CRF 18)
        assert _psnr(got, expected[i]) >= 28  # 32.3-32.6 dB measured: fur is hard for the encoder
        # and clearly not a neighbour (frames in order, none repeated): the pan moves 32 output pixels a frame
        others = [_psnr(got, e) for j, e in enumerate(expected) if j != i]
        assert max(others) < _psnr(got, expected[i]) - 8


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
