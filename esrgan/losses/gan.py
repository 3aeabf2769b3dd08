"""Adversarial losses: GANLoss (BasicSR semantics), relativistic-average helpers, gradient penalty.

``GANLoss(pred, target_is_real, is_disc)`` is BasicSR's: the generator's loss is scaled by
``loss_weight``, the discriminator's never is; hinge uses ``-mean(pred)`` for the generator.

The trainer does not call ``GANLoss`` directly but :func:`g_adversarial_loss` and
:func:`d_adversarial_loss`, which implement both the standard GAN and the relativistic average GAN
of ESRGAN (C = the discriminator's raw output, E = the batch mean)::

    G:  (L(C(x_r) - E[C(x_f)], fake) + L(C(x_f) - E[C(x_r)], real)) / 2    x_r side detached
    D:  (L(C(x_r) - E[C(x_f)], real) + L(C(x_f) - E[C(x_r)], fake)) / 2    the other side detached

where L is the type's discriminator-form criterion (BCE-with-logits for vanilla/ragan, so that
``sigmoid(C(x_r) - E[C(x_f)])`` is D_Ra). Using the discriminator form on both sides is what makes
the relativistic hinge loss correct too; for vanilla, lsgan and wgan the two forms coincide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

GANType = Literal["vanilla", "ragan", "lsgan", "hinge", "wgan", "wgan_softplus"]
GAN_TYPES: tuple[str, ...] = ("vanilla", "ragan", "lsgan", "hinge", "wgan", "wgan_softplus")


class GANLoss(nn.Module):
    """Adversarial criterion on raw discriminator outputs (logits).

    ``gan_type``: ``vanilla`` (BCE with logits), ``ragan`` (the same criterion; the name says the
    trainer applies it relativistically), ``lsgan`` (MSE to the labels), ``hinge``, ``wgan``
    (the critic's mean; add :func:`gradient_penalty` for WGAN-GP) and ``wgan_softplus``.
    """

    def __init__(
        self,
        gan_type: GANType,
        real_label_val: float = 1.0,
        fake_label_val: float = 0.0,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if gan_type not in GAN_TYPES:
            raise ValueError(f"GANLoss: gan_type must be one of {', '.join(GAN_TYPES)}, got {gan_type!r}")
        self.gan_type = gan_type
        self.real_label_val = float(real_label_val)
        self.fake_label_val = float(fake_label_val)
        self.loss_weight = float(loss_weight)

    def criterion(self, pred: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        """The unweighted discriminator-form loss of ``pred`` against the real or fake target."""
        if self.gan_type in ("vanilla", "ragan", "lsgan"):
            label = self.real_label_val if target_is_real else self.fake_label_val
            target = torch.full_like(pred, label)
            if self.gan_type == "lsgan":
                return F.mse_loss(pred, target)
            return F.binary_cross_entropy_with_logits(pred, target)
        if self.gan_type == "hinge":
            return F.relu(1 - pred).mean() if target_is_real else F.relu(1 + pred).mean()
        if self.gan_type == "wgan":
            return -pred.mean() if target_is_real else pred.mean()
        # wgan_softplus
        return F.softplus(-pred).mean() if target_is_real else F.softplus(pred).mean()

    def forward(self, pred: torch.Tensor, target_is_real: bool, is_disc: bool = False) -> torch.Tensor:
        if self.gan_type == "hinge" and not is_disc:
            # The hinge generator maximises the critic directly, whatever the target.
            return -pred.mean() * self.loss_weight
        loss = self.criterion(pred, target_is_real)
        return loss if is_disc else loss * self.loss_weight

    def extra_repr(self) -> str:
        return f"gan_type={self.gan_type!r}, loss_weight={self.loss_weight}"


def g_adversarial_loss(
    gan_loss: GANLoss, real_pred: torch.Tensor | None, fake_pred: torch.Tensor, relativistic: bool
) -> torch.Tensor:
    """The generator's adversarial loss (``loss_weight`` applied).

    ``fake_pred`` = D(G(lq)) with the graph to G; ``real_pred`` = D(gt), detached here (only needed,
    and required, when ``relativistic``).
    """
    if not relativistic:
        return gan_loss(fake_pred, True, is_disc=False)
    if real_pred is None:
        raise ValueError("g_adversarial_loss: relativistic GAN needs the discriminator's output on real images")
    real_pred = real_pred.detach()
    l_real = gan_loss.criterion(real_pred - fake_pred.mean(), False)
    l_fake = gan_loss.criterion(fake_pred - real_pred.mean(), True)
    return (l_real + l_fake) / 2 * gan_loss.loss_weight


def d_adversarial_terms(
    gan_loss: GANLoss, real_pred: torch.Tensor, fake_pred: torch.Tensor, relativistic: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The discriminator's real and fake loss terms (unweighted; their sum is the D loss).

    ``fake_pred`` must come from the detached fake image. In the relativistic case each term's
    opposite-side mean is detached, as BasicSR does, so each term trains D through one side only.
    """
    if not relativistic:
        return gan_loss.criterion(real_pred, True), gan_loss.criterion(fake_pred, False)
    l_real = gan_loss.criterion(real_pred - fake_pred.detach().mean(), True) / 2
    l_fake = gan_loss.criterion(fake_pred - real_pred.detach().mean(), False) / 2
    return l_real, l_fake


def d_adversarial_loss(
    gan_loss: GANLoss, real_pred: torch.Tensor, fake_pred: torch.Tensor, relativistic: bool
) -> torch.Tensor:
    """The discriminator's adversarial loss: the sum of :func:`d_adversarial_terms`."""
    l_real, l_fake = d_adversarial_terms(gan_loss, real_pred, fake_pred, relativistic)
    return l_real + l_fake


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad_x D(x)||_2 - 1)^2]`` at random interpolates of real and fake.

    The norm is over all of a sample's elements (Gulrajani et al.), not over channels per pixel as
    BasicSR's ``gradient_penalty_loss`` computes it. The graph is kept so the penalty can be trained.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    alpha = torch.rand((real.size(0),) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    interp = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = discriminator(interp)
    (grad,) = torch.autograd.grad(out, interp, grad_outputs=torch.ones_like(out), create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).square().mean()
