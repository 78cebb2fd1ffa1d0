"""`ape run deploy` and the console scripts against a real anvil, read back through pollen.chain."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pollen.anvil import dev_keys
from pollen.chain import Chain, Deployment

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.anvil


def ape_run(*args: str, network: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SOLCX_BINARY_PATH": str(ROOT / ".solc"),
           "APE_DATA_FOLDER": str(ROOT / ".cache" / "ape"),
           "PATH": f"{ROOT / 'node_modules' / '.bin'}:{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ape"), "run", *args, "--network", network],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_deploy_script_writes_file_bindings_read(anvil, tmp_path):
    out = tmp_path / "deployment.json"
    res = ape_run("deploy", "--account", "TEST::0", "--out", str(out), network=anvil.rpc)
    assert res.returncode == 0, res.stdout + res.stderr
    dep = Deployment.load(out)
    assert dep.chain_id == 31337 and set(dep.contracts) == {
        "StakeVault", "ModelVersionRegistry", "ServerRegistry", "DisputeCourt"}
    chain = Chain.connect(dep, private_key=dev_keys(2)[1])
    assert chain.min_stake() == 10**18
    # the vault is wired to this court: disputes can freeze stake
    assert chain.vault.functions.court().call() == dep.contracts["DisputeCourt"]

    res = ape_run("stake", "--account", "TEST::1", "--deployment", str(out), "1.5", network=anvil.rpc)
    assert res.returncode == 0, res.stderr
    assert chain.stake_of(chain.address) == 15 * 10**17

    res = ape_run("stake", "--account", "TEST::1", "--deployment", str(out), "lots", network=anvil.rpc)
    assert res.returncode != 0 and "is not an amount" in res.stdout + res.stderr

    res = ape_run("register", "--account", "TEST::1", "--deployment", str(out), "--version", "1",
                  "--blocks", "0:8", "--endpoint", "grpc://x:1", network=anvil.rpc)
    assert res.returncode != 0 and "ServerRegistry_InactiveVersion" in res.stdout + res.stderr
