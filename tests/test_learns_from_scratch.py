"""Every generator the trainer offers learns from scratch: a few hundred L1 iterations on crops of natural
pictures beat bicubic on held-out crops of other pictures (issue 24: SRVGGNetCompact under PyTorch's default
initialisation stayed at its nearest-neighbour start forever)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from esrgan.archs import MSRResNet, RRDBNet, SRVGGNetCompact
from esrgan.data.imresize import imresize

pytestmark = pytest.mark.slow

SCALE = 4
HR = 64  # HR crop size


def _pictures(names: list[str]) -> list[np.ndarray]:
    out = []
    for name in names:
        img = getattr(data, name)()
        out.append(np.ascontiguousarray(np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3]))
    return out


def _crops(pictures: list[np.ndarray], n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    hr = []
    for _ in range(n):
        img = pictures[rng.integers(len(pictures))]
        y, x = rng.integers(img.shape[0] - HR), rng.integers(img.shape[1] - HR)
        hr.append(img[y:y + HR, x:x + HR])
    hr_arr = np.stack(hr)
    lr_arr = np.stack([imresize(h, 1 / SCALE) for h in hr_arr])

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float().div(255).clamp(0, 1)

    return tensor(lr_arr), tensor(hr_arr)


def _psnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / F.mse_loss(out.clamp(0, 1), ref)))


# Built-in generators at small sizes (the failure was depth, so SRVGGNetCompact keeps the 16 convs that failed).
GENERATORS = {
    "SRVGGNetCompact-prelu": lambda: SRVGGNetCompact(3, 3, num_feat=16, num_conv=16, upscale=SCALE, act_type="prelu"),
    "SRVGGNetCompact-relu": lambda: SRVGGNetCompact(3, 3, num_feat=16, num_conv=16, upscale=SCALE, act_type="relu"),
    "RRDBNet": lambda: RRDBNet(3, 3, num_feat=16, num_block=2, num_grow_ch=8, scale=SCALE),
    "MSRResNet": lambda: MSRResNet(3, 3, num_feat=16, num_block=4, upscale=SCALE),
}


@pytest.fixture(scope="module")
def held_out() -> tuple[torch.Tensor, torch.Tensor]:
    return _crops(_pictures(["coffee", "chelsea", "rocket"]), 48, np.random.default_rng(1))


@pytest.fixture(scope="module")
def train_pool() -> tuple[torch.Tensor, torch.Tensor]:
    """512 training pairs, made once (MATLAB bicubic in numpy is the slow part), drawn from in batches."""
    pictures = _pictures(["astronaut", "camera", "immunohistochemistry", "hubble_deep_field", "retina"])
    return _crops(pictures, 512, np.random.default_rng(0))


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generator_beats_bicubic_after_a_few_hundred_iterations(name: str, held_out, train_pool) -> None:
    torch.manual_seed(0)
    net = GENERATORS[name]()
    pool_lq, pool_gt = train_pool
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.99))
    for _ in range(300):
        idx = torch.randint(len(pool_lq), (8,))
        lq, gt = pool_lq[idx], pool_gt[idx]
        loss = F.l1_loss(net(lq), gt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    lq, gt = held_out
    with torch.no_grad():
        psnr = _psnr(net(lq), gt)
    bicubic = _psnr(F.interpolate(lq, scale_factor=SCALE, mode="bicubic", align_corners=False), gt)
    nearest = _psnr(F.interpolate(lq, scale_factor=SCALE, mode="nearest"), gt)
    assert psnr > bicubic, f"{name}: {psnr:.2f} dB after 300 iterations, bicubic {bicubic:.2f}, nearest {nearest:.2f}"
