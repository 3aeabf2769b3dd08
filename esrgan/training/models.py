"""What is trained in one iteration: the PSNR model (G + pixel loss) and the ESRGAN model (adds D).

Plain classes, one level of inheritance. A model owns its networks, losses, optimizers,
schedulers and grad scaler, and knows how to do one optimisation step, to run the
generator for validation, and to put all of that into (and take it out of) a state dict.
The loop around it (data, logging, validation, checkpoints) is in ``trainer.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from esrgan.archs import build_network
from esrgan.losses import build_loss, d_adversarial_terms, g_adversarial_loss, gradient_penalty
from esrgan.training import dist as dist_utils
from esrgan.training.ema import ModelEMA
from esrgan.training.schedulers import build_scheduler

logger = logging.getLogger("esrgan.training.models")

AMP_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; the step was not applied."""

    def __init__(self, iteration: int, values: Mapping[str, float]) -> None:
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        shown = ", ".join(f"{k}={v}" for k, v in bad.items()) or ", ".join(f"{k}={v}" for k, v in values.items())
        super().__init__(f"non-finite loss at iteration {iteration}: {shown}")
        self.iteration = iteration
        self.values = dict(values)


def _spec(section: Any) -> dict[str, Any] | None:
    """An options section (dataclass with ``spec()``/``to_dict()``, or a mapping) as ``{"type": ..., **kwargs}``."""
    if section is None:
        return None
    if hasattr(section, "spec"):
        return dict(section.spec())
    if dataclasses.is_dataclass(section):
        return dataclasses.asdict(section)
    if hasattr(section, "spec"):
        return dict(section.spec())
    if hasattr(section, "to_dict"):
        return dict(section.to_dict())
    return dict(section)


def build_optimizer(params: Iterator[nn.Parameter], optim_opt: Any, key_path: str) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimizer from an ``optim_g``/``optim_d`` section (type, lr, betas, weight_decay...)."""
    params = [p for p in params if p.requires_grad]
    if hasattr(optim_opt, "build"):  # esrgan.options.OptimizerOptions
        return optim_opt.build(params)
    spec = _spec(optim_opt)
    if spec is None:
        raise ValueError(f"{key_path}: required (e.g. {{type: Adam, lr: 1.0e-4, betas: [0.9, 0.99]}})")
    spec = {k: v for k, v in spec.items() if v is not None}
    kind = spec.pop("type", "Adam")
    classes = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW, "SGD": torch.optim.SGD}
    if kind not in classes:
        raise ValueError(f"{key_path}.type: unknown optimizer {kind!r}; known: {', '.join(classes)}")
    if "betas" in spec:
        spec["betas"] = tuple(spec["betas"])
    try:
        return classes[kind](params, **spec)
    except TypeError as exc:
        raise ValueError(f"{key_path}: {exc}") from exc


def _scheduler(optimizer: torch.optim.Optimizer, sched_opt: Any) -> torch.optim.lr_scheduler.LRScheduler | None:
    spec = _spec(sched_opt)
    if spec is None or spec.get("type") in (None, "none"):
        return None
    kind = spec.pop("type")
    return build_scheduler(optimizer, kind, **{k: v for k, v in spec.items() if v is not None})


def _strip_module_prefix(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # DDP / torch.compile wrappers save "module." / "_orig_mod." prefixed keys.
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def load_network_weights(net: nn.Module, path: str, param_key: str | None, strict: bool, what: str) -> None:
    """Load ``path`` (``params``/``params_ema``/bare state dict; .pth or .safetensors) into ``net``."""
    from esrgan.checkpoint import load_checkpoint_file

    ckpt = load_checkpoint_file(path)
    if param_key and param_key in ckpt and isinstance(ckpt[param_key], Mapping):
        sd = ckpt[param_key]
    elif all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        sd = ckpt
    else:
        nested = [k for k, v in ckpt.items() if isinstance(v, Mapping)]
        if param_key and param_key not in ckpt and nested:
            raise ValueError(f"{path}: no {param_key!r} in the checkpoint ({what}); it holds {nested}")
        sd = ckpt[nested[0]]
    sd = _strip_module_prefix(sd)
    if not strict:
        # strict_load false also skips tensors of another shape (BasicSR's behaviour), e.g. the first
        # convolution when an x2 network (pixel-unshuffled input) starts from x4 weights.
        own = net.state_dict()
        reshaped = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
        if reshaped:
            logger.warning("%s: %s not loaded from %s (other shape)", what, ", ".join(reshaped), path)
            sd = {k: v for k, v in sd.items() if k not in reshaped}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if (missing or unexpected) and what == "network_g":
        # A foreign layout (official ESRGAN, old BasicSR): let the loader map it onto ours.
        try:
            from esrgan.loading import load_generator

            _, _, mapped = load_generator(path)
            missing, unexpected = net.load_state_dict(mapped, strict=False)
        except Exception as exc:  # keep the first, more direct error below
            logger.debug("layout mapping of %s failed: %s", path, exc)
    if strict and (missing or unexpected):
        raise ValueError(
            f"{path} does not fit {what} ({type(net).__name__}): missing keys {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''} (set strict_load false to load what fits)"
        )
    if missing or unexpected:
        logger.warning("%s: loaded %s non-strictly (%d missing, %d unexpected keys)", what, path, len(missing),
                       len(unexpected))
    logger.info("%s: loaded weights from %s [%s]", what, path, param_key or "state dict")


class SRModel:
    """PSNR-oriented stage: generator, pixel loss, optional EMA, AMP, channels_last, clipping, compile, DDP."""

    def __init__(self, opt: Any, device: torch.device, dist_info: dist_utils.DistInfo | None = None) -> None:
        self.opt = opt
        self.device = device
        self.dist_info = dist_info or dist_utils.DistInfo()
        t = opt.train
        self.channels_last = bool(getattr(t, "channels_last", False))
        self.grad_clip = float(getattr(t, "grad_clip", 0) or 0)
        self.warmup_iter = int(getattr(t, "warmup_iter", -1) or -1)

        self.net_g = self._prepare(build_network(opt.network_g.spec()))
        path_opt = opt.path
        if getattr(path_opt, "pretrain_network_g", None):
            load_network_weights(
                self.net_g,
                path_opt.pretrain_network_g,
                getattr(path_opt, "param_key_g", "params"),
                bool(getattr(path_opt, "strict_load_g", True)),
                "network_g",
            )
        ema_decay = float(getattr(t, "ema_decay", 0) or 0)
        self.ema = ModelEMA(self.net_g, ema_decay) if ema_decay > 0 else None
        self.net_g_train = self._wrap(self.net_g, compile_it=bool(getattr(t, "compile_g", False)))

        self.cri_pix = self._loss(getattr(t, "pixel_opt", None))
        self.optimizer_g = build_optimizer(self.net_g.parameters(), t.optim_g, "train.optim_g")
        self.optimizers: list[torch.optim.Optimizer] = [self.optimizer_g]
        self.schedulers = [s for s in [_scheduler(self.optimizer_g, getattr(t, "scheduler", None))] if s]

        self.amp_dtype = self._amp_dtype(t)
        # A grad scaler only for fp16: bf16 has fp32's exponent range and needs none.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)

    # ---- set-up helpers -------------------------------------------------------------------------
    def _prepare(self, net: nn.Module) -> nn.Module:
        net = net.to(self.device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return net

    def _wrap(self, net: nn.Module, compile_it: bool = False) -> nn.Module:
        wrapped = net
        if self.dist_info.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = DistributedDataParallel(net, device_ids=device_ids)
        if compile_it:
            wrapped = torch.compile(wrapped)
        return wrapped

    def _loss(self, loss_opt: Any) -> nn.Module | None:
        spec = _spec(loss_opt)
        if spec is None or not spec.get("type"):
            return None
        return build_loss(spec).to(self.device)

    def _amp_dtype(self, t: Any) -> torch.dtype | None:
        if not getattr(t, "use_amp", False):
            return None
        name = str(getattr(t, "amp_dtype", "bf16"))
        if name not in AMP_DTYPES:
            raise ValueError(f"train.amp_dtype: {name!r} is not one of {', '.join(AMP_DTYPES)}")
        return AMP_DTYPES[name]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def prepare_batch(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lq, gt)`` on the device from a loader batch (Real-ESRGAN models make ``lq`` here)."""
        return self.to_input(batch["lq"]), self.to_input(batch["gt"])

    # ---- one iteration --------------------------------------------------------------------------
    def update_learning_rate(self, current_iter: int) -> None:
        """BasicSR's linear warm-up: for ``current_iter < warmup_iter`` use lr * current_iter / warmup_iter.

        The scheduled lr is put back in :meth:`step_schedulers`, so schedules (and the saved
        optimizer states) never see the warm-up factor.
        """
        self._scheduled_lr = None
        if current_iter < self.warmup_iter:
            self._scheduled_lr = [[g["lr"] for g in opt.param_groups] for opt in self.optimizers]
            for opt in self.optimizers:
                for group in opt.param_groups:
                    group["lr"] = group["lr"] * current_iter / self.warmup_iter

    def step_schedulers(self) -> None:
        if getattr(self, "_scheduled_lr", None) is not None:
            for opt, lrs in zip(self.optimizers, self._scheduled_lr, strict=True):
                for group, lr in zip(opt.param_groups, lrs, strict=True):
                    group["lr"] = lr
            self._scheduled_lr = None
        with warnings.catch_warnings():
            # Schedules follow the iteration even when an optimizer skipped its step (G warm-up leaves
            # D idle; the fp16 grad scaler skips steps with inf gradients): torch warns about that order.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
            for s in self.schedulers:
                s.step()

    def current_lr(self) -> list[float]:
        return [opt.param_groups[0]["lr"] for opt in self.optimizers]

    def _check_finite(self, losses: Mapping[str, torch.Tensor], current_iter: int) -> None:
        """Raise on every rank if any loss is NaN/Inf on any rank (so no rank is left waiting)."""
        if not losses:
            return
        ok = bool(torch.stack([v.detach().float().reshape(()) for v in losses.values()]).isfinite().all())
        if not dist_utils.all_true(ok):
            raise NonFiniteLossError(current_iter, {k: float(v.detach()) for k, v in losses.items()})

    def _backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: list[nn.Parameter]) -> None:
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(optimizer)

    def optimize_parameters(self, lq: torch.Tensor, gt: torch.Tensor, current_iter: int) -> dict[str, torch.Tensor]:
        """One step on a batch; returns the detached losses (scalars) for logging."""
        self.optimizer_g.zero_grad(set_to_none=True)
        with self.autocast():
            output = self.net_g_train(lq)
            losses: dict[str, torch.Tensor] = {}
            total = output.new_zeros((), dtype=torch.float32)
            if self.cri_pix is not None:
                losses["l_pix"] = self.cri_pix(output.float(), gt)
                total = total + losses["l_pix"]
        if not losses:
            raise ValueError("train.pixel_opt: the PSNR stage needs a pixel loss (e.g. {type: L1Loss})")
        self._check_finite(losses, current_iter)
        self._backward_step(total, self.optimizer_g, list(self.net_g.parameters()))
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.net_g)
        return {k: v.detach() for k, v in losses.items()}

    # ---- evaluation -----------------------------------------------------------------------------
    def eval_network(self) -> nn.Module:
        """The generator used for validation and as ``params_ema``: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.net_g

    @torch.no_grad()
    def test(self, lq: torch.Tensor) -> torch.Tensor:
        net = self.eval_network()
        was_training = net.training
        net.eval()
        try:
            with self.autocast():
                return net(self.to_input(lq)).float()
        finally:
            net.train(was_training)

    # ---- saving / resuming ----------------------------------------------------------------------
    def network_files(self) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
        """``{"net_g": {"params": ..., "params_ema": ...}}`` (+ ``net_d``), ready for ``save_network``."""
        g = {"params": self.net_g.state_dict()}
        if self.ema is not None:
            g["params_ema"] = self.ema.state_dict()
        return {"net_g": g}

    def state_dict(self) -> dict[str, Any]:
        nets = {"net_g": self.net_g.state_dict()}
        if self.ema is not None:
            nets["net_g_ema"] = self.ema.state_dict()
        return {
            "networks": nets,
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        nets = state["networks"]
        self.net_g.load_state_dict(nets["net_g"])
        if self.ema is not None:
            if "net_g_ema" not in nets:
                raise ValueError("the training state has no EMA weights but train.ema_decay > 0")
            self.ema.load_state_dict(nets["net_g_ema"])
        self._load_list(self.optimizers, state["optimizers"], "optimizers")
        self._load_list(self.schedulers, state["schedulers"], "schedulers")
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def rank_state(self) -> dict[str, Any] | None:
        """State that differs between processes and is not in :meth:`state_dict` (None: nothing); CPU tensors."""
        return None

    def load_rank_state(self, state: Mapping[str, Any] | None) -> None:
        """Restore what :meth:`rank_state` returned in this process's rank."""

    @staticmethod
    def _load_list(objs: list[Any], states: list[Any], what: str) -> None:
        if len(objs) != len(states):
            raise ValueError(f"the training state has {len(states)} {what}, the options make {len(objs)}")
        for obj, st in zip(objs, states, strict=True):
            obj.load_state_dict(st)


class ESRGANModel(SRModel):
    """GAN stage: adds the discriminator, perceptual and (relativistic) adversarial losses.

    G is updated when ``iter % net_d_iters == 0 and iter > net_d_init_iters`` (BasicSR). During
    the first ``g_warmup_iter`` iterations (ours; 0 = none) G is trained with the pixel loss
    only and D is left alone. Otherwise D is updated every iteration; with ``gan_opt.gp_weight``
    the WGAN-GP gradient penalty is added to D's loss.
    """

    def __init__(self, opt: Any, device: torch.device, dist_info: dist_utils.DistInfo | None = None) -> None:
        super().__init__(opt, device, dist_info)
        t = opt.train
        if getattr(opt, "network_d", None) is None:
            raise ValueError("network_d: required for model_type ESRGANModel (e.g. {type: VGGStyleDiscriminator})")
        self.net_d = self._prepare(build_network(opt.network_d.spec()))
        path_opt = opt.path
        if getattr(path_opt, "pretrain_network_d", None):
            load_network_weights(
                self.net_d,
                path_opt.pretrain_network_d,
                getattr(path_opt, "param_key_d", "params"),
                bool(getattr(path_opt, "strict_load_d", True)),
                "network_d",
            )
        # G's step calls the plain D (its weights are frozen there, nothing to synchronise) so
        # that DDP's reducer only ever sees D's own backward.
        self.net_d_train = self._wrap(self.net_d)
        self.cri_perceptual = self._loss(getattr(t, "perceptual_opt", None))
        gan_spec = _spec(getattr(t, "gan_opt", None))
        if not gan_spec or not gan_spec.get("type"):
            raise ValueError(
                "train.gan_opt: required for model_type ESRGANModel (e.g. {type: GANLoss, gan_type: ragan})"
            )
        # "relativistic" is the trainer's switch, not an argument of the criterion.
        self.relativistic = bool(gan_spec.pop("relativistic", getattr(t.gan_opt, "relativistic", True)))
        self.cri_gan = build_loss(gan_spec).to(device)
        self.net_d_iters = int(getattr(t, "net_d_iters", 1) or 1)
        self.net_d_init_iters = int(getattr(t, "net_d_init_iters", 0) or 0)
        self.g_warmup_iter = int(getattr(t, "g_warmup_iter", 0) or 0)
        self.gp_weight = float(getattr(t.gan_opt, "gp_weight", 0.0) or 0.0)
        self.optimizer_d = build_optimizer(self.net_d.parameters(), t.optim_d, "train.optim_d")
        self.optimizers.append(self.optimizer_d)
        sched_d = _scheduler(self.optimizer_d, getattr(t, "scheduler", None))
        if sched_d is not None:
            self.schedulers.append(sched_d)

    def loss_targets(self, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The targets of the pixel, perceptual and GAN losses (Real-ESRGAN sharpens some of them)."""
        return gt, gt, gt

    def _set_d_grad(self, flag: bool) -> None:
        for p in self.net_d.parameters():
            p.requires_grad_(flag)

    def optimize_parameters(self, lq: torch.Tensor, gt: torch.Tensor, current_iter: int) -> dict[str, torch.Tensor]:
        warming_up = current_iter <= self.g_warmup_iter
        optimize_g = warming_up or (current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters)
        losses: dict[str, torch.Tensor] = {}
        pix_gt, percep_gt, gan_gt = self.loss_targets(gt)

        # ---- generator
        self._set_d_grad(False)
        self.optimizer_g.zero_grad(set_to_none=True)
        # Without a G update, run G without a graph: DDP would otherwise wait for G's gradients.
        with torch.set_grad_enabled(optimize_g), self.autocast():
            output = self.net_g_train(lq)
        if optimize_g:
            with self.autocast():
                out32 = output.float()
                g_losses: dict[str, torch.Tensor] = {}
                if self.cri_pix is not None:
                    g_losses["l_g_pix"] = self.cri_pix(out32, pix_gt)
                if self.cri_perceptual is not None and not warming_up:
                    percep, style = self.cri_perceptual(out32, percep_gt)
                    if percep is not None:
                        g_losses["l_g_percep"] = percep
                    if style is not None:
                        g_losses["l_g_style"] = style
                if not warming_up:
                    # The plain D: its weights are frozen here, there is nothing for DDP to synchronise.
                    # D(real) only enters the relativistic loss.
                    real_pred = self.net_d(gan_gt).detach() if self.relativistic else None
                    fake_pred = self.net_d(output)
                    g_losses["l_g_gan"] = g_adversarial_loss(
                        self.cri_gan, None if real_pred is None else real_pred.float(), fake_pred.float(),
                        self.relativistic,
                    )
            if not g_losses:
                raise ValueError("train: no generator loss is active (set pixel_opt, or end g_warmup_iter)")
            self._check_finite(g_losses, current_iter)
            total_g = torch.stack([v.float() for v in g_losses.values()]).sum()
            self._backward_step(total_g, self.optimizer_g, list(self.net_g.parameters()))
            losses.update(g_losses)

        # ---- discriminator
        if not warming_up:
            self._set_d_grad(True)
            self.optimizer_d.zero_grad(set_to_none=True)
            fake = output.detach()
            with self.autocast():
                real_pred = self.net_d_train(gan_gt)
                fake_pred = self.net_d_train(fake)
                l_d_real, l_d_fake = d_adversarial_terms(
                    self.cri_gan, real_pred.float(), fake_pred.float(), self.relativistic
                )
            d_losses = {"l_d_real": l_d_real, "l_d_fake": l_d_fake}
            total_d = l_d_real + l_d_fake
            if self.gp_weight > 0:
                d_losses["l_d_gp"] = gradient_penalty(self.net_d_train, gan_gt, fake.float()) * self.gp_weight
                total_d = total_d + d_losses["l_d_gp"]
            self._check_finite(d_losses, current_iter)
            self._backward_step(total_d, self.optimizer_d, list(self.net_d.parameters()))
            losses.update(d_losses)
            losses["out_d_real"] = real_pred.detach().float().mean()
            losses["out_d_fake"] = fake_pred.detach().float().mean()
        self.scaler.update()

        if self.ema is not None:
            self.ema.update(self.net_g)
        return {k: v.detach() for k, v in losses.items()}

    def network_files(self) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
        files = super().network_files()
        files["net_d"] = {"params": self.net_d.state_dict()}
        return files

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["networks"]["net_d"] = self.net_d.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.net_d.load_state_dict(state["networks"]["net_d"])


MODELS: dict[str, type[SRModel]] = {"SRModel": SRModel, "ESRGANModel": ESRGANModel}


def build_model(opt: Any, device: torch.device, dist_info: dist_utils.DistInfo | None = None) -> SRModel:
    """``MODELS[opt.model_type](opt, device, dist_info)``; unknown types list the known ones."""
    # Real-ESRGAN's models build on these classes: their module is imported here, not above.
    from esrgan.training.realesrgan import REAL_MODELS

    models = {**MODELS, **REAL_MODELS}
    if opt.model_type not in models:
        raise ValueError(f"model_type: unknown model {opt.model_type!r}; known: {', '.join(models)}")
    return models[opt.model_type](opt, device, dist_info)
