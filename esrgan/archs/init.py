"""Weight initialisation shared by the generators."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def scaled_kaiming_init_(modules: Iterable[nn.Module], scale: float = 1.0, bias_fill: float = 0.0) -> None:
    """Kaiming-normal init multiplied by ``scale`` (BasicSR's default_init_weights).

    Residual branches start small (scale 0.1) so deep residual stacks begin near the identity.
    """
    for m in modules:
        for sub in m.modules():
            if isinstance(sub, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(sub.weight)
                sub.weight.mul_(scale)
                if sub.bias is not None:
                    sub.bias.fill_(bias_fill)


@torch.no_grad()
def residual_stack_init_(convs: list[nn.Conv2d], negative_slope: float) -> None:
    """A plain conv stack whose output is added to an enlargement of the input: Kaiming-normal (fan-in, the
    activation's negative slope) for every conv but the last, and the last one zero; the first
    ``in_channels`` channels of every hidden conv carry the input through unchanged (a centre tap of 1), so
    the last conv sees the image itself from the first step (images are >= 0: ReLU and PReLU pass them).

    Why: under PyTorch's default init each 3x3 conv shrinks the signal about threefold, so through 18 layers
    the residual and the gradient reaching the first conv (~1e-10) vanish and the network never leaves its
    nearest-neighbour start; plain Kaiming keeps the signal but starts with a residual as large as the image,
    whose first steps leave the activations dead. A zero last conv starts exactly at the enlargement with
    healthy features behind it. With ReLU the random features alone still died within ten Adam steps (the
    last hidden layer went all-negative and the network stayed at nearest); the carried image keeps a live
    path, along which the last conv learns an interpolation filter (benchmarks/README.md, "Learning from
    scratch").
    """
    *hidden, last = convs
    carried = convs[0].in_channels
    for conv in hidden:
        nn.init.kaiming_normal_(conv.weight, a=negative_slope, nonlinearity="leaky_relu")
        if conv.bias is not None:
            conv.bias.zero_()
        if conv.out_channels >= carried:
            carry_channels_(conv, carried, _centre_tap(conv))
    last.weight.zero_()
    if last.bias is not None:
        last.bias.zero_()


def _centre_tap(conv: nn.Conv2d) -> torch.Tensor:
    kernel = torch.zeros(conv.kernel_size)
    kernel[conv.kernel_size[0] // 2, conv.kernel_size[1] // 2] = 1.0
    return kernel


# A 3x3 conv after a nearest x2 enlargement with this kernel is bilinear x2 enlargement (inside the image).
BILINEAR_AFTER_NEAREST_X2 = torch.outer(torch.tensor([0.25, 0.5, 0.25]), torch.tensor([0.25, 0.5, 0.25]))


@torch.no_grad()
def carry_channels_(conv: nn.Conv2d, channels: int, kernel: torch.Tensor) -> None:
    """Output channels ``0..channels-1`` of ``conv`` become ``kernel`` applied to the same input channel
    alone (no bias): the image travels through those channels while the other ones stay as initialised."""
    conv.weight[:channels].zero_()
    if conv.bias is not None:
        conv.bias[:channels].zero_()
    for c in range(channels):
        conv.weight[c, c] = kernel


@torch.no_grad()
def carried_image_rrdbnet_init_(net: nn.Module) -> None:
    """RRDBNet (no pixel-unshuffle) starts as a bilinear enlargement of its input: ``conv_first`` copies the
    image into its first channels, ``conv_body`` starts at zero (the RRDB trunk adds nothing yet, its blocks
    keep BasicSR's init), each ``conv_upN`` turns its nearest x2 into bilinear x2 on those channels, ``conv_hr``
    passes them and ``conv_last`` outputs them; every other weight is as BasicSR initialises it, so the
    features the trunk learns join through ``conv_last`` (which reads only the image at first).

    Why: RRDBNet has no skip from the input, and from BasicSR's init (output near zero) it must first learn
    the identity: 300 Adam steps of a small RRDBNet on natural crops ended at 20.7 dB (lr 2e-4) and 22.2 dB
    (lr 1e-3) against bicubic's 28.5 (benchmarks/README.md, "Learning from scratch"). Zero padding darkens
    the outermost pixels of the start; the PSNR convention crops them, and training fixes them first.
    """
    channels = net.conv_first.in_channels
    carry_channels_(net.conv_first, channels, _centre_tap(net.conv_first))
    net.conv_body.weight.zero_()
    net.conv_body.bias.zero_()
    for i in range(1, net.num_upsample + 1):
        carry_channels_(getattr(net, f"conv_up{i}"), channels, BILINEAR_AFTER_NEAREST_X2)
    carry_channels_(net.conv_hr, channels, _centre_tap(net.conv_hr))
    net.conv_last.weight.zero_()
    net.conv_last.bias.zero_()
    for c in range(net.conv_last.out_channels):
        net.conv_last.weight[c, c % channels] = _centre_tap(net.conv_last)
