"""What is trained in one iteration: the PSNR model (G + pixel loss) and the ESRGAN model (adds D).

Plain classes, one level of inheritance. A model owns its networks, losses, optimizers,
schedulers and grad scaler, and knows how to do one optimisation step, to run the
generator for validation, and to put all of that into (and take it out of) a state dict.
The loop around it (data, logging, validation, checkpoints) is in ``trainer.py``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from esrgan.archs import build_network, pad_to_fit, size_requirements
from esrgan.archs.spandrel_archs import is_spandrel_network
from esrgan.losses import build_loss, d_adversarial_terms, g_adversarial_loss, gradient_penalty
from esrgan.losses.ldl import artifact_map
from esrgan.optim import evaluation_point, start_training
from esrgan.training import dist as dist_utils
from esrgan.training.ema import ModelEMA
from esrgan.training.precision import training_precision
from esrgan.training.schedulers import build_scheduler

if TYPE_CHECKING:
    from esrgan.options import LossOptions, OptimizerOptions, Options

logger = logging.getLogger("esrgan.training.models")



# One batch, or the micro-batches of one optimizer step (train.accumulate_grad_batches).
Batch = torch.Tensor | Sequence[torch.Tensor]


def _micro_batches(lq: Batch, gt: Batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(lq, torch.Tensor) and isinstance(gt, torch.Tensor):
        return [(lq, gt)]
    return list(zip(lq, gt, strict=True))


def _add(sums: dict[str, torch.Tensor], losses: Mapping[str, torch.Tensor]) -> None:
    for name, value in losses.items():
        value = value.detach()
        sums[name] = sums[name] + value if name in sums else value


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf (the run stops before anything of that iteration is saved)."""

    def __init__(self, iteration: int, values: Mapping[str, float]) -> None:
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        shown = ", ".join(f"{k}={v}" for k, v in bad.items()) or ", ".join(f"{k}={v}" for k, v in values.items())
        super().__init__(f"non-finite loss at iteration {iteration}: {shown}")
        self.iteration = iteration
        self.values = dict(values)


def build_optimizer(params: Iterable[nn.Parameter], optim_opt: OptimizerOptions) -> torch.optim.Optimizer:
    """The optimizer of an ``optim_g`` / ``optim_d`` section (``esrgan.options.OPTIMIZERS``), over the trainable
    ``params``."""
    from esrgan.options import optimizer_class

    optimizer = optimizer_class(optim_opt.type)([p for p in params if p.requires_grad], **optim_opt.kwargs)
    start_training([optimizer])  # schedule-free optimizers step in train mode only
    return optimizer


class SRModel:
    """PSNR-oriented stage: generator, pixel (and, as BasicSR's SRModel, perceptual) loss, optional EMA, AMP,
    channels_last, clipping, compile, DDP. The options are resolved and checked at load: nothing is re-checked here.
    """

    def __init__(self, opt: Options, device: torch.device, dist_info: dist_utils.DistInfo | None = None) -> None:
        from esrgan.loading import load_weights_into

        self.opt = opt
        self.device = device
        self.dist_info = dist_info or dist_utils.DistInfo()
        t = opt.train
        self.precision = training_precision(t, device)
        self.channels_last = self.precision.channels_last
        self.grad_clip = t.grad_clip
        self.warmup_iter = t.warmup_iter
        self._scheduled_lr: list[list[float]] | None = None
        self._finite: torch.Tensor | None = None  # see _note_finite

        self.net_g = self._prepare(build_network(opt.network_g.spec()))
        # validation pads inputs up to what the network takes (window multiples...) and crops the output back
        self.g_sizes = size_requirements(self.net_g)
        p = opt.path
        if p.pretrain_network_g:
            load_weights_into(
                self.net_g, p.pretrain_network_g, param_key=p.param_key_g, strict=p.strict_load_g, what="network_g"
            )
        self.ema = ModelEMA(self.net_g, t.ema_decay) if t.ema_decay > 0 else None
        self.net_g_train = self._wrap(self.net_g, compile_it=t.compile_g)

        self.cri_pix = self._loss(t.pixel_opt)
        self.cri_pix_extra = self._loss_list(t.losses)
        self.cri_perceptual = self._loss(t.perceptual_opt)
        self.optimizer_g = build_optimizer(self.net_g.parameters(), t.optim_g)
        self.optimizers: list[torch.optim.Optimizer] = [self.optimizer_g]
        self.schedulers = [build_scheduler(self.optimizer_g, t.scheduler)] if t.scheduler is not None else []

        self.amp_dtype = self.precision.autocast
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.grad_scaler)

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
            # some of spandrel's networks leave parameters unused in training mode (FDAT's gates)
            unused = is_spandrel_network(net)
            wrapped = DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=unused)
        if compile_it:
            wrapped = torch.compile(wrapped)
        return wrapped

    def _loss(self, loss_opt: LossOptions | None) -> nn.Module | None:
        return None if loss_opt is None else build_loss(loss_opt.spec()).to(self.device)

    def _loss_list(self, loss_opts: Sequence[LossOptions]) -> dict[str, nn.Module]:
        """``train.losses`` by their log names (``FocalFrequencyLoss`` -> ``focalfrequency``; ``_2``... for repeats)."""
        out: dict[str, nn.Module] = {}
        for loss_opt in loss_opts:
            base = loss_opt.type.removesuffix("Loss").lower()
            name, k = base, 2
            while name in out or name == "pix":
                name, k = f"{base}_{k}", k + 1
            out[name] = build_loss(loss_opt.spec()).to(self.device)
        return out

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
        if self._scheduled_lr is not None:
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

    def _note_finite(self, total: torch.Tensor) -> None:
        """Fold a loss sum into the step's finiteness flag, on the device (a NaN/Inf term makes the sum one).

        Read once per iteration by the trainer, with the stop request, in one collective: no host sync here.
        """
        ok = torch.isfinite(total.detach())
        self._finite = ok if self._finite is None else self._finite & ok

    def step_is_finite(self) -> torch.Tensor:
        """A bool tensor on the device: whether every loss of the last :meth:`optimize_parameters` was finite."""
        return self._finite if self._finite is not None else torch.ones((), dtype=torch.bool, device=self.device)

    def _step(self, optimizer: torch.optim.Optimizer, params: list[nn.Parameter]) -> None:
        """Clip (``grad_clip``) and apply the gradients accumulated since ``zero_grad``."""
        if self.grad_clip > 0:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(optimizer)

    def _backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, params: list[nn.Parameter]) -> None:
        self.scaler.scale(loss).backward()
        self._step(optimizer, params)

    def _no_sync(self, net: nn.Module, last: bool) -> contextlib.AbstractContextManager:
        """DDP all-reduces the gradients in every backward: the micro-batches of one step but the last skip it
        (their gradients accumulate locally; the last backward reduces the sum)."""
        if last or not self.dist_info.distributed:
            return contextlib.nullcontext()
        return net.no_sync()

    def _content_losses(self, output: torch.Tensor, pix_gt: torch.Tensor, percep_gt: torch.Tensor, prefix: str,
                        perceptual: bool = True) -> dict[str, torch.Tensor]:
        """The pixel and perceptual (and style) losses of ``output`` (float32) that the options set."""
        losses: dict[str, torch.Tensor] = {}
        if self.cri_pix is not None:
            losses[f"{prefix}pix"] = self.cri_pix(output, pix_gt)
        for name, loss in self.cri_pix_extra.items():
            losses[f"{prefix}{name}"] = loss(output, pix_gt)
        if self.cri_perceptual is not None and perceptual:
            percep, style = self.cri_perceptual(output, percep_gt)
            if percep is not None:
                losses[f"{prefix}percep"] = percep
            if style is not None:
                losses[f"{prefix}style"] = style
        return losses

    def optimize_parameters(self, lq: Batch, gt: Batch, current_iter: int) -> dict[str, torch.Tensor]:
        """One optimizer step on a batch, or on a list of micro-batches whose gradients are accumulated
        (``train.accumulate_grad_batches``: each loss is divided by their number, so k micro-batches of
        b images step as one batch of k*b would with a mean-reduced loss). Returns the mean losses."""
        micro = _micro_batches(lq, gt)
        self.optimizer_g.zero_grad(set_to_none=True)
        self._finite = None
        sums: dict[str, torch.Tensor] = {}
        for i, (lq_i, gt_i) in enumerate(micro):
            with self._no_sync(self.net_g_train, last=i == len(micro) - 1):
                with self.autocast():
                    output = self.net_g_train(lq_i)
                    losses = self._content_losses(output.float(), gt_i, gt_i, "l_")
                total = torch.stack([v.float() for v in losses.values()]).sum()
                self._note_finite(total)
                self.scaler.scale(total / len(micro)).backward()
            _add(sums, losses)
        self._step(self.optimizer_g, list(self.net_g.parameters()))
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.net_g)
        return {k: v / len(micro) for k, v in sums.items()}

    # ---- evaluation -----------------------------------------------------------------------------
    def eval_weights(self) -> contextlib.AbstractContextManager[bool]:
        """Inside: the networks hold the weights to validate and publish (a schedule-free optimizer's average;
        the training weights otherwise); yields whether any weights were moved. Re-entrant."""
        return evaluation_point(self.optimizers)

    @contextlib.contextmanager
    def validator(self, tile: int = 0, tile_pad: int | None = None) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
        """The function validation runs on each LR batch, at the weights of :meth:`eval_weights`: :meth:`test`
        (whole images) or, with ``tile`` > 0, the Upscaler's tiling (``val.tile``, ``val.tile_pad``)."""
        with self.eval_weights():
            if tile <= 0:
                yield self.test
                return
            from esrgan.inference.upscaler import Upscaler

            precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
            upscaler = Upscaler(self.eval_network(), device=self.device, tile=tile, tile_pad=tile_pad,
                                precision=precision, channels_last=self.channels_last)
            yield lambda lq: upscaler.upscale_tensor(lq.to(self.device))

    def eval_network(self) -> nn.Module:
        """The generator used for validation and as ``params_ema``: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.net_g

    @torch.no_grad()
    def test(self, lq: torch.Tensor) -> torch.Tensor:
        net = self.eval_network()
        was_training = net.training
        net.eval()
        h, w = lq.shape[-2:]
        s = self.opt.scale
        try:
            with self.eval_weights(), self.autocast():
                return net(self.to_input(pad_to_fit(lq, self.g_sizes))).float()[..., : h * s, : w * s]
        finally:
            net.train(was_training)

    # ---- saving / resuming ----------------------------------------------------------------------
    def network_files(self) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
        """``{"net_g": {"params": ..., "params_ema": ...}}`` (+ ``net_d``), ready for ``save_network``: the
        weights of :meth:`eval_weights`."""
        with self.eval_weights() as moved:
            files = self._network_files()
            if moved:  # the state dicts share the parameters' storage, which goes back to the training point
                files = {n: {k: {p: t.clone() for p, t in sd.items()} for k, sd in f.items()} for n, f in files.items()}
        return files

    def _network_files(self) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
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

    def __init__(self, opt: Options, device: torch.device, dist_info: dist_utils.DistInfo | None = None) -> None:
        from esrgan.loading import load_weights_into

        super().__init__(opt, device, dist_info)
        t = opt.train
        assert opt.network_d is not None and t.gan_opt is not None and t.optim_d is not None  # required at load
        self.net_d = self._prepare(build_network(opt.network_d.spec()))
        p = opt.path
        if p.pretrain_network_d:
            load_weights_into(
                self.net_d, p.pretrain_network_d, param_key=p.param_key_d, strict=p.strict_load_d, what="network_d"
            )
        # G's step calls the plain D (its weights are frozen there, nothing to synchronise) so
        # that DDP's reducer only ever sees D's own backward.
        self.net_d_train = self._wrap(self.net_d)
        # "relativistic" and "gp_weight" are the trainer's switches, not arguments of the criterion.
        self.relativistic = bool(t.gan_opt.relativistic)
        self.cri_gan = build_loss(t.gan_opt.spec()).to(device)
        # LDL: needs the EMA generator (required at load)
        self.artifacts = t.artifacts_opt
        self.cri_artifacts = self._loss(t.artifacts_opt)
        self.net_d_iters = t.net_d_iters
        self.net_d_init_iters = t.net_d_init_iters
        self.g_warmup_iter = t.g_warmup_iter
        self.gp_weight = t.gan_opt.gp_weight
        self.optimizer_d = build_optimizer(self.net_d.parameters(), t.optim_d)
        self.optimizers.append(self.optimizer_d)
        if t.scheduler is not None:
            self.schedulers.append(build_scheduler(self.optimizer_d, t.scheduler))

    def loss_targets(self, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The targets of the pixel, perceptual and GAN losses (Real-ESRGAN sharpens some of them)."""
        return gt, gt, gt

    def _set_d_grad(self, flag: bool) -> None:
        for p in self.net_d.parameters():
            p.requires_grad_(flag)

    def _generator_losses(
        self, output: torch.Tensor, gt: torch.Tensor, warming_up: bool, lq: torch.Tensor | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        pix_gt, percep_gt, gan_gt = self.loss_targets(gt)
        with self.autocast():
            out32 = output.float()
            g_losses = self._content_losses(out32, pix_gt, percep_gt, "l_g_", perceptual=not warming_up)
            if not warming_up and self.cri_artifacts is not None and lq is not None:
                g_losses["l_g_artifacts"] = self._artifact_loss(out32, gt, lq)
            if not warming_up:
                # The plain D: its weights are frozen here, there is nothing for DDP to synchronise.
                # D(real) only enters the relativistic loss.
                real_pred = self.net_d(gan_gt).detach() if self.relativistic else None
                fake_pred = self.net_d(output)
                g_losses["l_g_gan"] = g_adversarial_loss(
                    self.cri_gan, None if real_pred is None else real_pred.float(), fake_pred.float(),
                    self.relativistic,
                )
        return g_losses, gan_gt

    def _artifact_loss(self, output: torch.Tensor, gt: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
        """LDL (``train.artifacts_opt``): the pixel loss of the artifact-weighted output against the weighted GT, the
        map from the residuals of the output and of the EMA generator's output (against the unsharpened GT, as
        the LDL release does)."""
        assert self.ema is not None and self.cri_artifacts is not None and self.artifacts is not None
        with torch.no_grad():
            ema_output = self.ema.module(lq).float()
        weight = artifact_map(gt, output if self.artifacts.map_gradient else output.detach(), ema_output,
                              self.artifacts.ksize)
        return self.cri_artifacts(weight * output, weight * gt)

    def _discriminator_losses(
        self, fake: torch.Tensor, gan_gt: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
        """(D's loss terms, their sum, D's mean outputs on real and fake for the log)."""
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
        return d_losses, total_d, {
            "out_d_real": real_pred.detach().float().mean(), "out_d_fake": fake_pred.detach().float().mean()
        }

    def optimize_parameters(self, lq: Batch, gt: Batch, current_iter: int) -> dict[str, torch.Tensor]:
        micro = _micro_batches(lq, gt)
        k = len(micro)
        warming_up = current_iter <= self.g_warmup_iter
        optimize_g = warming_up or (current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters)
        sums: dict[str, torch.Tensor] = {}
        self._finite = None

        # ---- generator (gradients of the micro-batches accumulate, each loss divided by k)
        self._set_d_grad(False)
        self.optimizer_g.zero_grad(set_to_none=True)
        for_d: list[tuple[torch.Tensor, torch.Tensor]] = []
        for i, (lq_i, gt_i) in enumerate(micro):
            with self._no_sync(self.net_g_train, last=i == k - 1):
                # Without a G update, run G without a graph: DDP would otherwise wait for G's gradients.
                with torch.set_grad_enabled(optimize_g), self.autocast():
                    output = self.net_g_train(lq_i)
                gan_gt = self.loss_targets(gt_i)[2]
                if optimize_g:
                    g_losses, gan_gt = self._generator_losses(output, gt_i, warming_up, lq_i)
                    total_g = torch.stack([v.float() for v in g_losses.values()]).sum()
                    self._note_finite(total_g)
                    self.scaler.scale(total_g / k).backward()
                    _add(sums, g_losses)
            for_d.append((output.detach(), gan_gt))
        if optimize_g:
            self._step(self.optimizer_g, list(self.net_g.parameters()))

        # ---- discriminator
        if not warming_up:
            self._set_d_grad(True)
            self.optimizer_d.zero_grad(set_to_none=True)
            for i, (fake, gan_gt) in enumerate(for_d):
                with self._no_sync(self.net_d_train, last=i == k - 1):
                    d_losses, total_d, outputs = self._discriminator_losses(fake, gan_gt)
                    self._note_finite(total_d)
                    self.scaler.scale(total_d / k).backward()
                _add(sums, d_losses)
                _add(sums, outputs)
            self._step(self.optimizer_d, list(self.net_d.parameters()))
        self.scaler.update()

        if self.ema is not None:
            self.ema.update(self.net_g)
        return {name: v / k for name, v in sums.items()}

    def _network_files(self) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
        files = super()._network_files()
        files["net_d"] = {"params": self.net_d.state_dict()}
        return files

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["networks"]["net_d"] = self.net_d.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.net_d.load_state_dict(state["networks"]["net_d"])
