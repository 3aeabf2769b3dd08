"""The smallest configurations of spandrel's networks that spandrel still reads back (x2, for the tests).

Widths and depths are as small as the constructors allow; the arguments spandrel cannot read from the
weights keep the values it assumes (``category_size`` of ATD, ``window_size`` of CRAFT, GRL's windows,
``recursive`` of SeemoRe), so every checkpoint round-trips. ``TINY_GT_SIZE``: the GT crop (LR = half)
where the default 32 is too small for the network.
"""

from __future__ import annotations

from typing import Any

TINY_SPANDREL: dict[str, dict[str, Any]] = {
    "ATD": {"img_size": 16, "embed_dim": 12, "depths": [2], "num_heads": [2], "window_size": 4, "num_tokens": 8,
            "convffn_kernel_size": 3, "mlp_ratio": 1.0, "upsampler": "pixelshuffledirect"},
    "CRAFT": {"embed_dim": 12, "depths": [1], "num_heads": [2], "split_size_0": 2, "split_size_1": 8},
    "DAT": {"img_size": 16, "embed_dim": 16, "split_size": [2, 4], "depth": [2], "num_heads": [2],
            "expansion_factor": 2.0, "upsampler": "pixelshuffledirect"},
    "DCTLSA": {"nf": 10, "num_head": 5},
    "DITN": {"dim": 12, "ITL_blocks": 1, "SAL_blocks": 1, "UFONE_blocks": 1},
    "DRCT": {"img_size": 16, "embed_dim": 12, "depths": [1], "num_heads": [2], "mlp_ratio": 1.0,
             "upsampler": "pixelshuffle", "gc": 8},
    "FDAT": {"embed_dim": 16, "num_groups": 1, "depth_per_group": 1, "num_heads": 2, "window_size": 4, "mid_dim": 8},
    "GRL": {"img_size": 64, "embed_dim": 12, "upsampler": "pixelshuffledirect", "depths": [1], "num_heads_window": [2],
            "num_heads_stripe": [2], "window_size": 32, "stripe_size": [64, 64], "mlp_ratio": 1.0,
            "stripe_shift": True, "anchor_window_down_factor": 4},
    "HAT": {"img_size": 16, "embed_dim": 12, "depths": [1], "num_heads": [2], "window_size": 4, "squeeze_factor": 4,
            "mlp_ratio": 1.0, "num_feat": 8},
    "MoESR": {"dim": 8, "n_blocks": 1, "n_block": 1, "upsample_dim": 8},
    "MoSR": {"n_block": 1, "dim": 8},
    "OmniSR": {"num_feat": 8, "block_num": 1, "window_size": 4},
    "PLKSR": {"dim": 8, "n_blocks": 1, "kernel_size": 5},
    "RealPLKSR": {"dim": 8, "n_blocks": 1, "kernel_size": 5},
    "RCAN": {"n_resgroups": 1, "n_resblocks": 1, "n_feats": 8, "reduction": 4},
    "RGT": {"img_size": 16, "embed_dim": 12, "depth": [1], "num_heads": [2], "mlp_ratio": 1.0, "split_size": [4, 4]},
    "SAFMN": {"dim": 8, "n_blocks": 1},
    "SPAN": {"num_in_ch": 3, "num_out_ch": 3, "feature_channels": 8},
    "SeemoRe": {"num_experts": 2, "num_layers": 1, "embedding_dim": 8, "global_kernel_size": 5},
    "SwiftSRGAN": {"num_channels": 8, "num_blocks": 1},
    "Swin2SR": {"img_size": 16, "embed_dim": 12, "depths": [1], "num_heads": [2], "window_size": 4, "mlp_ratio": 1.0,
                "upsampler": "pixelshuffledirect"},
    "SwinIR": {"img_size": 16, "embed_dim": 12, "depths": [1], "num_heads": [2], "window_size": 4, "mlp_ratio": 1.0,
               "upsampler": "pixelshuffledirect"},
}

TINY_GT_SIZE: dict[str, int] = {"GRL": 128}
