"""Networks by name (pollen/networks.py): one table for the deploy presets, deployment files
under deployments/, and `--network` on the deploy script, the daemon and the CLI; checked against
the chain metadata Ape itself uses (evmchains), and end to end on an anvil posing as Chiado."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.daemon_config import DaemonConfig
from node.errors import ConfigError
from devstack.anvil import dev_keys, start_anvil
from pollen.deploy import BLOCK_SECONDS, CHAIN_IDS, PRESETS
from pollen.networks import (NETWORKS, NetworkError, by_chain_id, canonical, deployment_file, network,
                             resolve_deployment)
from pollen.escrow import RECLAIM_DELAYS

ROOT = Path(__file__).resolve().parents[3]
APE = {"gnosis-chiado": ("gnosis", "chiado"), "gnosis": ("gnosis", "mainnet"),
       "filecoin-calibration": ("filecoin", "calibration"), "filecoin": ("filecoin", "mainnet")}


@pytest.mark.parametrize("spelling, name", [
    ("gnosis:chiado:node", "gnosis-chiado"), ("gnosis:chiado", "gnosis-chiado"), ("Gnosis-Chiado", "gnosis-chiado"),
    ("gnosis:mainnet:node", "gnosis"), ("gnosis-mainnet", "gnosis"), ("filecoin:calibration:node",
    "filecoin-calibration"), ("filecoin:mainnet", "filecoin"), ("ethereum:local:foundry", "anvil"),
    ("local", "anvil"), ("demo", "demo")])
def test_every_spelling_names_one_network(spelling, name):
    assert canonical(spelling) == name


def test_one_table_feeds_presets_and_the_deploy_constants():
    assert set(PRESETS) == set(NETWORKS) == set(RECLAIM_DELAYS)
    assert CHAIN_IDS == {n: NETWORKS[n].chain_id for n in APE}
    assert BLOCK_SECONDS == {n.name: n.block_seconds for n in NETWORKS.values()}
    assert by_chain_id(10200).name == "gnosis-chiado" and by_chain_id(1337).name == "anvil"
    assert by_chain_id(5) is None
    with pytest.raises(NetworkError, match="unknown network 'mainnet'.*gnosis-chiado"):
        network("mainnet")


@pytest.mark.parametrize("name", list(APE))
def test_the_table_agrees_with_apes_chain_metadata(name):
    """Ape resolves `--network gnosis:chiado:node` through evmchains: same chain id and currency."""
    from evmchains import get_chain_meta

    ours = NETWORKS[name]
    meta = get_chain_meta(*APE[name])
    assert meta.chainId == ours.chain_id
    assert meta.nativeCurrency["symbol"].lower() == ours.currency.lower()
    assert ours.ape.startswith(":".join(APE[name]) + ":")


def test_deployment_files_resolve_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("POLLEN_DEPLOYMENTS", str(tmp_path))
    assert resolve_deployment() == tmp_path / "demo.json"  # the dev default
    assert resolve_deployment(deployment="x/y.json") == Path("x/y.json")
    with pytest.raises(NetworkError, match=r"no deployment file .*gnosis-chiado.json: deploy there first: "
                                           r"`python -m pollen.deploy --network gnosis-chiado"):
        resolve_deployment("gnosis:chiado:node")
    (tmp_path / "gnosis-chiado.json").write_text("{}")
    (tmp_path / "private.json").write_text("{}")
    assert resolve_deployment("gnosis:chiado") == tmp_path / "gnosis-chiado.json"
    assert resolve_deployment("private") == tmp_path / "private.json"  # any name with a file
    with pytest.raises(NetworkError, match="unknown network 'nowhere'.*files here: gnosis-chiado, private"):
        resolve_deployment("nowhere")
    with pytest.raises(NetworkError, match="not both"):
        resolve_deployment("gnosis", "a.json")


def test_the_daemon_takes_a_network_name(tmp_path, monkeypatch):
    monkeypatch.setenv("POLLEN_DEPLOYMENTS", str(tmp_path))
    monkeypatch.setenv("POLLEN_OPERATOR_KEY", dev_keys(1)[0])
    with pytest.raises(ConfigError, match="no deployment file .*filecoin-calibration.json"):
        DaemonConfig.load(env={}, network="filecoin:calibration", version_id=1)
    (tmp_path / "filecoin-calibration.json").write_text("{}")
    cfg = DaemonConfig.load(env={}, network="filecoin:calibration", version_id=1)
    assert cfg.deployment == str(deployment_file("filecoin-calibration"))
    assert DaemonConfig.load(env={}, version_id=1).deployment == str(tmp_path / "demo.json")


def _run(*args, env):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.anvil
def test_deploy_and_read_by_network_name_on_a_chain_posing_as_chiado(tmp_path):
    """`python -m pollen.deploy --network gnosis:chiado:node` writes deployments/gnosis-chiado.json
    with Chiado's preset; `pollen node status` and `pollen health` find it by `--network`; the
    wrong network for the RPC's chain is refused before anything is sent."""
    env = {**os.environ, "POLLEN_DEPLOYMENTS": str(tmp_path / "deployments")}
    key = tmp_path / "deployer.key"
    key.write_text(dev_keys(1)[0])
    with start_anvil(chain_id=NETWORKS["gnosis-chiado"].chain_id, hardfork="prague") as node:
        wrong = _run("-m", "pollen.deploy", "--network", "gnosis", "--rpc", node.rpc, "--key-file", str(key),
                     "--allow-eoa-owner", env=env)
        assert wrong.returncode != 0 and "serves chain 10200, not gnosis (chain 100)" in wrong.stderr + wrong.stdout
        res = _run("-m", "pollen.deploy", "--network", "gnosis:chiado:node", "--rpc", node.rpc, "--key-file",
                   str(key), "--allow-eoa-owner", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        written = json.loads((tmp_path / "deployments" / "gnosis-chiado.json").read_text())
        assert written["network"] == "gnosis-chiado" and written["chainId"] == 10200
        assert written["parameters"]["min_stake"] == PRESETS["gnosis-chiado"].min_stake
        assert {"PaymentEscrow", "AuditFeePayer"} <= set(written["contracts"])

        operator = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        status = _run("-m", "pollen.cli", "node", "status", "--network", "gnosis-chiado", "--operator", operator,
                      "--json", env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert json.loads(status.stdout)["operator"] == operator
        health = _run("-m", "pollen.cli", "health", "--network", "chiado", "--version-id", "1", "--json", env=env)
        # found the file and asked that chain's registry (which holds no models yet)
        assert health.returncode != 0 and "model version 1 does not exist on chain 10200" in health.stderr
        missing = _run("-m", "pollen.cli", "node", "status", "--network", "filecoin", "--operator", operator,
                       env=env)
        assert missing.returncode != 0 and "no deployment file" in missing.stderr and "filecoin.json" in missing.stderr


def test_the_ui_serves_every_deployment_opened_at_a_network(tmp_path, monkeypatch):
    """`pollen ui --network NAME` serves deployments/*.json (the page's picker) at ?network=NAME."""
    import urllib.request

    from pollen.ui import UiError, start_ui, ui_dir

    try:
        ui_dir()
    except UiError:
        pytest.skip("web UI not built (make frontend-build; make test builds it first)")
    monkeypatch.setenv("POLLEN_DEPLOYMENTS", str(tmp_path))
    (tmp_path / "gnosis-chiado.json").write_text(json.dumps({"network": "gnosis-chiado", "chainId": 10200}))
    with pytest.raises(NetworkError, match="no deployment file .*filecoin.json.*files here: gnosis-chiado"):
        start_ui(None, 0, network="filecoin")
    proc, url = start_ui(None, 0, network="gnosis:chiado:node")
    try:
        assert url.endswith("?network=gnosis-chiado")
        index = json.loads(urllib.request.urlopen(url.split("?")[0] + "deployments/index.json", timeout=10).read())
        assert [d["name"] for d in index] == ["gnosis-chiado"]
    finally:
        proc.terminate()
        proc.wait(10)
