"""How idle OpenMP threads wait, chosen for processes that share cores with other processes.

torch's CPU ops run on libgomp threads, which by default spin for ~300,000 iterations after each
parallel region before they sleep. A block server's decode step is a chain of small ops, and a
client and its servers often share one machine's cores: each process's idle threads then spin
on the cores the next process in the route needs. Spinning briefly (GOMP_SPINCOUNT=10000) keeps
big matmuls as fast and stops the fight: Llama 58M decode through 2 servers with 2 torch threads
each went from 0.55-0.60x to 0.66-0.71x of one process on a 2-core box (benchmarks/inference.py
--threads 2; README, "The swarm"), while a one-process batch-8 forward kept its speed. libgomp reads the variable once, when torch is first imported,
so the `pollen` entry point (pollen/cli.py) calls `quiet_idle_threads()` before any subcommand
imports torch.
"""

from __future__ import annotations

import os
import sys

SPINCOUNT = "10000"  # iterations an idle OpenMP thread spins before it sleeps (libgomp default: 300000)
USER_SET = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # an operator's own choice always wins


def quiet_idle_threads(environ=os.environ) -> bool:
    """Set GOMP_SPINCOUNT for this process unless the user chose a wait policy or torch is already
    loaded (then it would have no effect). Returns whether it was set."""
    if "torch" in sys.modules or any(name in environ for name in USER_SET):
        return False
    environ["GOMP_SPINCOUNT"] = SPINCOUNT
    return True
