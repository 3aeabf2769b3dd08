"""Adan: adaptive Nesterov momentum (Xie, Zhou, Li, Lin, Yan, "Adan: Adaptive Nesterov Momentum Algorithm for
Faster Optimizing Deep Models", TPAMI 2024, arXiv:2208.06677), Algorithm 1 with bias correction.

With ``g_k`` the gradient and ``d_k = g_k - g_{k-1}`` (0 at the first step), each step updates

    m_k = b1 m_{k-1} + (1 - b1) g_k                      first moment
    v_k = b2 v_{k-1} + (1 - b2) d_k                      moment of the gradient difference
    n_k = b3 n_{k-1} + (1 - b3) (g_k + b2 d_k)^2         second moment of the Nesterov gradient
    u_k = (m_k / (1 - b1^k) + b2 v_k / (1 - b2^k)) / (sqrt(n_k / (1 - b3^k)) + eps)
    p_k = (p_{k-1} - lr u_k) / (1 + lr wd)               (``no_prox``: p_{k-1} (1 - lr wd) - lr u_k)

``betas`` are written as the official code writes them, the weights of the past ((0.98, 0.92, 0.99); the paper's
beta_i are one minus these). The step count is per parameter group, in the optimizer's state dict, so a resumed
run continues exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


class Adan(torch.optim.Optimizer):
    """Adan with decoupled weight decay; state per parameter: ``exp_avg``, ``exp_avg_diff``, ``exp_avg_sq``,
    ``prev_grad``."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        no_prox: bool = False,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"Adan: lr must be > 0, got {lr}")
        if len(betas) != 3 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Adan: betas must be three numbers in [0, 1), got {list(betas)}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"Adan: eps and weight_decay must be >= 0, got eps={eps}, weight_decay={weight_decay}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "no_prox": no_prox}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2, b3 = group["betas"]
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            group["step"] = k = group.get("step", 0) + 1
            c1, c2, c3 = 1 - b1**k, 1 - b2**k, math.sqrt(1 - b3**k)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Adan does not take sparse gradients")
                grad = p.grad
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_diff"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    state["prev_grad"] = grad.clone()  # d_1 = 0
                diff = grad - state["prev_grad"]
                state["exp_avg"].mul_(b1).add_(grad, alpha=1 - b1)
                state["exp_avg_diff"].mul_(b2).add_(diff, alpha=1 - b2)
                nesterov = grad + b2 * diff
                state["exp_avg_sq"].mul_(b3).addcmul_(nesterov, nesterov, value=1 - b3)
                denom = state["exp_avg_sq"].sqrt().div_(c3).add_(eps)
                if group["no_prox"]:
                    p.mul_(1 - lr * wd)
                p.addcdiv_(state["exp_avg"], denom, value=-lr / c1)
                p.addcdiv_(state["exp_avg_diff"], denom, value=-lr * b2 / c2)
                if not group["no_prox"]:
                    p.div_(1 + lr * wd)
                state["prev_grad"].copy_(grad)
        return loss
