"""The contracts on anvil configured like each target network: its chain id and the closest
hardfork (pollen/evm_compat.py), the whole chain-binding lifecycle re-run against each, and the
opcode check that refuses a deploy a target could not run."""

from __future__ import annotations

import pytest

from pollen import artifacts
from devstack.anvil import dev_keys, start_anvil
from pollen.deploy import CHAIN_IDS, DEPLOYED, Parameters, deploy_all
from pollen.evm_compat import ANVIL_HARDFORK, EvmCompatError, check_bytecode, post_paris_opcodes
from test_lifecycle_anvil import *  # noqa: F401,F403 - the lifecycle tests, re-run per target

TARGETS = ["gnosis-chiado", "gnosis", "filecoin-calibration", "filecoin"]


@pytest.fixture(scope="module", params=TARGETS)
def target(request):
    return request.param


@pytest.fixture(scope="module")
def anvil(target):
    with start_anvil(chain_id=CHAIN_IDS[target], hardfork=ANVIL_HARDFORK[target]) as node:
        yield node


@pytest.fixture(scope="module")
def deployment(anvil, target):
    # a test deployment: demo parameters and an EOA owner, said explicitly (production refuses both)
    return deploy_all(anvil.rpc, private_key=dev_keys(1)[0], params=Parameters(), network=target,
                      log=lambda *_: None, allow_demo_params=True, allow_eoa_owner=True)


def test_the_deployment_is_for_the_targets_chain(deployment, target):
    assert deployment.chain_id == CHAIN_IDS[target] and deployment.network == target


def test_our_bytecode_fits_every_target():
    for network in ["anvil", *TARGETS]:
        check_bytecode(network, {n: artifacts.bytecode(n) for n in DEPLOYED})
    used = set().union(*(post_paris_opcodes(artifacts.bytecode(n)) for n in DEPLOYED))
    assert {"PUSH0", "MCOPY", "TLOAD", "TSTORE"} >= used  # nothing Filecoin lacks


def test_an_opcode_the_target_lacks_is_refused_before_deploying():
    blob = "0x" + "5f49" + "00"  # PUSH0 BLOBHASH STOP (no metadata)
    check_bytecode("gnosis", {"Blobby": blob})
    with pytest.raises(EvmCompatError, match="Blobby uses BLOBHASH, which filecoin does not run"):
        check_bytecode("filecoin", {"Blobby": blob})
    assert post_paris_opcodes("0x" + "7f" + "5e" * 32 + "00") == set()  # PUSH32 data is not code
    with pytest.raises(EvmCompatError, match="unknown network"):
        check_bytecode("mainnet", {})
