"""Does bf16 autocast learn as fp32 does? Learning curves of the PSNR stage (and a short GAN stage), same seeds.

BasicSR's ``train_RRDBNet_PSNR_x4.yml`` scaled down to run on a small CPU in minutes: L1 loss, Adam lr 2e-4
(betas 0.9 / 0.99), cosine annealing to 1e-7 over the run, x4 RRDBNet (smaller: ``--feat``, ``--blocks``),
random 48x48 HR patches (flips, rotations) of photographs (scikit-image's), their MATLAB-bicubic x4 LR.
Validation: PSNR-Y (crop 4) of centre crops of Set5 (/work/shared/data/Set5/HR), which training never sees,
every ``--val-every`` iterations; the networks are evaluated in fp32, so the curves compare what was learned.
The GAN stage continues each PSNR run for ``--gan-iters`` iterations: L1 + 0.1 x a vanilla GAN loss against
a small U-Net discriminator with spectral norm (Real-ESRGAN's), G and D both under the precision compared.

Where bf16 is emulated (no AVX512-BF16 / AMX-BF16, e.g. AVX2) PyTorch runs bf16 convolutions in ATen's
fallback (im2col + gemm), 5-15x slower than fp32, and its backward sums partial results in bf16: not the
numerics of a native-bf16 CPU, whose oneDNN kernels accumulate in fp32 and round each result once. There the
bf16 arm (``--bf16 auto``) runs *native-bf16 numerics simulated*: every convolution and linear layer takes its
operands rounded to bf16, computes in fp32 and rounds its output (forward) and its gradients (backward) to
bf16 once, as autocast + oneDNN do; everything between them (activations, residual sums, concatenations)
runs on the bf16 tensors as under autocast. The script checks the simulation against fp64 and against this
CPU's own autocast before it starts. On a native-bf16 CPU ``--bf16 auto`` uses ``torch.autocast`` itself.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_amp_curves.py            # ~10 min on 2 AVX2 cores
    PYTHONPATH=. .venv/bin/python benchmarks/bench_amp_curves.py --quick    # smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from esrgan.archs import RRDBNet
from esrgan.archs.discriminators import UNetDiscriminatorSN
from esrgan.data.image import imread
from esrgan.imageops.imresize import imresize_torch
from esrgan.metrics.psnr_ssim_torch import psnr_torch
from esrgan.utils.hardware import cpu_native_bf16, cpu_summary

SET5 = Path("/work/shared/data/Set5/HR")
SCALE, GT = 4, 48


# ---- native-bf16 numerics, simulated ------------------------------------------------------------------------
def _bf16(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.to(torch.bfloat16).float()


class _ConvBF16(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, padding, dilation, groups):
        xr, wr = _bf16(x), _bf16(w)
        ctx.save_for_backward(xr, wr)
        ctx.conf = (stride, padding, dilation, groups, b is not None, x.dtype, w.dtype, None if b is None else b.dtype)
        return F.conv2d(xr, wr, _bf16(b), stride, padding, dilation, groups).to(torch.bfloat16)

    @staticmethod
    def backward(ctx, g):
        xr, wr = ctx.saved_tensors
        stride, padding, dilation, groups, has_b, xd, wd, bd = ctx.conf
        pair = torch.nn.modules.utils._pair
        gx, gw, gb = torch.ops.aten.convolution_backward(
            g.float(), xr, wr, [wr.shape[0]] if has_b else None, pair(stride), pair(padding), pair(dilation),
            False, [0, 0], groups, [ctx.needs_input_grad[0], ctx.needs_input_grad[1], has_b],
        )
        def out(t, dt):
            return None if t is None else t.to(torch.bfloat16).to(dt)
        return out(gx, xd), out(gw, wd), out(gb, bd) if has_b else None, None, None, None, None


class _LinearBF16(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        xr, wr = _bf16(x), _bf16(w)
        ctx.save_for_backward(xr, wr)
        ctx.conf = (b is not None, x.dtype, w.dtype, None if b is None else b.dtype)
        return F.linear(xr, wr, _bf16(b)).to(torch.bfloat16)

    @staticmethod
    def backward(ctx, g):
        xr, wr = ctx.saved_tensors
        has_b, xd, wd, bd = ctx.conf
        g = g.float()
        gx, gw = g @ wr, g.reshape(-1, g.shape[-1]).t() @ xr.reshape(-1, xr.shape[-1])
        gb = g.reshape(-1, g.shape[-1]).sum(0) if has_b else None
        return gx.to(torch.bfloat16).to(xd), gw.to(torch.bfloat16).to(wd), None if gb is None else gb.to(
            torch.bfloat16).to(bd)


class NativeBF16Numerics(TorchFunctionMode):
    """conv2d / linear as autocast + oneDNN compute them on a native-bf16 CPU (see the module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (F.conv2d, torch.conv2d):
            x, w, b, *rest = (*args, *[None] * (7 - len(args)))
            b = kwargs.get("bias", b)
            stride, padding, dilation, groups = (
                kwargs.get("stride", rest[0] or 1), kwargs.get("padding", rest[1] or 0),
                kwargs.get("dilation", rest[2] or 1), kwargs.get("groups", rest[3] or 1),
            )
            return _ConvBF16.apply(x, w, b, stride, padding, dilation, groups)
        if func in (F.linear, torch._C._nn.linear):
            x, w, b = (*args, *[None] * (3 - len(args)))
            return _LinearBF16.apply(x, w, kwargs.get("bias", b))
        return func(*args, **kwargs)


def check_simulation() -> str:
    """One 3x3 convolution, forward and backward: the simulation against fp64 (correctly rounded?) and
    against this CPU's autocast (the same forward?)."""
    torch.manual_seed(0)
    x, w = torch.randn(2, 32, 24, 24), torch.randn(32, 32, 3, 3) * 0.05
    g = torch.randn(2, 32, 24, 24).to(torch.bfloat16)

    def run(ctx: contextlib.AbstractContextManager):
        xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
        with ctx:
            y = F.conv2d(xg, wg, padding=1)
        y.backward(g.to(y.dtype))
        return y.detach().float(), xg.grad, wg.grad

    xr, wr = _bf16(x).double().requires_grad_(), _bf16(w).double().requires_grad_()
    y64 = F.conv2d(xr, wr, padding=1)
    y64.backward(g.double())
    ref = [t.to(torch.bfloat16).float() for t in (y64.detach(), xr.grad, wr.grad)]
    sim = run(NativeBF16Numerics())
    here = run(torch.autocast("cpu", dtype=torch.bfloat16))

    def rounded(ts):
        return "/".join(f"{(a == r).float().mean().item() * 100:.1f}" for a, r in zip(ts, ref, strict=True))

    return (
        f"correctly rounded (% of y / dx / dw equal to fp64 rounded once to bf16): simulation {rounded(sim)}, "
        f"this CPU's autocast {rounded(here)}; forward simulation == this CPU's autocast: "
        f"{(sim[0] == here[0]).float().mean().item() * 100:.2f}%"
    )


# ---- data -----------------------------------------------------------------------------------------------------
def _to_tensor(img: np.ndarray) -> torch.Tensor:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0


def training_images() -> list[torch.Tensor]:
    from skimage import data

    names = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
    images = []
    for name in names:
        try:
            images.append(_to_tensor(getattr(data, name)()))
        except Exception:  # an image this scikit-image cannot load offline
            continue
    if len(images) < 3:
        raise SystemExit("bench_amp_curves: fewer than 3 scikit-image photographs load here")
    return images


def validation_set(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    hrs = []
    for p in sorted(SET5.glob("*.png")):
        img = _to_tensor(imread(p))
        h, w = img.shape[1:]
        top, left = (h - size) // 2, (w - size) // 2
        hrs.append(img[:, top : top + size, left : left + size])
    if not hrs:
        raise SystemExit(f"bench_amp_curves: no Set5 images in {SET5}")
    hr = torch.stack(hrs)
    return imresize_torch(hr, 1 / SCALE).clamp(0, 1), hr


def batch(images: list[torch.Tensor], n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    gts = []
    for _ in range(n):
        img = images[int(torch.randint(len(images), (1,), generator=gen))]
        top = int(torch.randint(img.shape[1] - GT + 1, (1,), generator=gen))
        left = int(torch.randint(img.shape[2] - GT + 1, (1,), generator=gen))
        p = img[:, top : top + GT, left : left + GT]
        if torch.rand((), generator=gen) < 0.5:
            p = p.flip(2)
        p = torch.rot90(p, int(torch.randint(4, (1,), generator=gen)), (1, 2))
        gts.append(p)
    gt = torch.stack(gts)
    return imresize_torch(gt, 1 / SCALE).clamp(0, 1), gt


# ---- training -------------------------------------------------------------------------------------------------
def precision_context(mode: str, bf16_kind: str) -> contextlib.AbstractContextManager:
    if mode == "fp32":
        return contextlib.nullcontext()
    if bf16_kind == "autocast":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return NativeBF16Numerics()


@torch.no_grad()
def val_psnr(net: torch.nn.Module, val: tuple[torch.Tensor, torch.Tensor]) -> float:
    net.eval()
    sr = net(val[0]).clamp(0, 1)
    net.train()
    sr = torch.round(sr * 255) / 255
    return float(psnr_torch(sr, val[1], crop_border=SCALE, y_channel=True).mean())


def train_psnr(args, images, val, mode: str, seed: int, bf16_kind: str):
    torch.manual_seed(seed)
    net = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=args.feat, num_block=args.blocks, num_grow_ch=args.grow,
                  scale=SCALE)
    opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.iters, eta_min=1e-7)
    gen = torch.Generator().manual_seed(seed)
    curve, losses, t0 = [(0, val_psnr(net, val))], [], time.perf_counter()
    for it in range(1, args.iters + 1):
        lq, gt = batch(images, args.batch, gen)
        with precision_context(mode, bf16_kind):
            sr = net(lq)
        loss = F.l1_loss(sr.float(), gt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if it % args.val_every == 0 or it == args.iters:
            curve.append((it, val_psnr(net, val)))
    return net, curve, losses, time.perf_counter() - t0


def train_gan(args, images, val, net_g, mode: str, seed: int, bf16_kind: str):
    torch.manual_seed(seed + 1000)
    net_d = UNetDiscriminatorSN(3, num_feat=args.d_feat)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=1e-4, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=1e-4, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(seed + 1000)
    l_g, l_d = [], []
    bce = F.binary_cross_entropy_with_logits
    for _ in range(args.gan_iters):
        lq, gt = batch(images, args.batch, gen)
        for p in net_d.parameters():
            p.requires_grad_(False)
        with precision_context(mode, bf16_kind):
            sr = net_g(lq)
            fake_g = net_d(sr)
        fake_g = fake_g.float()
        loss_g = F.l1_loss(sr.float(), gt) + 0.1 * bce(fake_g, torch.ones_like(fake_g))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in net_d.parameters():
            p.requires_grad_(True)
        with precision_context(mode, bf16_kind):
            real, fake = net_d(gt), net_d(sr.detach())
        real, fake = real.float(), fake.float()
        loss_d = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        l_g.append(loss_g.item())
        l_d.append(loss_d.item())
    return val_psnr(net_g, val), l_g, l_d


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} +- {sd:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--feat", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--grow", type=int, default=8)
    ap.add_argument("--gan-iters", type=int, default=60)
    ap.add_argument("--d-feat", type=int, default=16)
    ap.add_argument("--bf16", choices=("auto", "autocast", "simulated"), default="auto",
                    help="auto: torch.autocast where the CPU has native bf16, the simulation elsewhere")
    ap.add_argument("--plot", type=Path, default=Path("benchmarks/amp_curves.png"))
    ap.add_argument("--quick", action="store_true", help="a few iterations, one seed: a smoke test")
    args = ap.parse_args()
    if args.quick:
        args.iters, args.val_every, args.seeds, args.gan_iters = 6, 3, 1, 2
    bf16_kind = args.bf16 if args.bf16 != "auto" else ("autocast" if cpu_native_bf16() else "simulated")

    print(f"CPU: {cpu_summary()}")
    arm = "torch.autocast (native bf16)" if bf16_kind == "autocast" else "native-bf16 numerics, simulated"
    print(f"bf16 arm: {arm}")
    print(f"check: {check_simulation()}")
    images, val = training_images(), validation_set(96)
    print(
        f"RRDBNet x4 num_feat {args.feat}, num_block {args.blocks}, num_grow_ch {args.grow}; batch {args.batch} of "
        f"{GT}x{GT}; {args.iters} iterations (L1, Adam 2e-4, cosine); {len(images)} training photos; "
        f"val: {val[1].shape[0]} Set5 centre crops {val[1].shape[-1]}x{val[1].shape[-1]}, PSNR-Y"
    )
    bicubic = float(psnr_torch(torch.round(F.interpolate(val[0], scale_factor=SCALE, mode="bicubic",
                                                         align_corners=False).clamp(0, 1) * 255) / 255,
                               val[1], crop_border=SCALE, y_channel=True).mean())
    curves: dict[str, list[list[tuple[int, float]]]] = {"fp32": [], "bf16": []}
    gan: dict[str, list[tuple[float, float, float]]] = {"fp32": [], "bf16": []}
    secs: dict[str, float] = {"fp32": 0.0, "bf16": 0.0}
    for seed in range(args.seeds):
        for mode in ("fp32", "bf16"):
            net, curve, losses, s = train_psnr(args, images, val, mode, seed, bf16_kind)
            curves[mode].append(curve)
            secs[mode] += s
            g_psnr, l_g, l_d = train_gan(args, images, val, net, mode, seed, bf16_kind)
            tail = max(1, len(l_g) // 3)
            gan[mode].append((g_psnr, statistics.mean(l_g[-tail:]), statistics.mean(l_d[-tail:])))
            print(f"  seed {seed} {mode}: PSNR stage {curve[-1][1]:.3f} dB (last-50 L1 "
                  f"{statistics.mean(losses[-50:]):.4f}, {s:.0f} s); GAN stage {g_psnr:.3f} dB, "
                  f"l_g {gan[mode][-1][1]:.4f}, l_d {gan[mode][-1][2]:.4f}", flush=True)

    steps = [it for it, _ in curves["fp32"][0]]
    print(f"\nvalidation PSNR-Y (dB), mean +- sd over {args.seeds} seeds; bicubic {bicubic:.3f}")
    print(f"{'iter':>6} | {'fp32':>15} | {'bf16':>15} | bf16 - fp32 (per seed)")
    for i, it in enumerate(steps):
        f = [c[i][1] for c in curves["fp32"]]
        b = [c[i][1] for c in curves["bf16"]]
        diffs = " ".join(f"{y - x:+.3f}" for x, y in zip(f, b, strict=True))
        print(f"{it:>6} | {spread(f):>15} | {spread(b):>15} | {diffs}")
    f_end = [c[-1][1] for c in curves["fp32"]]
    b_end = [c[-1][1] for c in curves["bf16"]]
    seed_sd = statistics.stdev(f_end) if len(f_end) > 1 else math.nan
    gap = statistics.mean(b_end) - statistics.mean(f_end)
    print(f"end of PSNR stage: bf16 - fp32 = {gap:+.3f} dB; fp32 seed-to-seed sd {seed_sd:.3f} dB")
    for mode in ("fp32", "bf16"):
        rows = gan[mode]
        print(f"GAN stage ({args.gan_iters} it) {mode}: PSNR {spread([r[0] for r in rows])} dB, "
              f"l_g {spread([r[1] for r in rows])}, l_d {spread([r[2] for r in rows])}")
    print(f"time: fp32 {secs['fp32']:.0f} s, bf16 ({bf16_kind}) {secs['bf16']:.0f} s (not a speed figure here)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for mode, colour in (("fp32", "tab:blue"), ("bf16", "tab:orange")):
        for k, c in enumerate(curves[mode]):
            ax.plot([p[0] for p in c], [p[1] for p in c], color=colour, alpha=0.8,
                    label=f"{mode}" if k == 0 else None, linestyle="-" if mode == "fp32" else "--")
    ax.axhline(bicubic, color="grey", linewidth=0.8, label="bicubic")
    ax.set_xlabel("iteration")
    ax.set_ylabel("Set5 crops PSNR-Y (dB)")
    ax.set_title(f"RRDBNet x4 PSNR stage, fp32 vs bf16 ({bf16_kind}), {args.seeds} seeds", fontsize=9)
    ax.legend()
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
