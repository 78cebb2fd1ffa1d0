"""Fixtures for chain-binding tests: a real anvil on a free port, with the contracts deployed."""

from __future__ import annotations

import pytest
from eth_account import Account

from devstack.anvil import dev_keys, start_anvil
from pollen.chain import Chain
from pollen.deploy import Parameters, deploy_all


@pytest.fixture(scope="module")
def anvil():
    with start_anvil() as node:
        yield node


@pytest.fixture(scope="module")
def deployment(anvil):
    return deploy_all(anvil.rpc, params=Parameters(), log=lambda *_: None)


@pytest.fixture(scope="module")
def keys():
    return dev_keys(10)


@pytest.fixture(scope="module")
def roles(deployment, keys):
    """Chain handles per role: owner (deployer), four operators, a challenger."""
    names = ["owner", "op1", "op2", "op3", "op4", "challenger"]
    return {n: Chain.connect(deployment, private_key=keys[i]) for i, n in enumerate(names)}


@pytest.fixture(scope="module")
def signers():
    """Hot receipt-signing keys, distinct from the operators' keys."""
    return [Account.create() for _ in range(4)]
