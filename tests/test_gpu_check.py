"""benchmarks/gpu_check.py runs end to end (on the CPU, its CUDA-only rows skipped) and fails fast without CUDA.

What it measures needs a GPU; here only that every row's code runs and the table and JSON come out whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
# Rows whose optional package may be missing here (they say which); every other row must be ok on the CPU.
OPTIONAL = {"video": "av", "onnx": "onnxruntime", "serve": "starlette"}


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO)


@pytest.mark.slow
def test_the_whole_script_runs_on_the_cpu_and_prints_one_table(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_check import CHECKS

    out = tmp_path / "rows.json"
    proc = _run("--device", "cpu", "--quick", "--json", str(out), "--log", str(tmp_path / "check.log"), timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {r["check"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == [c.name for c in CHECKS]
    for check in CHECKS:
        row = rows[check.name]
        if check.cuda_only:
            assert row["result"] == "skipped: no CUDA", row
        elif check.name in OPTIONAL and row["result"].startswith("skipped"):
            assert OPTIONAL[check.name] in row["result"], row  # it names what to install
        else:
            assert row["result"] == "ok" and row["figure"], row
    assert "it/s" in rows["train gan fp32"]["figure"]
    assert "PSNR-Y/SSIM-Y on cpu = numpy" in rows["metrics"]["figure"]
    table = proc.stdout[proc.stdout.index("check "):]
    assert all(name in table for name in rows) and "CPU: " in proc.stdout  # every benchmark prints the CPU
    assert "===== train psnr fp32" in (tmp_path / "check.log").read_text()  # the checks' own output is logged


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_without_cuda_it_stops_at_once_with_one_line() -> None:
    proc = _run(timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "no CUDA device" in proc.stderr and "--device cpu" in proc.stderr
