"""`ape run deploy` and the console scripts against a real anvil, read back through pollen.chain."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from devstack.anvil import dev_keys
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
    assert dep.chain_id == 31337 and dep.network == "anvil" and set(dep.contracts) == {
        "StakeVault", "ModelVersionRegistry", "ServerRegistry", "DisputeCourt", "PaymentEscrow", "AuditFeePayer"}
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


def test_open_dispute_and_vote_scripts(anvil, deployment, tmp_path):
    """open_dispute names a block (refusing one outside the span); vote commits and reveals a
    fingerprinted verdict (here: abstain) and shows the dispute's named block and tallies."""
    import json
    import re

    from pollen.receipts import KIND_FORWARD, Receipt, sign_receipt

    dep_file = tmp_path / "deployment.json"
    deployment.save(dep_file)
    keys = dev_keys(6)
    c = [Chain.connect(deployment, private_key=k) for k in keys]
    model = c[0].create_model("m")
    version = c[0].publish_version(model, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", 8, 0, 10_000)
    for i in range(1, 5):
        c[i].stake(2 * 10**18)
        c[i].register(c[i].address, f"grpc://127.0.0.1:{31330 + i}", version, 0, 8, 10)
    accused = c[1]
    r = Receipt(server=accused.address, version_id=version, first_block=2, last_block=6,
                term=accused.current_term(accused.address), kind=KIND_FORWARD, session_id=os.urandom(32),
                step=4, input_hash=os.urandom(32), output_hash=os.urandom(32), blocks_root=os.urandom(32),
                issued_at=accused.w3.eth.get_block("latest")["timestamp"])
    sig = sign_receipt(r, accused.receipt_domain(), keys[1])
    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_text(json.dumps({"receipt": r.to_json(), "signature": "0x" + sig.hex()}))
    common = ("--deployment", str(dep_file))

    res = ape_run("open_dispute", "--account", "TEST::5", *common, "--receipt", str(receipt_file),
                  "--evidence", "bafy-evidence-cid-ape", "--block", "6", network=anvil.rpc)
    assert res.returncode != 0 and "outside the receipt's span [2, 6)" in res.stdout + res.stderr
    res = ape_run("open_dispute", "--account", "TEST::5", *common, "--receipt", str(receipt_file),
                  "--evidence", "bafy-evidence-cid-ape", "--block", "5", network=anvil.rpc)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "over block 5 of forward step 4" in res.stdout
    dispute_id = accused.court.functions.disputeCount().call()

    accused.w3.provider.make_request("anvil_mine", [3])
    res = ape_run("vote", "--account", "TEST::5", *common, str(dispute_id), "draw", network=anvil.rpc)
    assert res.returncode == 0, res.stdout + res.stderr
    auditor = accused.dispute(dispute_id)["auditors"][0]
    index = [x.address for x in c].index(auditor)
    fp = "0x" + "5e" * 32
    res = ape_run("vote", "--account", f"TEST::{index}", *common, str(dispute_id), "commit",
                  "--verdict", "abstain", "--fingerprint", fp, network=anvil.rpc)
    assert res.returncode == 0, res.stdout + res.stderr
    salt = re.search(r"SALT \(needed to reveal, back it up\): (0x[0-9a-f]{64})", res.stdout).group(1)
    accused.w3.provider.make_request("evm_increaseTime", [accused.court_params()["commit_period"] + 1])
    accused.w3.provider.make_request("anvil_mine", [1])
    res = ape_run("vote", "--account", f"TEST::{index}", *common, str(dispute_id), "reveal",
                  "--verdict", "abstain", "--fingerprint", fp, "--salt", salt, network=anvil.rpc)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "block 5 step 4" in res.stdout and "abstain 1 of 3 drawn" in res.stdout
    vote = accused.court.functions.voteOf(dispute_id, auditor).call()
    assert vote[1] == 5 and vote[3] == bytes.fromhex(fp[2:])  # RevealedAbstain, the fingerprint
