"""benchmarks/gpu.py stays runnable where no GPU is: its --smoke run (tiny Llama, CPU, two real
`pollen serve` processes) prints the decode and memory tables with identical greedy tokens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_gpu_benchmark_runs_in_its_smoke_mode():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "| Pollen, 2 servers on the same device |" in out and "greedy tokens identical: yes" in out
    rows = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in out.splitlines()
            if line.startswith("| float32 |") or line.startswith("| int8 |")}
    assert 0 < rows["int8"] < rows["float32"]  # int8 weights take less memory than fp32
