"""Distributed training with torchrun on the CPU (gloo): equality with one process, failing ranks, SLURM env."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from esrgan.training.dist import _slurm_master_addr, env_for_slurm, init_dist

REPO = Path(__file__).resolve().parents[1]
K = 4  # iterations

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch

    from esrgan.options import options_from_dict
    from esrgan.training.dist import init_dist
    from tiny_training import tiny_options_dict
    from esrgan.training.trainer import Trainer

    torch.set_num_threads(1)
    data, exp, out, fail_rank = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    gan = sys.argv[5] == "gan"
    resume_at = int(sys.argv[6])
    if sys.argv[5] == "cli":
        # the user's command: torchrun ... train.py -opt FILE --launcher pytorch
        import os

        import yaml

        from esrgan.commands.train import main
        from esrgan.training.models import SRModel

        rank = int(os.environ["RANK"])
        opt_file = out / f"opt_rank{{rank}}.yml"
        opt_file.write_text(yaml.safe_dump(tiny_options_dict(data, exp, total_iter={K}, batch_size=1)))
        if rank == fail_rank:
            step = SRModel.optimize_parameters

            def failing(self, lq, gt, it):
                if it == 2:
                    raise RuntimeError(f"boom on rank {{rank}} at iteration {{it}}")
                return step(self, lq, gt, it)

            SRModel.optimize_parameters = failing
        sys.exit(main(["-opt", str(opt_file), "--launcher", "pytorch", "--set", "val.val_freq=0"]))
    info = init_dist("pytorch")
    if sys.argv[5] == "accumulate":
        # 2 micro-batches of 1 image per step on each rank: DDP's all-reduce runs once per step (no_sync)
        import json

        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        opt = options_from_dict(tiny_options_dict(data, exp, total_iter={K}, batch_size=1),
                                ["val.val_freq=0", "train.accumulate_grad_batches=2"])
        trainer = Trainer(opt, dist_info=info, interactive=False)
        reductions = []

        def counting_hook(state, bucket):
            reductions.append(bucket.index())
            return allreduce_hook(state, bucket)

        trainer.model.net_g_train.register_comm_hook(None, counting_hook)
        code = trainer.run()
        torch.save(trainer.model.net_g.state_dict(), out / f"rank{{info.rank}}.pth")
        (out / f"reductions{{info.rank}}.json").write_text(json.dumps(reductions))
        sys.exit(code)
    raw = tiny_options_dict(data, exp, total_iter={K}, batch_size=1, gan=gan)
    # GAN: the first iteration trains D only (G runs without a graph under DDP)
    overrides = ["val.val_freq=0", "train.net_d_init_iters=1"] if gan else ["val.val_freq=0"]
    if resume_at:
        # stop at resume_at (the run saves its state), then go on to K from that state with --auto-resume
        first = Trainer(options_from_dict(raw, [*overrides, f"train.total_iter={resume_at}"]), dist_info=info,
                        interactive=False)
        assert first.run() == 0
    trainer = Trainer(options_from_dict(raw, overrides), dist_info=info, interactive=False,
                      auto_resume=bool(resume_at))
    assert trainer.start_iter == resume_at, trainer.start_iter
    if info.rank == fail_rank:
        step = trainer.model.optimize_parameters

        def failing(lq, gt, it):
            if it == 2:
                raise RuntimeError(f"boom on rank {{info.rank}} at iteration {{it}}")
            return step(lq, gt, it)

        trainer.model.optimize_parameters = failing
    code = trainer.run()
    torch.save(trainer.model.net_g.state_dict(), out / f"rank{{info.rank}}.pth")
    torch.save(trainer.model.ema.state_dict(), out / f"rank{{info.rank}}_ema.pth")
    if gan:
        torch.save(trainer.model.net_d.state_dict(), out / f"rank{{info.rank}}_d.pth")
    sys.exit(code)
    """
).replace("{K}", str(K))


def _torchrun(
    tmp_path: Path, data_root: Path, fail_rank: int, timeout: float, stage: str = "psnr", resume_at: int = 0
) -> subprocess.CompletedProcess:
    script = tmp_path / "child.py"
    script.write_text(CHILD.replace("{{", "{").replace("}}", "}"))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(script), str(data_root), str(tmp_path / "exp"), str(out), str(fail_rank), stage, str(resume_at),
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)


def _one_process(data_root: Path, exp: Path, batch_size: int):
    """The same K iterations in one process (one thread, as each rank has), for comparison."""
    from tiny_training import tiny_options_dict

    from esrgan.options import options_from_dict
    from esrgan.training.trainer import Trainer

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        opt = options_from_dict(tiny_options_dict(data_root, exp, total_iter=K, batch_size=batch_size),
                                ["val.val_freq=0"])
        trainer = Trainer(opt, interactive=False)
        assert trainer.run() == 0
    finally:
        torch.set_num_threads(n)
    return trainer


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_training import make_tiny_data

    return make_tiny_data(tmp_path_factory.mktemp("ddpdata"))


@pytest.mark.slow
def test_two_ranks_agree_and_equal_one_process_with_the_same_global_batch(data_root: Path, tmp_path: Path) -> None:
    # The 2-process job runs K/2 iterations, stops, and resumes with --auto-resume for the rest: so this
    # also proves distributed resume (every rank restores its own RNG state) against a straight run.
    proc = _torchrun(tmp_path, data_root, fail_rank=-1, timeout=240, resume_at=K // 2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "reseeding instead" not in proc.stderr  # both ranks found their own RNG states in the state
    logs = "".join(p.read_text() for p in (tmp_path / "exp" / "tiny").glob("train_*.log"))
    assert f"resumed from {tmp_path / 'exp' / 'tiny' / 'training_states' / f'{K // 2}.state'}" in logs
    # only rank 0 writes the log file (rank 1's own lines do not reach it)
    assert "rank 0 of 2" in logs and "rank 1 of 2" not in logs
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == ["tiny"]  # resumed in place, nothing archived
    out = tmp_path / "out"
    r0 = torch.load(out / "rank0.pth", weights_only=True)
    r1 = torch.load(out / "rank1.pth", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    assert "global batch 2" in proc.stderr

    # One process, batch 2 = the global batch: same samples, same augmentations (per-sample seeds).
    trainer = _one_process(data_root, tmp_path / "single", batch_size=2)
    single = trainer.model.net_g.state_dict()
    moved = 0.0
    for k in r0:
        torch.testing.assert_close(r0[k], single[k], rtol=0, atol=1e-5, msg=k)
        moved = max(moved, (single[k] - trainer.model.ema.state_dict()[k]).abs().max().item())
    assert moved > 1e-5  # the weights did train (the comparison is not between two initialisations)
    ema0 = torch.load(out / "rank0_ema.pth", weights_only=True)
    for k in ema0:
        torch.testing.assert_close(ema0[k], trainer.model.ema.state_dict()[k], rtol=0, atol=1e-5, msg=k)
    # rank 0 wrote the checkpoint, and it holds rank 0's weights
    from esrgan.checkpoint import load_checkpoint_file

    saved = load_checkpoint_file(tmp_path / "exp" / "tiny" / "models" / f"net_g_{K}.pth")["params"]
    for k in r0:
        assert torch.equal(saved[k], r0[k]), k


@pytest.mark.slow
def test_accumulated_micro_batches_reduce_gradients_once_per_step(data_root: Path, tmp_path: Path) -> None:
    import json

    proc = _torchrun(tmp_path, data_root, fail_rank=-1, timeout=240, stage="accumulate")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "out"
    # the tiny generator's gradients fit one DDP bucket: one all-reduce per step, not one per micro-batch
    for rank in (0, 1):
        assert json.loads((out / f"reductions{rank}.json").read_text()) == [0] * K
    r0 = torch.load(out / "rank0.pth", weights_only=True)
    r1 = torch.load(out / "rank1.pth", weights_only=True)
    # and the step is still the global batch's: 2 ranks x 2 micro-batches of 1 = one process with a batch of 4
    single = _one_process(data_root, tmp_path / "single", batch_size=4).model.net_g.state_dict()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
        torch.testing.assert_close(r0[k], single[k], rtol=0, atol=1e-5, msg=k)


@pytest.mark.slow
def test_gan_stage_ranks_hold_identical_generator_and_discriminator(data_root: Path, tmp_path: Path) -> None:
    proc = _torchrun(tmp_path, data_root, fail_rank=-1, timeout=240, stage="gan")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "out"
    for suffix in ("", "_d"):
        r0 = torch.load(out / f"rank0{suffix}.pth", weights_only=True)
        r1 = torch.load(out / f"rank1{suffix}.pth", weights_only=True)
        for k in r0:
            if k.endswith(("weight_u", "weight_v")):
                continue  # spectral-norm power-iteration vectors: per-rank state, not weights
            assert torch.equal(r0[k], r1[k]), (suffix, k)
    assert (tmp_path / "exp" / "tiny" / "models" / f"net_d_{K}.pth").is_file()


@pytest.mark.slow
def test_an_exception_on_rank_1_brings_the_job_down_with_the_error(data_root: Path, tmp_path: Path) -> None:
    # through the CLI, as a user runs it: torchrun ... train.py -opt FILE --launcher pytorch
    proc = _torchrun(tmp_path, data_root, fail_rank=1, timeout=240, stage="cli")
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "boom on rank 1 at iteration 2" in text
    assert "global batch 2" in text  # the CLI did start a 2-process job
    models = tmp_path / "exp" / "tiny" / "models"
    assert not list(models.glob(f"net_g_{K}.pth"))  # rank 0 did not finish as if nothing happened


def test_slurm_variables_become_env_init(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODELIST": "gpu[07-08,11]"}
    monkeypatch.setenv("PATH", "")  # no scontrol: the node list is expanded by hand
    got = env_for_slurm(env, default_port=29612)
    assert got == {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "gpu07",
        "MASTER_PORT": "29612",
    }
    assert _slurm_master_addr("nodeA,nodeB") == "nodeA"
    assert env_for_slurm({**env, "MASTER_ADDR": "head", "MASTER_PORT": "1234"})["MASTER_ADDR"] == "head"


def test_launchers_fail_clearly_outside_their_launch_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match=r"RANK is not set.*torchrun"):
        init_dist("pytorch")
    with pytest.raises(RuntimeError, match=r"SLURM_PROCID is not set.*srun"):
        init_dist("slurm")
    with pytest.raises(ValueError, match="unknown launcher 'mpi'"):
        init_dist("mpi")
    assert init_dist("none").world_size == 1


SAVE_FAILS = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch

    from esrgan.options import options_from_dict
    from esrgan.training.checkpoints import CheckpointKeeper
    from esrgan.training.dist import init_dist
    from esrgan.training.trainer import Trainer
    from esrgan.utils.atomic import DiskFullError
    from tiny_training import tiny_options_dict

    torch.set_num_threads(1)
    data, exp = Path(sys.argv[1]), Path(sys.argv[2])
    info = init_dist("pytorch", timeout_s=600)
    if info.rank == 0:
        def full(self, iteration, networks, state):
            raise DiskFullError(self.paths.models, f"net_g_{iteration}.pth")

        CheckpointKeeper.save = full
    opt = options_from_dict(tiny_options_dict(data, exp, total_iter=6, batch_size=1),
                            ["val.val_freq=0", "logger.save_checkpoint_freq=2"])
    sys.exit(Trainer(opt, dist_info=info, interactive=False).run())
    """
)


@pytest.mark.slow
def test_a_full_disk_on_rank_0_stops_every_rank_with_its_message(data_root: Path, tmp_path: Path) -> None:
    # Two processes as srun starts them without --kill-on-bad-exit: nothing tears rank 1 down when rank 0 stops,
    # so before the fix it waited in the next all-reduce until the process group's timeout.
    import socket

    script = tmp_path / "child.py"
    script.write_text(SAVE_FAILS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
        procs.append(subprocess.Popen([sys.executable, str(script), str(data_root), str(tmp_path / "exp")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path))
    try:
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    from esrgan.training.trainer import EXIT_NO_SPACE

    message = f"no space left on {tmp_path / 'exp' / 'tiny' / 'models'} while saving net_g_2.pth; earlier"
    for rank, (proc, (_, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == EXIT_NO_SPACE, (rank, err[-2000:])
        assert message in err and "Traceback" not in err, (rank, err[-2000:])


COUNT_COLLECTIVES = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    import torch
    import torch.distributed as dist

    from esrgan.options import options_from_dict
    from esrgan.training.dist import init_dist
    from esrgan.training.trainer import Trainer
    from tiny_training import tiny_options_dict

    torch.set_num_threads(1)
    data, exp, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    info = init_dist("pytorch")
    opt = options_from_dict(tiny_options_dict(data, exp, total_iter={K}, batch_size=1, gan=True),
                            ["val.val_freq=0", "logger.print_freq=1000", "logger.save_checkpoint_freq=0"])
    trainer = Trainer(opt, dist_info=info, interactive=False)
    calls = []
    reduce = dist.all_reduce

    def counted(tensor, *args, **kwargs):
        calls.append(tensor.numel())
        return reduce(tensor, *args, **kwargs)

    dist.all_reduce = counted
    code = trainer.run()
    (out / f"calls{{info.rank}}.json").write_text(json.dumps(calls))
    sys.exit(code)
    """
).replace("{K}", str(K))


@pytest.mark.slow
def test_the_finiteness_checks_and_the_stop_request_are_one_collective_per_iteration(
    data_root: Path, tmp_path: Path
) -> None:
    # GAN stage: G's and D's losses were checked in two all-reduces, the stop request in a third (and five
    # host reads); now one set of flags per iteration, plus the loss means of the one log line at the end.
    import json

    script = tmp_path / "child.py"
    script.write_text(COUNT_COLLECTIVES.replace("{{", "{").replace("}}", "}"))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
         str(data_root), str(tmp_path / "exp"), str(out)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        calls = json.loads((out / f"calls{rank}.json").read_text())
        assert calls[:K] == [3] * K, calls  # (non-finite, stop, time budget spent) per iteration
        assert len(calls) == K + 1, calls  # + the log line's loss means
