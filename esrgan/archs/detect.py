"""Recognise a generator state dict: its key layout, architecture and hyper-parameters.

Everything is read from the tensors' names and shapes alone (as spandrel does), then the keys are
mapped to our layout (BasicSR's, see :mod:`esrgan.archs.rrdbnet`) so the model loads with
``strict=True``. Mapping happens on load only; we always save in our layout.

RRDBNet layouts recognised (x4 shown; ``N`` = RRDB index, ``B`` = num_block):

========== ====================================== ====================================================
layout     RRDB body                              other convs
========== ====================================== ====================================================
basicsr    ``body.N.rdb1.conv1``                  conv_first, conv_body, conv_up1, conv_up2, conv_hr,
                                                  conv_last (BasicSR, Real-ESRGAN; ours)
official   ``RRDB_trunk.N.RDB1.conv1``            conv_first, trunk_conv, upconv1, upconv2, HRconv,
                                                  conv_last (ESRGAN repo's RRDB_ESRGAN_x4.pth)
old        ``model.1.sub.N.RDB1.conv1.0``         model.0 (first), model.1.sub.B (trunk), then per x2
                                                  stage [Upsample, conv, LeakyReLU] so upconv i is
                                                  model.<3i>; HRconv model.<3n+2>, last model.<3n+4>
========== ====================================== ====================================================

MSRResNet is recognised in BasicSR's layout (conv_first, body.N.conv1, upconv1, conv_hr, conv_last),
SRVGGNetCompact in BasicSR's / Real-ESRGAN's (body.0 first conv, body.1 PReLU, ..., body.<2n+2> last conv).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from esrgan.checkpoint import CheckpointError

StateDict = dict[str, torch.Tensor]


class UnknownArchitectureError(CheckpointError):
    """The state dict matches none of our architectures' layouts (spandrel may know it): it rides along."""

    def __init__(self, message: str, state_dict: Mapping[str, torch.Tensor] | None = None) -> None:
        super().__init__(message)
        self.state_dict = state_dict


def _rename(sd: StateDict, rules: list[tuple[str, str]], layout: str) -> StateDict:
    out: StateDict = {}
    for key, value in sd.items():
        for pattern, repl in rules:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[new] = value
                break
        else:
            raise CheckpointError(f"{layout} RRDBNet layout: unexpected key {key!r}")
    return out


def _official_to_ours(sd: StateDict) -> StateDict:
    return _rename(
        sd,
        [
            (r"^RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])\.(weight|bias)$", r"body.\1.rdb\2.conv\3.\4"),
            (r"^trunk_conv\.(weight|bias)$", r"conv_body.\1"),
            (r"^upconv(\d)\.(weight|bias)$", r"conv_up\1.\2"),
            (r"^HRconv\.(weight|bias)$", r"conv_hr.\1"),
            (r"^(conv_first|conv_last)\.(weight|bias)$", r"\1.\2"),
        ],
        "official ESRGAN",
    )


def _old_to_ours(sd: StateDict) -> StateDict:
    top = sorted({int(m.group(1)) for k in sd if (m := re.match(r"^model\.(\d+)\.(weight|bias)$", k))})
    if not top or top[0] != 0:
        raise CheckpointError("old ESRGAN layout: no model.0 (first conv)")
    last = top[-1]
    n_up, rem = divmod(last - 4, 3)
    expected = [0, *(3 * i for i in range(1, n_up + 1)), 3 * n_up + 2, 3 * n_up + 4]
    if rem or n_up < 0 or top != expected:
        raise CheckpointError(
            f"old ESRGAN layout: top-level convs at model.{top} do not match nearest-x2 upsampling stages "
            f"(expected model.{expected}); pixel-shuffle or 'plus' variants are not supported"
        )
    num_block = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"^model\.1\.sub\.(\d+)\.RDB", k)))
    rules = [
        (r"^model\.0\.(weight|bias)$", r"conv_first.\1"),
        (r"^model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.(weight|bias)$", r"body.\1.rdb\2.conv\3.\4"),
        (rf"^model\.1\.sub\.{num_block}\.(weight|bias)$", r"conv_body.\1"),
        *((rf"^model\.{3 * i}\.(weight|bias)$", rf"conv_up{i}.\1") for i in range(1, n_up + 1)),
        (rf"^model\.{3 * n_up + 2}\.(weight|bias)$", r"conv_hr.\1"),
        (rf"^model\.{3 * n_up + 4}\.(weight|bias)$", r"conv_last.\1"),
    ]
    return _rename(sd, rules, "old ESRGAN")


@dataclass(frozen=True)
class KeyLayout:
    """A foreign (or our) key layout: how to recognise it and how to map it to our keys."""

    name: str
    arch: str
    marker: str  # a key only this layout has
    to_ours: Callable[[StateDict], StateDict]
    # whether the layout can express pixel-unshuffle (only BasicSR's RRDBNet does)
    has_unshuffle: bool = False


LAYOUTS: tuple[KeyLayout, ...] = (
    KeyLayout("basicsr", "RRDBNet", "body.0.rdb1.conv1.weight", dict, has_unshuffle=True),
    KeyLayout("official", "RRDBNet", "RRDB_trunk.0.RDB1.conv1.weight", _official_to_ours),
    KeyLayout("old", "RRDBNet", "model.1.sub.0.RDB1.conv1.0.weight", _old_to_ours),
    KeyLayout("basicsr", "MSRResNet", "body.0.conv1.weight", dict),
    KeyLayout("basicsr", "SRVGGNetCompact", "body.0.weight", dict),
)


def find_layout(sd: Mapping[str, torch.Tensor]) -> KeyLayout:
    for layout in LAYOUTS:
        if layout.marker in sd:
            return layout
    sample = ", ".join(list(sd)[:6])
    known = "; ".join(f"{lay.arch}/{lay.name} ({lay.marker})" for lay in LAYOUTS)
    raise UnknownArchitectureError(
        f"not a generator state dict we recognise (first keys: {sample}); known layouts: {known}", dict(sd)
    )


def _conv(sd: StateDict, name: str) -> torch.Tensor:
    try:
        w = sd[f"{name}.weight"]
    except KeyError:
        raise CheckpointError(f"state dict has no {name}.weight (keys: {', '.join(list(sd)[:8])} ...)") from None
    if w.ndim != 4:
        raise CheckpointError(f"{name}.weight should be a 4-D conv weight, got shape {tuple(w.shape)}")
    return w


def rrdbnet_kwargs(sd: StateDict, has_unshuffle: bool = True) -> dict:
    """RRDBNet constructor kwargs from a state dict in our layout."""
    first = _conv(sd, "conv_first")
    num_feat, in_eff = int(first.shape[0]), int(first.shape[1])
    num_out_ch = int(_conv(sd, "conv_last").shape[0])
    num_block = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    num_grow_ch = int(_conv(sd, "body.0.rdb1.conv1").shape[0])
    num_up = len([k for k in sd if re.match(r"^conv_up\d+\.weight$", k)])
    kwargs: dict = {"num_feat": num_feat, "num_block": num_block, "num_grow_ch": num_grow_ch}
    # BasicSR x1/x2 models unshuffle the input by 4/2 then upsample x4; the widened conv_first tells.
    if has_unshuffle and num_up == 2 and in_eff == 16 * num_out_ch:
        return {"num_in_ch": num_out_ch, "num_out_ch": num_out_ch, **kwargs, "scale": 1}
    if has_unshuffle and num_up == 2 and in_eff == 4 * num_out_ch:
        return {"num_in_ch": num_out_ch, "num_out_ch": num_out_ch, **kwargs, "scale": 2}
    scale = 2**num_up
    if scale > 8:
        raise CheckpointError(f"RRDBNet with {num_up} upsampling convs (x{scale}) is not supported (at most x8)")
    out = {"num_in_ch": in_eff, "num_out_ch": num_out_ch, **kwargs, "scale": scale}
    if scale <= 2:
        out["unshuffle"] = False
    return out


def msrresnet_kwargs(sd: StateDict) -> dict:
    """MSRResNet constructor kwargs from a BasicSR-layout state dict."""
    first = _conv(sd, "conv_first")
    num_feat = int(first.shape[0])
    num_block = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    if "upconv2.weight" in sd:
        upscale = 4
    else:
        ratio = int(_conv(sd, "upconv1").shape[0]) // num_feat
        upscale = {4: 2, 9: 3}.get(ratio, 0)
        if not upscale:
            raise CheckpointError(f"MSRResNet upconv1 has {ratio}x num_feat output channels; expected 4 or 9")
    return {
        "num_in_ch": int(first.shape[1]),
        "num_out_ch": int(_conv(sd, "conv_last").shape[0]),
        "num_feat": num_feat,
        "num_block": num_block,
        "upscale": upscale,
    }


def srvgg_kwargs(sd: StateDict) -> dict:
    """SRVGGNetCompact constructor kwargs from a BasicSR-layout state dict.

    The activation is PReLU when ``body.1.weight`` exists; ReLU and LeakyReLU have no weights to tell
    them apart, so such checkpoints need ``network_g`` with their ``act_type``.
    """
    convs = sorted(int(m.group(1)) for k in sd if (m := re.match(r"^body\.(\d+)\.weight$", k)) and sd[k].ndim == 4)
    first, last = _conv(sd, "body.0"), _conv(sd, f"body.{convs[-1]}")
    if convs != list(range(0, convs[-1] + 1, 2)):
        raise CheckpointError(f"SRVGGNetCompact: convs expected at body.0, body.2, ...; found body.{convs}")
    prelu = sd.get("body.1.weight")
    if prelu is None or prelu.ndim != 1:
        raise CheckpointError(
            "SRVGGNetCompact without PReLU weights: its activation (relu or leakyrelu) cannot be read from the "
            "weights; build it with network_g: {type: SRVGGNetCompact, act_type: ...}"
        )
    num_feat, num_in_ch = int(first.shape[0]), int(first.shape[1])
    # The last conv makes num_out_ch * upscale^2 channels; the residual is the input, so out = in channels.
    upscale = round((int(last.shape[0]) / num_in_ch) ** 0.5)
    if upscale < 1 or num_in_ch * upscale * upscale != int(last.shape[0]):
        raise CheckpointError(
            f"SRVGGNetCompact: the last conv has {int(last.shape[0])} output channels, not {num_in_ch} x upscale^2"
        )
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_in_ch,
        "num_feat": num_feat,
        "num_conv": len(convs) - 2,
        "upscale": upscale,
        "act_type": "prelu",
    }


def detect_generator(sd: Mapping[str, torch.Tensor]) -> tuple[str, dict, StateDict]:
    """``(arch name, constructor kwargs, state dict in our layout)`` for a generator state dict.

    ``sd`` as ``esrgan.checkpoint.select_state_dict`` returns it (wrapper prefixes already stripped).
    """
    layout = find_layout(sd)
    ours = layout.to_ours(sd)
    if layout.arch == "RRDBNet":
        return "RRDBNet", rrdbnet_kwargs(ours, layout.has_unshuffle), ours
    if layout.arch == "SRVGGNetCompact":
        return layout.arch, srvgg_kwargs(ours), ours
    return layout.arch, msrresnet_kwargs(ours), ours
