"""`pollen hunt` as a real CLI process against anvil and four `pollen node` processes (one
injecting faults; four so that three auditors, the court's minimum panel, remain besides the
accused): it probes every server, disputes the cheater, the court slashes it, and the hunter
withdraws its finder's reward."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devstack.procs import ROOT
from trusthelp import tiny_stack, FAULT, PARAMS, TOLERANCE


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = tiny_stack(tmp_path_factory, "hunt", 3)
    try:
        daemons = [s.daemon("h1", 1), s.daemon("h2", 2), s.daemon("h3", 3, *FAULT), s.daemon("h4", 4)]
        for d in daemons:
            d.start()
        for d in daemons:
            d.wait_event("ready", 150)
        yield s
    finally:
        s.stop()


def test_hunt_disputes_the_cheater_and_collects_the_reward(stack):
    key_file = stack.workdir / "hunter.key"
    key_file.write_text(stack.keys[7])
    hunter = stack.chain(7)
    cheater = stack.daemons[2]
    balance = hunter.w3.eth.get_balance(hunter.address)
    out = subprocess.run([sys.executable, "-m", "pollen.cli", "hunt", "--deployment", str(stack.deployment_path),
                          "--key-file", str(key_file), "--version-id", str(stack.version_id),
                          "--store", str(stack.store_path), "--cache-dir", str(stack.workdir / "hunter"),
                          "--seed", "1", "--withdraw", "--rounds", "4"],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    verdicts = [line.split("-> ")[1].split()[0] for line in out.stdout.splitlines() if line.startswith("round")]
    assert sorted(verdicts) == ["faulty", "ok", "ok", "ok"], out.stdout
    assert "resolved: faulty" in out.stdout and "withdrawn" in out.stdout
    assert cheater.wait_event("exit", 60)["reason"].startswith("deactivated")
    assert hunter.w3.eth.get_balance(hunter.address) > balance  # bond back + finder's reward - gas
