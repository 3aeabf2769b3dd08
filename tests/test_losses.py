"""Losses against values computed by hand (formulas written out here, not taken from the code)."""

from __future__ import annotations

import math

import pytest
import torch

from esrgan.losses import (
    LOSSES,
    CharbonnierLoss,
    GANLoss,
    L1Loss,
    MSELoss,
    PerceptualLoss,
    build_loss,
    d_adversarial_loss,
    d_adversarial_terms,
    g_adversarial_loss,
    gradient_penalty,
)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def bce_logits(x: float, t: float) -> float:
    """Binary cross-entropy of a logit x against target t: -(t log s(x) + (1 - t) log(1 - s(x)))."""
    s = sigmoid(x)
    return -(t * math.log(s) + (1 - t) * math.log(1 - s))


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


# ---------------------------------------------------------------------------------------------
# pixel losses
# ---------------------------------------------------------------------------------------------

PRED = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(1, 1, 2, 2)
ZERO = torch.zeros(1, 1, 2, 2)


def test_l1_mse_charbonnier_hand_values() -> None:
    assert L1Loss()(PRED, ZERO).item() == pytest.approx(1.5)
    assert L1Loss(loss_weight=0.5, reduction="sum")(PRED, ZERO).item() == pytest.approx(3.0)
    assert MSELoss()(PRED, ZERO).item() == pytest.approx((0 + 1 + 4 + 9) / 4)
    assert MSELoss(loss_weight=2.0, reduction="sum")(PRED, ZERO).item() == pytest.approx(28.0)
    # eps is added under the root: sqrt(d^2 + eps)
    expected = mean([math.sqrt(d * d + 1.0) for d in (0, 1, 2, 3)])
    assert CharbonnierLoss(eps=1.0)(PRED, ZERO).item() == pytest.approx(expected)
    # BasicSR's default eps 1e-12 makes it L1 up to 1e-6 at d = 0
    assert CharbonnierLoss()(PRED, ZERO).item() == pytest.approx(1.5, abs=1e-6)
    none = L1Loss(reduction="none")(PRED, ZERO)
    assert none.shape == PRED.shape and torch.equal(none, PRED)


def test_pixel_loss_elementwise_weight_as_basicsr() -> None:
    pred = torch.arange(8, dtype=torch.float32).view(1, 2, 2, 2)
    target = torch.zeros_like(pred)
    w1 = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 2, 2)  # one-channel map: counts once per channel
    # weighted |d|: channel 0 -> 0, 3 ; channel 1 -> 4, 7 ; total weight 2 * 2 channels = 4
    assert L1Loss()(pred, target, w1).item() == pytest.approx((0 + 3 + 4 + 7) / 4)
    assert L1Loss(reduction="sum")(pred, target, w1).item() == pytest.approx(14.0)
    w2 = torch.zeros(1, 2, 2, 2)
    w2[0, 1, 0, 0] = 2.0  # a full-channel map: normalised by its own sum
    assert MSELoss()(pred, target, w2).item() == pytest.approx(2.0 * 16 / 2.0)
    with pytest.raises(ValueError, match="does not fit"):
        L1Loss()(pred, target, torch.ones(1, 3, 2, 2))


def test_pixel_loss_errors() -> None:
    with pytest.raises(ValueError, match="reduction must be one of none, mean, sum"):
        L1Loss(reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"differ in shape"):
        L1Loss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))


# ---------------------------------------------------------------------------------------------
# GANLoss
# ---------------------------------------------------------------------------------------------

X = [1.0, -2.0, 0.5]
XT = torch.tensor(X)


@pytest.mark.parametrize("gan_type", ["vanilla", "ragan"])
def test_gan_loss_vanilla_is_bce_with_logits(gan_type: str) -> None:
    loss = GANLoss(gan_type, loss_weight=0.1)
    assert loss(XT, True, is_disc=True).item() == pytest.approx(mean([bce_logits(x, 1) for x in X]))
    assert loss(XT, False, is_disc=True).item() == pytest.approx(mean([bce_logits(x, 0) for x in X]))
    # the generator's loss is weighted, the discriminator's never
    assert loss(XT, True).item() == pytest.approx(0.1 * mean([bce_logits(x, 1) for x in X]))
    smooth = GANLoss(gan_type, real_label_val=0.9, fake_label_val=0.1)
    assert smooth(XT, True, is_disc=True).item() == pytest.approx(mean([bce_logits(x, 0.9) for x in X]))
    assert smooth(XT, False, is_disc=True).item() == pytest.approx(mean([bce_logits(x, 0.1) for x in X]))


def test_gan_loss_lsgan_hinge_wgan() -> None:
    ls = GANLoss("lsgan", loss_weight=2.0)
    assert ls(XT, True, is_disc=True).item() == pytest.approx(mean([(x - 1) ** 2 for x in X]))
    assert ls(XT, False).item() == pytest.approx(2.0 * mean([x**2 for x in X]))

    hinge = GANLoss("hinge", loss_weight=0.5)
    assert hinge(XT, True, is_disc=True).item() == pytest.approx(mean([max(0.0, 1 - x) for x in X]))
    assert hinge(XT, False, is_disc=True).item() == pytest.approx(mean([max(0.0, 1 + x) for x in X]))
    assert hinge(XT, True).item() == pytest.approx(-0.5 * mean(X))  # generator: -E[D(G(z))]

    wgan = GANLoss("wgan", loss_weight=3.0)
    assert wgan(XT, True, is_disc=True).item() == pytest.approx(-mean(X))
    assert wgan(XT, False, is_disc=True).item() == pytest.approx(mean(X))
    assert wgan(XT, True).item() == pytest.approx(-3.0 * mean(X))

    sp = GANLoss("wgan_softplus")
    assert sp(XT, True, is_disc=True).item() == pytest.approx(mean([softplus(-x) for x in X]))
    assert sp(XT, False, is_disc=True).item() == pytest.approx(mean([softplus(x) for x in X]))

    with pytest.raises(ValueError, match="gan_type must be one of vanilla, ragan, lsgan"):
        GANLoss("wgan-gp")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# relativistic average GAN (ESRGAN): values and gradients by hand
# ---------------------------------------------------------------------------------------------

R = [1.0, 2.0, -0.5]
F = [0.5, -1.0, 0.25]
W = 5e-3


def _preds() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(R, requires_grad=True), torch.tensor(F, requires_grad=True)


def test_ragan_generator_loss_and_gradients() -> None:
    real, fake = _preds()
    loss = g_adversarial_loss(GANLoss("ragan", loss_weight=W), real, fake, relativistic=True)
    r_mean, f_mean, n = mean(R), mean(F), len(R)
    # G: (BCE(C(x_r) - E[C(x_f)], 0) + BCE(C(x_f) - E[C(x_r)], 1)) / 2, weighted
    l_real = mean([bce_logits(r - f_mean, 0) for r in R])
    l_fake = mean([bce_logits(f - r_mean, 1) for f in F])
    assert loss.item() == pytest.approx(W * (l_real + l_fake) / 2, rel=1e-6)

    loss.backward()
    assert real.grad is None  # the real side is detached for the generator
    # d/df_j: the real term through E[C(x_f)], the fake term through C(x_f_j)
    s = sum(sigmoid(r - f_mean) for r in R)
    expected = [W / 2 * (-s / n**2 - sigmoid(r_mean - f) / n) for f in F]
    assert fake.grad.tolist() == pytest.approx(expected, rel=1e-5)


def test_ragan_discriminator_loss_and_gradients() -> None:
    real, fake = _preds()
    gan = GANLoss("vanilla", loss_weight=W)  # BasicSR's ESRGANModel file: vanilla applied relativistically
    l_real_t, l_fake_t = d_adversarial_terms(gan, real, fake, relativistic=True)
    r_mean, f_mean, n = mean(R), mean(F), len(R)
    # D: labels swapped; no loss_weight for the discriminator; each term halved
    l_real = mean([bce_logits(r - f_mean, 1) for r in R]) / 2
    l_fake = mean([bce_logits(f - r_mean, 0) for f in F]) / 2
    assert l_real_t.item() == pytest.approx(l_real, rel=1e-6)
    assert l_fake_t.item() == pytest.approx(l_fake, rel=1e-6)
    total = d_adversarial_loss(gan, real, fake, relativistic=True)
    assert total.item() == pytest.approx(l_real + l_fake, rel=1e-6)

    total.backward()
    # each side gets gradient only through its own term (the other side's mean is detached, as BasicSR)
    assert real.grad.tolist() == pytest.approx([-sigmoid(f_mean - r) / (2 * n) for r in R], rel=1e-5)
    assert fake.grad.tolist() == pytest.approx([sigmoid(f - r_mean) / (2 * n) for f in F], rel=1e-5)


def test_standard_gan_helpers() -> None:
    real, fake = _preds()
    gan = GANLoss("vanilla", loss_weight=W)
    g = g_adversarial_loss(gan, None, fake, relativistic=False)
    assert g.item() == pytest.approx(W * mean([bce_logits(f, 1) for f in F]), rel=1e-6)
    d = d_adversarial_loss(gan, real, fake, relativistic=False)
    expected = mean([bce_logits(r, 1) for r in R]) + mean([bce_logits(f, 0) for f in F])
    assert d.item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="needs the discriminator's output on real images"):
        g_adversarial_loss(gan, None, fake, relativistic=True)


def test_relativistic_hinge_uses_the_discriminator_form() -> None:
    real, fake = _preds()
    loss = g_adversarial_loss(GANLoss("hinge", loss_weight=1.0), real, fake, relativistic=True)
    r_mean, f_mean = mean(R), mean(F)
    # RaHinge G: E[max(0, 1 + (C_r - E C_f))] + E[max(0, 1 - (C_f - E C_r))], halved
    expected = (mean([max(0, 1 + r - f_mean) for r in R]) + mean([max(0, 1 - (f - r_mean)) for f in F])) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_lsgan_relativistic_generator() -> None:
    real, fake = _preds()
    loss = g_adversarial_loss(GANLoss("lsgan", loss_weight=2.0), real, fake, relativistic=True)
    r_mean, f_mean = mean(R), mean(F)
    expected = 2.0 * (mean([(r - f_mean) ** 2 for r in R]) + mean([(f - r_mean - 1) ** 2 for f in F])) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# gradient penalty
# ---------------------------------------------------------------------------------------------


class LinearD(torch.nn.Module):
    """D(x) = <w, x> + b per sample: its input gradient is w everywhere, whatever the interpolate."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(shape) * 0.3)
        self.b = torch.nn.Parameter(torch.tensor(0.7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1) + self.b


def test_gradient_penalty_of_a_linear_discriminator() -> None:
    d = LinearD((3, 4, 4))
    real, fake = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    penalty = gradient_penalty(d, real, fake)
    norm = d.w.detach().norm().item()
    assert penalty.item() == pytest.approx((norm - 1) ** 2, rel=1e-5)
    # the penalty is trainable: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    penalty.backward()
    assert torch.allclose(d.w.grad, 2 * (norm - 1) * d.w.detach() / norm, rtol=1e-4)


def test_gradient_penalty_norm_is_per_sample() -> None:
    # D(x) = 0.5 ||x||^2 has gradient x; with real == fake the interpolate is x itself.
    x = torch.tensor([[3.0, 4.0], [0.0, 0.5]]).view(2, 2, 1, 1)
    penalty = gradient_penalty(lambda t: 0.5 * t.square().flatten(1).sum(1), x, x.clone())
    assert penalty.item() == pytest.approx(((5 - 1) ** 2 + (0.5 - 1) ** 2) / 2, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# perceptual loss (random VGG weights: the arithmetic is what is tested)
# ---------------------------------------------------------------------------------------------


def _gram(f: torch.Tensor) -> torch.Tensor:
    _, c, h, w = f.shape
    return torch.einsum("nchw,ndhw->ncd", f, f) / (c * h * w)


@pytest.fixture
def images() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)


@pytest.mark.parametrize("criterion", ["l1", "l2", "fro"])
def test_perceptual_loss_weighted_sum_and_style(images, criterion: str) -> None:
    x, gt = images
    weights = {"conv1_2": 1.0, "conv2_1": 0.5}
    loss = PerceptualLoss(weights, perceptual_weight=2.0, style_weight=3.0, criterion=criterion, pretrained=False)
    percep, style = loss(x, gt)

    fx, fg = loss.vgg(x), loss.vgg(gt)
    dist = {
        "l1": lambda a, b: (a - b).abs().mean(),
        "l2": lambda a, b: ((a - b) ** 2).mean(),
        "fro": lambda a, b: ((a - b) ** 2).sum().sqrt(),
    }[criterion]
    exp_percep = 2.0 * sum(w * dist(fx[k], fg[k]) for k, w in weights.items())
    exp_style = 3.0 * sum(w * dist(_gram(fx[k]), _gram(fg[k])) for k, w in weights.items())
    assert percep.item() == pytest.approx(exp_percep.item(), rel=1e-5)
    assert style.item() == pytest.approx(exp_style.item(), rel=1e-5)


def test_perceptual_layer_weights_combine_single_layer_losses(images) -> None:
    x, gt = images
    both = PerceptualLoss({"conv1_2": 1.0, "conv2_2": 0.25}, pretrained=False)
    one = PerceptualLoss({"conv1_2": 1.0}, pretrained=False)
    two = PerceptualLoss({"conv2_2": 1.0}, pretrained=False)
    sd = both.vgg.vgg_net.state_dict()
    one.vgg.vgg_net.load_state_dict({k: v for k, v in sd.items() if k in one.vgg.vgg_net.state_dict()})
    two.vgg.vgg_net.load_state_dict(sd)
    expected = one(x, gt)[0] + 0.25 * two(x, gt)[0]
    assert both(x, gt)[0].item() == pytest.approx(expected.item(), rel=1e-6)


def test_perceptual_loss_gradients_and_none_terms(images) -> None:
    x, gt = images
    x.requires_grad_(True)
    gt.requires_grad_(True)
    loss = PerceptualLoss({"conv2_1": 1.0}, pretrained=False)
    percep, style = loss(x, gt)
    assert style is None  # style_weight 0
    percep.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert gt.grad is None  # the target is a constant
    assert all(p.grad is None and not p.requires_grad for p in loss.parameters())  # VGG frozen
    only_style = PerceptualLoss({"conv2_1": 1.0}, perceptual_weight=0, style_weight=1.0, pretrained=False)
    assert only_style(x, gt)[0] is None
    loss.train()
    assert not loss.vgg.training  # a frozen extractor stays in eval mode


def test_perceptual_pretrained_auto(tmp_path, monkeypatch, caplog, images) -> None:
    """auto: ImageNet weights when torchvision's cache has them, else random weights and a loud warning."""
    from esrgan.archs.vgg import torchvision_cache_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("ESRGAN_OFFLINE", "1")
    path = torchvision_cache_path("vgg19")
    assert path.parent == tmp_path / "hub" / "checkpoints"

    with caplog.at_level("WARNING", logger="esrgan.losses.perceptual"):
        PerceptualLoss({"conv1_1": 1.0}, pretrained="auto")
    assert "RANDOMLY INITIALISED" in caplog.text and str(path) in caplog.text

    # a stand-in for the cached file (only the first conv is needed for conv1_1)
    w, b = torch.randn(64, 3, 3, 3), torch.randn(64)
    path.parent.mkdir(parents=True)
    torch.save({"features.0.weight": w, "features.0.bias": b}, path)
    caplog.clear()
    with caplog.at_level("WARNING", logger="esrgan.losses.perceptual"):
        loss = PerceptualLoss({"conv1_1": 1.0}, pretrained="auto")
    assert "RANDOMLY" not in caplog.text
    assert torch.equal(loss.vgg.vgg_net[0].weight, w) and torch.equal(loss.vgg.vgg_net[0].bias, b)


def test_perceptual_errors() -> None:
    with pytest.raises(ValueError, match="layer_weights is empty"):
        PerceptualLoss({}, pretrained=False)
    with pytest.raises(ValueError, match="criterion must be one of l1, l2, fro"):
        PerceptualLoss({"conv1_1": 1.0}, criterion="l3", pretrained=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown layer name"):
        PerceptualLoss({"conv9_9": 1.0}, pretrained=False)


# ---------------------------------------------------------------------------------------------
# build_loss
# ---------------------------------------------------------------------------------------------


def test_build_loss() -> None:
    loss = build_loss({"type": "CharbonnierLoss", "loss_weight": 2.0, "eps": 1e-6})
    assert isinstance(loss, CharbonnierLoss) and loss.loss_weight == 2.0 and loss.eps == 1e-6
    assert isinstance(build_loss({"type": "GANLoss", "gan_type": "ragan"}), GANLoss)
    assert set(LOSSES) == {"L1Loss", "MSELoss", "CharbonnierLoss", "MSSSIMLoss", "MSSSIML1Loss", "FocalFrequencyLoss",
                           "ColorLoss", "PerceptualLoss", "DISTSLoss", "GANLoss"}
    with pytest.raises(ValueError, match=r"unknown loss type 'L2Loss'; known types: L1Loss, MSELoss"):
        build_loss({"type": "L2Loss"})
    with pytest.raises(ValueError, match=r"L1Loss: unknown argument\(s\) \['weight'\]; accepted: loss_weight, reduc"):
        build_loss({"type": "L1Loss", "weight": 1.0})
    with pytest.raises(ValueError, match="needs a 'type' key"):
        build_loss({"loss_weight": 1.0})
