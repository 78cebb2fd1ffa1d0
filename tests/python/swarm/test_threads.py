"""pollen/threads.py: the idle-thread policy reaches every `pollen` subcommand's process before
torch loads, and never overrides an operator's own OpenMP settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pollen.threads import SPINCOUNT, quiet_idle_threads

ROOT = Path(__file__).resolve().parents[3]
# quiet_idle_threads() declines once torch is loaded, so a set value also shows that the entry
# point ran it before anything it imports loaded torch
PROBE = ("import os, pollen.cli; pollen.cli.main.get_command(None, '{command}'); import torch; "
         "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))")


def _fresh(command: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", PROBE.format(command=command)], env={**clean, **env}, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.split()


@pytest.mark.parametrize("command", ["serve", "node", "generate"])
def test_subcommands_get_the_spin_count_set_before_torch_loads(command):
    assert _fresh(command) == [SPINCOUNT, "None"]


def test_an_operators_own_setting_wins():
    assert _fresh("serve", GOMP_SPINCOUNT="123") == ["123", "None"]
    assert _fresh("serve", OMP_WAIT_POLICY="ACTIVE") == ["None", "ACTIVE"]


def test_too_late_once_torch_is_loaded():
    import torch  # noqa: F401  (already loaded by the test session; libgomp has read its settings)

    environ: dict[str, str] = {}
    assert quiet_idle_threads(environ) is False and environ == {}
