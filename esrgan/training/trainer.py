"""The training loop, one for both stages (PSNR pre-training and GAN fine-tuning).

Reading order: :class:`Trainer` sets up the experiment folder, logging, data, model and
(when resuming) their states; :meth:`Trainer.run` is the loop. Per iteration:
the step's batches -> model step (G, then D) -> EMA -> schedulers -> log (every ``print_freq``) ->
validate (every ``val_freq``) -> checkpoint (every ``save_checkpoint_freq``). The batches come from a
:class:`~esrgan.training.steps.StepStream`, the numbers go through one
:class:`~esrgan.training.run_log.RunLog` (TensorBoard and W&B), the files through one
:class:`~esrgan.training.checkpoints.CheckpointKeeper`; the checks before the folder is touched are in
``preflight.py``.

Exact resume: the training state holds the networks, EMA, optimizers, schedulers, grad
scaler, iteration, epoch, the position inside the epoch, best metrics and every rank's RNG
states; the sampler (``esrgan.data.sampling.EpochSampler``) makes the remaining batches of the epoch a
pure function of (seed, epoch, position), so 10 + resume + 10 iterations equal 20. A stop between the
micro-batches of one step (``accumulate_grad_batches``) saves the state of the last whole step, its
position rewound to the step's first batch.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from esrgan.training import dist as dist_utils
from esrgan.training import wandb_run
from esrgan.training.build import build_model
from esrgan.training.checkpoints import STATE_FORMAT, CheckpointKeeper, load_state
from esrgan.training.experiment import ExperimentPaths, archive_if_exists, latest_state, timestamp
from esrgan.training.models import NonFiniteLossError, SRModel
from esrgan.training.preflight import check_inputs_exist, pick_device, restore_kernels, set_kernels
from esrgan.training.rng import seed_everything, set_rng_state
from esrgan.training.run_log import LossMeter, RunLog
from esrgan.training.selection import SELECTION_FILE, Selection, write_selection
from esrgan.training.steps import Position, StepStream, StopMidStep
from esrgan.training.validation import BestTracker, check_validation_images, metric_specs, validate_dataset
from esrgan.utils.atomic import DiskFullError, remove_stale_temporaries
from esrgan.utils.hardware import synchronize
from esrgan.utils.lock import ExperimentInUseError, ExperimentLock

if TYPE_CHECKING:
    from esrgan.options import Options

logger = logging.getLogger("esrgan.training")

EXIT_OK = 0
EXIT_NONFINITE = 3
EXIT_NO_SPACE = 4


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


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
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self._stop_signal: int | None = None
        self.paths = ExperimentPaths.of(opt.path)
        # Before the experiment folder is touched: a run that cannot start archives nothing.
        check_inputs_exist(opt)
        wandb_run.check_ready(opt)
        # One run per experiment folder (rank 0 holds the lock for the job); every rank learns the outcome.
        self._lock: ExperimentLock | None = None
        self._kernels: dict[str, Any] | None = None  # the settings set_kernels replaced
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
        """Free the experiment folder for the next run and put back the process's kernel settings (also done by
        :meth:`run` at its end)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._kernels is not None:
            restore_kernels(self._kernels)
            self._kernels = None

    def _set_up(self, auto_resume: bool) -> None:
        """Read every input (data, networks, training state), then make the experiment folder.

        Any bad input fails here, before an earlier run's folder is archived: ``--auto-resume`` after a
        failed start still finds that run.
        """
        from esrgan.options import save_options
        from esrgan.utils.logger import env_info, setup_logger

        opt = self.opt
        # ---- resume or fresh start (decided before touching the folder)
        resume_path = opt.path.resume_state
        if not resume_path and auto_resume:
            found = latest_state(self.paths.training_states)
            resume_path = str(found) if found else None
            if found is None and self.is_main:
                logger.info("--auto-resume: no training state yet, starting fresh")
        # Every rank resumes from rank 0's choice (a rank must not see the folder after rank 0 archived it).
        resume_path = dist_utils.broadcast_object(resume_path)
        self.resume_path = resume_path

        # Console now; the set-up's records go to the log file once the folder exists.
        setup_logger("esrgan", None, rank=self.rank)
        buffer = _RecordBuffer()
        logging.getLogger("esrgan").addHandler(buffer)
        try:
            logger.info("esrgan training: %s (%s), %s", opt.name, opt.model_type, env_info())
            self.device = pick_device(opt.num_gpu, self.dist_info)
            logger.info("device %s, rank %d of %d", self.device, self.rank, self.world_size)
            self._kernels = set_kernels(self.device, opt.train.deterministic)
            self._build(resume_path)
        finally:
            logging.getLogger("esrgan").removeHandler(buffer)

        def make_folder() -> Path | None:
            archived = None if resume_path else archive_if_exists(self.paths.root)
            self.paths.make()
            return archived

        # Rank 0 writes; a failure there (a full disk) stops every rank with its message.
        archived = dist_utils.on_main(make_folder, self.is_main)

        self.log_file = Path(opt.path.log) / f"train_{timestamp()}.log"
        log = setup_logger("esrgan", self.log_file if self.is_main else None, rank=self.rank)
        for handler in log.handlers:
            if isinstance(handler, logging.FileHandler):
                for record in buffer.records:
                    handler.handle(record)
        if archived is not None:
            logger.warning("experiment folder %s existed: archived it as %s", self.paths.root, archived)

        def tidy_and_record() -> None:
            remove_stale_temporaries(self.paths.root)  # a run killed mid-save left it (we hold the folder's lock)
            save_options(opt, self.paths.root / f"options_{timestamp()}.yml")

        dist_utils.on_main(tidy_and_record, self.is_main)
        self.keeper = CheckpointKeeper(self.paths, opt.logger.keep_last)
        self.log = RunLog(opt, self.paths.root, self.paths.tb_logger, enabled=self.is_main,
                          purge_step=self.start_iter + 1 if resume_path else None)

    def _build(self, resume_path: str | None) -> None:
        opt = self.opt
        # ---- seeds: identical on all ranks while building the networks (DDP broadcasts rank 0's
        # weights anyway, but the EMA copy is taken before wrapping), then per rank.
        # Rank 0's seed everywhere: a seed drawn per process (no manual_seed in the file, drawn at load)
        # would give every rank its own epoch order, and the ranks' shares would overlap.
        self.seed = int(dist_utils.broadcast_object(opt.manual_seed))
        seed_everything(self.seed)
        self._build_data()
        self.model: SRModel = build_model(opt, self.device, self.dist_info)
        if self.is_main:
            logger.info("%s", self.model.precision.note)
        seed_everything(self.seed + self.rank)

        # ---- loop state
        self.total_iter = opt.train.total_iter
        self.start_iter = 0
        self.train_seconds = 0.0  # the loop's wall time so far, summed over resumes (train.time_budget_minutes)
        self.best = BestTracker()
        criterion = opt.val.criterion() if opt.val is not None else None  # val.select, checked at load
        first_val = next(iter(opt.datasets_of("val").values()), None)
        self.selection = Selection(criterion, first_val.name) if criterion and first_val is not None else None
        if resume_path:
            self._resume(Path(resume_path))

    # ---- set-up --------------------------------------------------------------------------------
    def _build_data(self) -> None:
        from esrgan.data.build import build_dataset
        from esrgan.data.loader import build_dataloader

        opt = self.opt
        train_opt = opt.datasets["train"]  # required at load
        train_set = build_dataset(train_opt)
        self.train_opt = train_opt
        self.batch_size = train_opt.batch_size_per_gpu
        self.train_loader = build_dataloader(
            train_set, train_opt, seed=self.seed, rank=self.rank, world_size=self.world_size,
            pin_memory=train_opt.pin_memory and self.device.type == "cuda",
        )  # fmt: skip
        self.accumulate = opt.train.accumulate_grad_batches
        self.stream = StepStream(self.train_loader, train_opt, self.device, self.accumulate,
                                 lambda: self._stop_requested())
        num_samples = self.stream.sampler.num_samples
        batches = num_samples // self.batch_size
        if self.accumulate > batches:
            # A step would span more than an epoch: "0 iterations per epoch", and a run that never logs.
            raise ValueError(
                f"train.accumulate_grad_batches: {self.accumulate} is more than the {batches} batches of an epoch "
                f"of datasets.train ({num_samples} images per process / batch_size_per_gpu "
                f"{self.batch_size}); use at most {batches}"
            )
        self.iters_per_epoch = batches // self.accumulate
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
        self.metrics = metric_specs(opt.val.metrics) if opt.val is not None else []
        self.val_loaders: list[tuple[str, DataLoader]] = []
        if self.is_main:
            for phase, dopt in opt.datasets_of("val").items():  # val, val_1, ... (test_* sets are for test.py)
                ds = build_dataset(dopt)
                check_validation_images(dopt.name, ds, self.metrics)
                self.val_loaders.append((dopt.name, build_dataloader(ds, dopt)))
                logger.info("validation set %s (%s): %d images", dopt.name, phase, len(ds))

    def _resume(self, path: Path) -> None:
        state = load_state(path, self.opt.model_type)
        self.model.load_state_dict(state["model"])
        self.start_iter = int(state["iter"])
        self.stream.epoch = int(state["epoch"])
        self.stream.batches_in_epoch = int(state["batches_in_epoch"])
        self.best = BestTracker(state.get("best"))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        if self.selection is not None:
            self.selection.load_state_dict(state.get("selection"))
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
        logger.info("resumed from %s: iteration %d, epoch %d", path, self.start_iter, self.stream.epoch)

    # ---- checkpoints ---------------------------------------------------------------------------
    def save(self, current_iter: int, at: Position | None = None) -> None:
        """Networks + training state at ``current_iter`` (all ranks call it; rank 0 writes).

        ``at``: the data position to resume from when it is not the current one (a stop mid-step).
        """
        at = at or self.stream.position()
        rngs = dist_utils.gather_objects(at.rng)
        # What each process keeps for itself besides its RNGs (Real-ESRGAN: the degradation's generators and queue).
        rank_states = dist_utils.gather_objects(self.model.rank_state())
        # Rank 0 writes; if that fails (a full disk), every rank raises the same error here.
        dist_utils.on_main(lambda: self.keeper.save(current_iter, self.model.network_files(), {
            "model_type": self.opt.model_type,
            "epoch": at.epoch,
            "batches_in_epoch": at.batches_in_epoch,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "seed": self.seed,
            "best": self.best.state_dict(),
            "train_seconds": self.train_seconds,
            "selection": None if self.selection is None else self.selection.state_dict(),
            "rng": rngs,
            "rank_states": rank_states,
            "model": self.model.state_dict(),
        }), self.is_main)

    # ---- validation ----------------------------------------------------------------------------
    def validate(self, current_iter: int) -> None:
        """Validation on rank 0 (the others wait); an error there (a full disk saving the best) stops every rank."""
        dist_utils.on_main(lambda: self._validate(current_iter), self.is_main)

    def _validate(self, current_iter: int) -> None:
        val_opt = self.opt.val
        if val_opt is not None and self.val_loaders and self.metrics:
            with self.model.validator(val_opt.tile, val_opt.tile_pad) as test_fn:
                self._validate_sets(current_iter, val_opt, test_fn)

    def _validate_sets(self, current_iter: int, val_opt: Any, test_fn: Any) -> None:
        """Score every validation set with ``test_fn``: log, track the best values, save the best weights."""
        for i, (name, loader) in enumerate(self.val_loaders):
            t0 = time.perf_counter()
            values, images = validate_dataset(
                test_fn,
                loader,
                self.metrics,
                save_dir=self.paths.visualization / name if val_opt.save_img else None,
                iteration=current_iter,
                max_images_out=3 if self.log.wants_images else 0,
                progress=val_opt.pbar and self.interactive,
                desc=f"validation {name}",
            )
            if i == 0 and self.selection is not None:
                if self.selection.update(current_iter, values):
                    self.keeper.save_selected(self.model.network_files()["net_g"])
                write_selection(self.paths.root / SELECTION_FILE, self.selection)
            parts = []
            for m in self.metrics:
                value = values[m.name]
                if self.best.update(name, m, value, current_iter):
                    self.keeper.save_best(m.name if i == 0 else f"{name}_{m.name}",
                                          self.model.network_files()["net_g"])
                best = self.best.best[name][m.name]
                parts.append(f"{m.name}: {value:.4f} (best {best['val']:.4f} @ {best['iter']})")
            self.log.scalars({f"metrics/{name}/{m.name}": values[m.name] for m in self.metrics}, current_iter)
            self.log.images({f"images/{name}/{img_name}": img for img_name, img in images}, current_iter)
            logger.info("validation %s @ iter %d: %s [%.1fs]", name, current_iter, ", ".join(parts),
                        time.perf_counter() - t0)

    def _score_the_start(self) -> None:
        """``val.select``'s reference: the first validation set scored with the starting generator on rank 0 (no
        best values recorded, nothing saved but selection.json)."""
        if self.selection is not None and self.selection.needs_reference:
            dist_utils.on_main(self._score_reference, self.is_main)

    def _score_reference(self) -> None:
        val_opt = self.opt.val
        if self.selection is None or not self.val_loaders or val_opt is None:
            return
        with self.model.validator(val_opt.tile, val_opt.tile_pad) as test_fn:
            values, _ = validate_dataset(test_fn, self.val_loaders[0][1], self.metrics, save_dir=None, iteration=0,
                                         progress=val_opt.pbar and self.interactive, desc="the PSNR model")
        self.selection.set_reference(values)
        write_selection(self.paths.root / SELECTION_FILE, self.selection)

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

    def _stop_requested(self) -> bool:
        """A stop signal on any rank (every rank calls this at the same points, so none is left waiting)."""
        return dist_utils.any_true(self._stop_signal is not None)

    def _stop(self, current_iter: int, at: Position | None) -> int:
        sig = self._stop_signal
        name = signal.Signals(sig).name if sig else "a signal on another rank"
        where = "" if at is None else " (between the micro-batches of the next step, which is left out)"
        logger.warning("stopping on %s at iteration %d%s: saving a training state", name, current_iter, where)
        self.save(current_iter, at)
        logger.warning("state saved to %s; continue with --auto-resume", self.keeper.state_path(current_iter))
        return 128 + (sig or signal.SIGTERM)

    # ---- the loop ------------------------------------------------------------------------------
    def _train_step(self, batches: list[Mapping[str, Any]], current_iter: int) -> dict[str, torch.Tensor]:
        """One optimizer step on the step's batches (accumulated when there are several)."""
        prepared = [self.model.prepare_batch(b) for b in batches]  # Real-ESRGAN degrades here, in order
        if len(prepared) == 1:
            lq, gt = prepared[0]
        else:
            lq, gt = (list(x) for x in zip(*prepared, strict=True))
        self.model.update_learning_rate(current_iter)
        losses = self.model.optimize_parameters(lq, gt, current_iter)
        self.model.step_schedulers()
        return losses

    def run(self) -> int:
        from tqdm import tqdm

        opt = self.opt
        print_freq, save_freq = opt.logger.print_freq, opt.logger.save_checkpoint_freq
        val_freq = opt.val.val_freq if opt.val is not None else 0
        budget_s = opt.train.time_budget_minutes * 60
        current_iter = self.start_iter
        logger.info("start training from iteration %d to %d", current_iter, self.total_iter)
        if budget_s:
            logger.info("time budget: %s of training, %s spent", _fmt_time(budget_s), _fmt_time(self.train_seconds))
        t_start, spent_before = time.perf_counter(), self.train_seconds
        bar = tqdm(total=self.total_iter, initial=current_iter, unit="it", dynamic_ncols=True,
                   disable=not (self.is_main and self.interactive))
        old_handlers = self._install_signal_handlers()
        meter = LossMeter()
        exit_code = EXIT_OK
        try:
            self._score_the_start()
            t_end = time.perf_counter()
            for batches in self.stream:
                t_data = time.perf_counter()
                current_iter += 1
                losses = self._train_step(batches, current_iter)
                synchronize(self.device)  # the step's time is the device's, not what queueing it took
                t_step = time.perf_counter()
                self.train_seconds = spent_before + (t_step - t_start)
                # One collective, one read per iteration: a NaN/Inf loss, a stop signal or a spent time budget
                # on any rank.
                nonfinite, stop, out_of_time = dist_utils.any_of(
                    ~self.model.step_is_finite(), self._stop_signal is not None,
                    bool(budget_s) and self.train_seconds >= budget_s)
                if nonfinite:
                    raise NonFiniteLossError(current_iter, {k: float(v) for k, v in losses.items()})
                meter.add(losses, t_data - t_end, t_step - t_end)
                bar.update(1)
                if current_iter % print_freq == 0 or current_iter == self.total_iter:
                    self._log(current_iter, meter)
                if val_freq and current_iter % val_freq == 0:
                    self.validate(current_iter)
                if save_freq and current_iter % save_freq == 0 and current_iter < self.total_iter and not out_of_time:
                    self.save(current_iter)
                self.train_seconds = spent_before + (time.perf_counter() - t_start)
                if stop:
                    return self._stop(current_iter, None)
                if out_of_time:
                    logger.info("time budget of %s spent at iteration %d", _fmt_time(budget_s), current_iter)
                    break
                if current_iter >= self.total_iter:
                    break
                t_end = time.perf_counter()
            if val_freq and current_iter % val_freq != 0:
                self.validate(current_iter)
            self.train_seconds = spent_before + (time.perf_counter() - t_start)
            self.save(current_iter)
            logger.info("training finished at iteration %d; results in %s", current_iter, self.paths.root)
        except StopMidStep as stop:
            return self._stop(current_iter, stop.position)
        except NonFiniteLossError as exc:
            logger.error("%s; stopping without saving (the last good checkpoint stays in %s)", exc, self.paths.models)
            exit_code = EXIT_NONFINITE
        except DiskFullError as exc:
            logger.error("%s; earlier checkpoints are intact", exc)
            exit_code = EXIT_NO_SPACE
        finally:
            bar.close()
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            self.log.close(exit_code)
            from esrgan.utils.logger import close_logger

            close_logger("esrgan")  # the run set it up; the log file is complete
            self.release_lock()
        return exit_code

    def _log(self, current_iter: int, meter: LossMeter) -> None:
        count = max(meter.count, 1)
        means = dist_utils.all_reduce_mean({k: v / count for k, v in meter.sums.items()})
        time_per_iter, data_time = meter.iter_time / count, meter.data_time / count
        meter.reset()
        if not self.is_main:
            return
        lrs = self.model.current_lr()
        eta = sum(meter.recent) / max(len(meter.recent), 1) * (self.total_iter - current_iter)
        lr_text = ", ".join(f"{x:.3e}" for x in lrs)
        head = (
            f"[{self.opt.name}][epoch:{self.stream.epoch:3d}, iter:{current_iter:8,d}, lr:({lr_text})]"
            f" [eta: {_fmt_time(eta)}, time (data): {time_per_iter:.3f} ({data_time:.3f})]"
        )
        logger.info("%s %s", head, " ".join(f"{k}: {v:.4e}" for k, v in means.items()))
        names = ["g", "d"]
        self.log.scalars({
            **{f"losses/{k}": v for k, v in means.items()},
            **{f"lr/{names[i] if i < 2 else i}": lr for i, lr in enumerate(lrs)},
            "time/iter": time_per_iter,
            "time/data": data_time,
        }, current_iter)


def train(opt: Options, *, auto_resume: bool = False, dist_info: dist_utils.DistInfo | None = None) -> int:
    """Run one training job described by ``opt`` (an ``esrgan.options.Options``); returns the exit code."""
    trainer = Trainer(opt, dist_info=dist_info, auto_resume=auto_resume)
    return trainer.run()


__all__ = ["EXIT_NONFINITE", "EXIT_NO_SPACE", "STATE_FORMAT", "Trainer", "train"]
