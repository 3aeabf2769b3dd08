"""The GPU surfaces as a hostile user meets them: ``train.deterministic`` and benchmarks/gpu_check.py's flags."""

from __future__ import annotations

import pytest
import torch
from harness import REPO, Arena
from training_files import earlier_run, train_file

pytestmark = pytest.mark.slow

GPU_CHECK = (str(REPO / "benchmarks" / "gpu_check.py"),)


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("value", ["maybe", 2, None, "true"], ids=["word", "number", "null", "quoted"])
def test_train_deterministic_takes_true_or_false_only(arena: Arena, value: object) -> None:
    opt = train_file(arena, ("train.deterministic", value))
    earlier_run(arena)
    result = arena.run("train", "-opt", opt, timeout=120)
    result.assert_refused("train.deterministic", "expected true or false", code=2)


@pytest.mark.hostile("correct")
def test_train_deterministic_on_the_cpu_trains_and_says_what_it_set(arena: Arena) -> None:
    opt = train_file(arena, ("train.deterministic", True), total_iter=2)
    result = arena.run("train", "-opt", opt, timeout=180)
    result.assert_ok()
    assert "train.deterministic: deterministic algorithms, cudnn.benchmark off, CUBLAS_WORKSPACE_CONFIG=:4096:8" \
        in result.err
    assert (arena.work / "experiments" / "tiny" / "models" / "net_g_2.pth").is_file()


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (("--device", "cpu", "--only", "gpu,warp-drive"), ("unknown check warp-drive", "the checks are: gpu")),
        (("--device", "cpu", "--only", ","), ("unknown check", "the checks are")),
        (("--device", "tpu"), ("--device", "invalid choice: 'tpu'")),
        (("--device", "cpu", "--log", "."), ("--log", "is a folder")),
        (("--device", "cpu", "--json", "no/such/folder/rows.json"), ("--json", "does not exist")),
        (("--device", "cpu", "--quick", "extra"), ("unrecognized arguments: extra",)),
    ],
    ids=["unknown-check", "empty-only", "bad-device", "log-folder", "json-folder", "stray-argument"],
)
def test_gpu_check_refuses_bad_flags_before_running_anything(arena: Arena, args: tuple[str, ...],
                                                            mentions: tuple[str, ...]) -> None:
    result = arena.run(*args, module=GPU_CHECK, timeout=60)
    result.assert_refused(*mentions, code=2)
    assert "esrgan GPU check" not in result.out  # nothing ran


@pytest.mark.hostile("refused")
@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_gpu_check_without_cuda_is_one_line(arena: Arena) -> None:
    result = arena.run("--quick", module=GPU_CHECK, env={"CUDA_VISIBLE_DEVICES": ""}, timeout=60)
    result.assert_refused("no CUDA device", "--device cpu", code=2)
    assert len(result.err.strip().splitlines()) == 1
