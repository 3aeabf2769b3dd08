"""The training loop, one for both stages (PSNR pre-training and GAN fine-tuning).

Reading order: :class:`Trainer` sets up the experiment folder, logging, data, model and
(when resuming) their states; :meth:`Trainer.run` is the loop. Per iteration:
data -> model step (G, then D) -> EMA -> schedulers -> log (every ``print_freq``) ->
validate (every ``val_freq``) -> checkpoint (every ``save_checkpoint_freq``).

Exact resume: the training state holds the networks, EMA, optimizers, schedulers, grad
scaler, iteration, epoch, the position inside the epoch, best metrics and every rank's RNG
states; the sampler (``esrgan.data.sampling.EpochSampler``) makes the remaining batches of the epoch a
pure function of (seed, epoch, position), so 10 + resume + 10 iterations equal 20.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from esrgan.training import dist as dist_utils
from esrgan.training import wandb_run
from esrgan.training.build import build_model
from esrgan.training.experiment import ExperimentPaths, archive_if_exists, latest_state, prune, timestamp
from esrgan.training.models import NonFiniteLossError, SRModel
from esrgan.training.rng import get_rng_state, seed_everything, set_rng_state
from esrgan.training.validation import BestTracker, metric_specs, validate_dataset
from esrgan.utils.atomic import DiskFullError, remove_stale_temporaries
from esrgan.utils.lock import ExperimentInUseError, ExperimentLock

if TYPE_CHECKING:
    from esrgan.options import Options

logger = logging.getLogger("esrgan.training")

STATE_FORMAT = "esrgan-training-state/1"
EXIT_OK = 0
EXIT_NONFINITE = 3
EXIT_NO_SPACE = 4


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def pick_device(num_gpu: int | str | None, dist_info: dist_utils.DistInfo) -> torch.device:
    """CUDA (this rank's GPU) when available and allowed (``num_gpu != 0``), else the CPU."""
    if num_gpu != 0 and torch.cuda.is_available():
        return torch.device("cuda", dist_info.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def check_inputs_exist(opt: Options) -> None:
    """Every file and folder the option file names must exist and be of the right kind (folder or file).

    The error names each wrong path with its key. Runs before the experiment folder is touched.
    """
    problems: list[str] = []

    def check(key: str, value: str | None, want_dir: bool) -> None:
        if not value:
            return
        path = Path(value)
        if not path.exists():
            problems.append(f"{key}: {value} not found")
        elif want_dir and not path.is_dir():
            problems.append(f"{key}: {value} is a file, expected a folder")
        elif not want_dir and path.is_dir():
            problems.append(f"{key}: {value} is a folder, expected a file")

    for phase, ds in opt.datasets.items():
        # Image folders and LMDBs (a folder holding data.mdb) alike are folders; lists are files.
        for key, value in ds.input_paths().items():
            check(f"datasets.{phase}.{key}", value, key.startswith("dataroot"))
    p = opt.path
    for key, value in (("pretrain_network_g", p.pretrain_network_g), ("pretrain_network_d", p.pretrain_network_d),
                       ("resume_state", p.resume_state)):
        check(f"path.{key}", value, False)
    if problems:
        hint = "see datasets/README.md for the data layout and the 'esrgan prepare' commands that build it"
        raise FileNotFoundError("; ".join(problems) + f" ({hint})")


class _RecordBuffer(logging.Handler):
    """Keeps the log records of the set-up, written to the log file once the experiment folder exists."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Trainer:
    """Everything one training run needs; ``Trainer(opt, ...).run()`` returns an exit code."""

    def __init__(
        self,
        opt: Options,
        *,
        dist_info: dist_utils.DistInfo | None = None,
        auto_resume: bool = False,
        interactive: bool | None = None,
    ) -> None:
        self.opt = opt
        self.dist_info = dist_info or dist_utils.get_dist_info()
        self.rank = self.dist_info.rank
        self.world_size = self.dist_info.world_size
        self.is_main = self.rank == 0
        self.device = pick_device(opt.num_gpu, self.dist_info)
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self._stop_signal: int | None = None

        if opt.train is None or opt.path.experiments_root is None or opt.manual_seed is None:
            raise ValueError("options not resolved for training: load them with load_options(..., is_train=True)")
        self.paths = ExperimentPaths.at(Path(opt.path.experiments_root))
        # Before the experiment folder is touched: a run that cannot start archives nothing.
        check_inputs_exist(opt)
        wandb_run.check_installed(opt)
        # One run per experiment folder (rank 0 holds the lock for the job); every rank learns the outcome.
        self._lock: ExperimentLock | None = None
        in_use = None
        if self.is_main:
            try:
                self._lock = ExperimentLock(self.paths.root).acquire()
            except ExperimentInUseError as exc:
                in_use = str(exc)
        in_use = dist_utils.broadcast_object(in_use)
        if in_use:
            raise ExperimentInUseError(in_use)
        try:
            self._set_up(auto_resume)
        except BaseException:
            self.release_lock()
            raise

    def release_lock(self) -> None:
        """Free the experiment folder for the next run (also done by :meth:`run` at its end)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _set_up(self, auto_resume: bool) -> None:
        """Read every input (data, networks, training state), then make the experiment folder.

        Any bad input fails here, before an earlier run's folder is archived: ``--auto-resume`` after a
        failed start still finds that run.
        """
        from esrgan.utils.logger import env_info, setup_logger

        opt = self.opt
        # ---- resume or fresh start (decided before touching the folder)
        resume_path = opt.path.resume_state
        if not resume_path and auto_resume:
            found = latest_state(self.paths.training_states)
            resume_path = str(found) if found else None
            if found is None and self.is_main:
                logging.getLogger("esrgan.training").info("--auto-resume: no training state yet, starting fresh")
        # Every rank resumes from rank 0's choice (a rank must not see the folder after rank 0 archived it).
        resume_path = dist_utils.broadcast_object(resume_path)
        self.resume_path = resume_path

        # Console now; the set-up's records go to the log file once the folder exists.
        setup_logger("esrgan", None, rank=self.rank)
        buffer = _RecordBuffer()
        logging.getLogger("esrgan").addHandler(buffer)
        try:
            logger.info("esrgan training: %s (%s), %s", opt.name, opt.model_type, env_info())
            logger.info("device %s, rank %d of %d", self.device, self.rank, self.world_size)
            self._build(resume_path)
        finally:
            logging.getLogger("esrgan").removeHandler(buffer)

        archived = None
        if self.is_main:
            if not resume_path:
                archived = archive_if_exists(self.paths.root)
            self.paths.make()
        dist_utils.barrier()

        self.log_file = self.paths.root / f"train_{timestamp()}.log"
        log = setup_logger("esrgan", self.log_file if self.is_main else None, rank=self.rank)
        for handler in log.handlers:
            if isinstance(handler, logging.FileHandler):
                for record in buffer.records:
                    handler.handle(record)
        if archived is not None:
            logger.warning("experiment folder %s existed: archived it as %s", self.paths.root, archived)
        if self.is_main:  # a run killed mid-save left its hidden temporary (we hold the folder's lock)
            remove_stale_temporaries(self.paths.root)
        if self.is_main:
            self._save_options()

        self.wandb = wandb_run.start(opt, self.paths.root) if self.is_main else None
        self.tb = None
        if self.is_main and opt.logger.use_tb_logger:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: after a resume, drop events the old run wrote past the resumed iteration.
            self.tb = SummaryWriter(str(self.paths.tb_logger), purge_step=self.start_iter + 1 if resume_path else None)

    def _build(self, resume_path: str | None) -> None:
        opt = self.opt
        # ---- seeds: identical on all ranks while building the networks (DDP broadcasts rank 0's
        # weights anyway, but the EMA copy is taken before wrapping), then per rank.
        # Rank 0's seed everywhere: a seed drawn per process (no manual_seed in the file, drawn at load)
        # would give every rank its own epoch order, and the ranks' shares would overlap.
        self.seed = int(dist_utils.broadcast_object(int(opt.manual_seed or 0)))
        seed_everything(self.seed)

        # ---- data
        self._build_data()

        # ---- model
        self.model: SRModel = build_model(opt, self.device, self.dist_info)
        seed_everything(self.seed + self.rank)

        # ---- loop state
        self.total_iter = opt.train.total_iter if opt.train is not None else 0
        self.start_iter = 0
        self.epoch = 0
        self.batches_in_epoch = 0
        self.best = BestTracker()
        if resume_path:
            self._resume(Path(resume_path))

    # ---- set-up --------------------------------------------------------------------------------
    def _save_options(self) -> None:
        import yaml

        from esrgan.utils.atomic import atomic_write_text

        text = yaml.safe_dump(self.opt.to_dict(), sort_keys=False, allow_unicode=True)
        atomic_write_text(self.paths.root / f"options_{timestamp()}.yml", text)

    def _build_data(self) -> None:
        from esrgan.data.build import build_dataset
        from esrgan.data.loader import build_dataloader

        opt = self.opt
        datasets = dict(opt.datasets)
        train_opt = datasets.get("train")
        if train_opt is None:
            raise ValueError("datasets.train: required for training")
        train_set = build_dataset(train_opt)
        self.train_opt = train_opt
        self.batch_size = int(train_opt.batch_size_per_gpu)
        self.train_loader = build_dataloader(
            train_set, train_opt, seed=self.seed, rank=self.rank, world_size=self.world_size,
            pin_memory=train_opt.pin_memory and self.device.type == "cuda",
        )  # fmt: skip
        self.sampler = self.train_loader.sampler
        self.accumulate = opt.train.accumulate_grad_batches if opt.train is not None else 1
        self.iters_per_epoch = self.sampler.num_samples // self.batch_size // self.accumulate
        self.train_set_len = len(train_set)
        logger.info(
            "training set %s: %d images x %d, %d iterations per epoch; batch %d per process, global batch %d"
            + (f" ({self.accumulate} batches per step)" if self.accumulate > 1 else ""),
            train_opt.name,
            len(train_set),
            train_opt.dataset_enlarge_ratio,
            self.iters_per_epoch,
            self.batch_size,
            self.batch_size * self.world_size * self.accumulate,
        )
        self.val_loaders: list[tuple[str, DataLoader]] = []
        if self.is_main:
            for phase, dopt in datasets.items():
                if dopt.phase != "val":  # val, val_1, val_2 ... (test_* sets are for test.py)
                    continue
                ds = build_dataset(dopt)
                self.val_loaders.append((dopt.name, build_dataloader(ds, dopt)))
                logger.info("validation set %s (%s): %d images", dopt.name, phase, len(ds))
        self.metrics = metric_specs(opt.val.metrics, opt.scale) if opt.val is not None else []

    def _resume(self, path: Path) -> None:
        from esrgan.checkpoint import load_checkpoint_file

        state = load_checkpoint_file(path)
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{path}: not an esrgan training state (format {state.get('format')!r})")
        if state.get("model_type") != self.opt.model_type:
            raise ValueError(
                f"{path}: saved by a {state.get('model_type')} run, but model_type is {self.opt.model_type}"
            )
        self.model.load_state_dict(state["model"])
        self.start_iter = int(state["iter"])
        self.epoch = int(state["epoch"])
        self.batches_in_epoch = int(state["batches_in_epoch"])
        self.best = BestTracker(state.get("best"))
        if int(state.get("seed", self.seed)) != self.seed:
            logger.warning("resuming with manual_seed %s; the state was saved with %s", self.seed, state.get("seed"))
        rngs = state.get("rng") or []
        if len(rngs) == self.world_size:
            set_rng_state(rngs[self.rank])
        else:
            logger.warning(
                "the training state holds RNG states of %d processes, this job has %d: "
                "reseeding instead (the run continues, but not bit-exactly)",
                len(rngs),
                self.world_size,
            )
            seed_everything(self.seed + self.rank + self.start_iter)
        rank_states = state.get("rank_states") or []
        if len(rank_states) == self.world_size:
            self.model.load_rank_state(rank_states[self.rank])
        elif self.model.rank_state() is not None:
            logger.warning(
                "the training state holds per-process model states (e.g. Real-ESRGAN's degradation queue) of %d "
                "processes, this job has %d: starting those afresh (the run continues, but not bit-exactly)",
                len(rank_states),
                self.world_size,
            )
        if state.get("batch_size", self.batch_size) * state.get("world_size", self.world_size) != (
            self.batch_size * self.world_size
        ):
            logger.warning("the global batch size changed since the state was saved; epoch positions are approximate")
        logger.info("resumed from %s: iteration %d, epoch %d", path, self.start_iter, self.epoch)

    # ---- checkpoints ---------------------------------------------------------------------------
    def save(self, current_iter: int) -> None:
        """Networks + training state at ``current_iter`` (all ranks call it; rank 0 writes)."""
        from esrgan.checkpoint import save_network, save_torch_atomic

        rngs = dist_utils.gather_objects(get_rng_state())
        # What each process keeps for itself besides its RNGs (Real-ESRGAN: the degradation's generators and queue).
        rank_states = dist_utils.gather_objects(self.model.rank_state())
        if not self.is_main:
            return
        for net_name, params in self.model.network_files().items():
            save_network(self.paths.models / f"{net_name}_{current_iter}.pth", params)
            save_network(self.paths.models / f"{net_name}_latest.pth", params)
        state = {
            "format": STATE_FORMAT,
            "model_type": self.opt.model_type,
            "iter": current_iter,
            "epoch": self.epoch,
            "batches_in_epoch": self.batches_in_epoch,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "seed": self.seed,
            "best": self.best.state_dict(),
            "rng": rngs,
            "rank_states": rank_states,
            "model": self.model.state_dict(),
        }
        save_torch_atomic(self.paths.training_states / f"{current_iter}.state", state)
        keep = self.opt.logger.keep_last
        if keep > 0:
            prune(self.paths.models, r"^net_g_(\d+)\.pth$", keep)
            prune(self.paths.models, r"^net_d_(\d+)\.pth$", keep)
            prune(self.paths.training_states, r"^(\d+)\.state$", keep)
        logger.info("saved models and training state at iteration %d", current_iter)

    # ---- validation ----------------------------------------------------------------------------
    def validate(self, current_iter: int) -> None:
        val_opt = self.opt.val
        if self.is_main and val_opt is not None and self.val_loaders and self.metrics:
            from esrgan.checkpoint import save_network

            save_img = val_opt.save_img
            for i, (name, loader) in enumerate(self.val_loaders):
                t0 = time.perf_counter()
                values, images = validate_dataset(
                    self.model.test,
                    loader,
                    self.metrics,
                    save_dir=self.paths.visualization / name if save_img else None,
                    iteration=current_iter,
                    max_images_out=3 if self.tb is not None else 0,
                    progress=val_opt.pbar and self.interactive,
                    desc=f"validation {name}",
                )
                parts = []
                for m in self.metrics:
                    value = values[m.name]
                    improved = self.best.update(name, m, value, current_iter)
                    best = self.best.best[name][m.name]
                    parts.append(f"{m.name}: {value:.4f} (best {best['val']:.4f} @ {best['iter']})")
                    if self.tb is not None:
                        self.tb.add_scalar(f"metrics/{name}/{m.name}", value, current_iter)
                    if self.wandb is not None:
                        self.wandb.log({f"metrics/{name}/{m.name}": value}, step=current_iter)
                    if improved:
                        suffix = m.name if i == 0 else f"{name}_{m.name}"
                        save_network(self.paths.models / f"net_g_best_{suffix}.pth",
                                     self.model.network_files()["net_g"])
                if self.tb is not None:
                    for img_name, img in images:
                        self.tb.add_image(f"images/{name}/{img_name}", img, current_iter)
                logger.info("validation %s @ iter %d: %s [%.1fs]", name, current_iter, ", ".join(parts),
                            time.perf_counter() - t0)
        dist_utils.barrier()

    # ---- signals -------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal is not None:
            # Second signal: the user means it.
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        self._stop_signal = signum

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, self._on_signal)
        return old

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        from esrgan.data.loader import build_prefetcher

        opt = self.opt
        print_freq = opt.logger.print_freq
        save_freq = opt.logger.save_checkpoint_freq
        val_freq = opt.val.val_freq if opt.val is not None else 0
        current_iter = self.start_iter
        logger.info("start training from iteration %d to %d", current_iter, self.total_iter)

        from tqdm import tqdm

        bar = tqdm(
            total=self.total_iter,
            initial=current_iter,
            unit="it",
            dynamic_ncols=True,
            disable=not (self.is_main and self.interactive),
        )
        old_handlers = self._install_signal_handlers()
        iter_times: deque[float] = deque(maxlen=50)
        loss_sums: dict[str, torch.Tensor] = {}
        loss_count = 0
        data_time_sum = iter_time_sum = 0.0
        exit_code = EXIT_OK
        pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # batches of the step being gathered
        try:
            while current_iter < self.total_iter:
                self.sampler.set_epoch(self.epoch, start=self.batches_in_epoch * self.batch_size)
                t_end = time.perf_counter()
                for batch in build_prefetcher(self.train_loader, self.train_opt, self.device):
                    self.batches_in_epoch += 1
                    pending.append(self.model.prepare_batch(batch))
                    if len(pending) < self.accumulate:
                        continue  # a step's batches may span an epoch's end: pending carries over
                    t_data = time.perf_counter()
                    current_iter += 1
                    if self.accumulate == 1:
                        (lq, gt), pending = pending[0], []
                    else:
                        (lq, gt), pending = [list(x) for x in zip(*pending, strict=True)], []
                    self.model.update_learning_rate(current_iter)
                    losses = self.model.optimize_parameters(lq, gt, current_iter)
                    self.model.step_schedulers()
                    t_step = time.perf_counter()
                    iter_times.append(t_step - t_end)
                    data_time_sum += t_data - t_end
                    iter_time_sum += t_step - t_end
                    for k, v in losses.items():
                        loss_sums[k] = loss_sums[k] + v if k in loss_sums else v.clone()
                    loss_count += 1
                    bar.update(1)

                    if current_iter % print_freq == 0 or current_iter == self.total_iter:
                        self._log(current_iter, loss_sums, loss_count, iter_time_sum, data_time_sum, iter_times)
                        loss_sums, loss_count, data_time_sum, iter_time_sum = {}, 0, 0.0, 0.0
                    if val_freq and current_iter % val_freq == 0:
                        self.validate(current_iter)
                    if save_freq and current_iter % save_freq == 0 and current_iter < self.total_iter:
                        self.save(current_iter)
                    if dist_utils.any_true(self._stop_signal is not None):
                        sig = self._stop_signal
                        name = signal.Signals(sig).name if sig else "a signal on another rank"
                        logger.warning("stopping on %s at iteration %d: saving a training state", name, current_iter)
                        self.save(current_iter)
                        logger.warning(
                            "state saved to %s; continue with --auto-resume",
                            self.paths.training_states / f"{current_iter}.state",
                        )
                        return 128 + (self._stop_signal or signal.SIGTERM)
                    if current_iter >= self.total_iter:
                        break
                    t_end = time.perf_counter()
                else:
                    self.epoch += 1
                    self.batches_in_epoch = 0
                    continue
                break
            if val_freq and current_iter % val_freq != 0:
                self.validate(current_iter)
            self.save(current_iter)
            logger.info("training finished at iteration %d; results in %s", current_iter, self.paths.root)
        except NonFiniteLossError as exc:
            logger.error(
                "%s; stopping without saving (the last good checkpoint stays in %s)", exc, self.paths.models
            )
            exit_code = EXIT_NONFINITE
        except DiskFullError as exc:
            logger.error("%s; earlier checkpoints are intact", exc)
            exit_code = EXIT_NO_SPACE
        finally:
            bar.close()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            if self.tb is not None:
                self.tb.close()
            if self.wandb is not None:
                self.wandb.finish(exit_code=exit_code)
            from esrgan.utils.logger import close_logger

            close_logger("esrgan")  # the run set it up; the log file is complete
            self.release_lock()
        return exit_code

    def _log(
        self,
        current_iter: int,
        loss_sums: dict[str, torch.Tensor],
        count: int,
        iter_time_sum: float,
        data_time_sum: float,
        recent: deque[float],
    ) -> None:
        means = dist_utils.all_reduce_mean({k: v / max(count, 1) for k, v in loss_sums.items()})
        if not self.is_main:
            return
        lrs = self.model.current_lr()
        time_per_iter = iter_time_sum / max(count, 1)
        data_time = data_time_sum / max(count, 1)
        avg_recent = sum(recent) / max(len(recent), 1)
        eta = avg_recent * (self.total_iter - current_iter)
        lr_text = ", ".join(f"{x:.3e}" for x in lrs)
        head = (
            f"[{self.opt.name}][epoch:{self.epoch:3d}, iter:{current_iter:8,d}, lr:({lr_text})]"
            f" [eta: {_fmt_time(eta)}, time (data): {time_per_iter:.3f} ({data_time:.3f})]"
        )
        body = " ".join(f"{k}: {v:.4e}" for k, v in means.items())
        logger.info("%s %s", head, body)
        if self.tb is not None:
            for k, v in means.items():
                if math.isfinite(v):
                    self.tb.add_scalar(f"losses/{k}", v, current_iter)
            names = ["g", "d"]
            for i, lr in enumerate(lrs):
                self.tb.add_scalar(f"lr/{names[i] if i < 2 else i}", lr, current_iter)
            self.tb.add_scalar("time/iter", time_per_iter, current_iter)
            self.tb.add_scalar("time/data", data_time, current_iter)
        if self.wandb is not None:
            names = ["g", "d"]
            scalars = {f"losses/{k}": v for k, v in means.items() if math.isfinite(v)}
            scalars.update({f"lr/{names[i] if i < 2 else i}": lr for i, lr in enumerate(lrs)})
            scalars.update({"time/iter": time_per_iter, "time/data": data_time})
            self.wandb.log(scalars, step=current_iter)


def train(opt: Options, *, auto_resume: bool = False, dist_info: dist_utils.DistInfo | None = None) -> int:
    """Run one training job described by ``opt`` (an ``esrgan.options.Options``); returns the exit code."""
    trainer = Trainer(opt, dist_info=dist_info, auto_resume=auto_resume)
    return trainer.run()


__all__ = ["EXIT_NONFINITE", "EXIT_NO_SPACE", "STATE_FORMAT", "Trainer", "pick_device", "train"]
