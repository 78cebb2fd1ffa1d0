"""Governance behind a timelock on a real anvil: deploy with --timelock-delay, the proposer
schedules acceptOwnership, nothing executes before the delay, then anyone executes it and the
timelock owns the vault and the court; a parameter change takes the same path."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3

from pollen import artifacts
from devstack.anvil import dev_keys, start_anvil
from pollen.chain import ChainError
from pollen.deploy import PRESETS, accept_ownership_batch, deploy_all

DELAY = 3600
ZERO = b"\x00" * 32


def _send(w3, key, fn, value=0):
    acct = Account.from_key(key)
    tx = fn.build_transaction({"from": acct.address, "nonce": w3.eth.get_transaction_count(acct.address),
                               "chainId": w3.eth.chain_id, "value": value})
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction))


def test_timelock_owns_vault_and_court_only_after_the_delay():
    keys = dev_keys(3)
    proposer = Account.from_key(keys[1]).address
    with start_anvil(accounts=3) as node:
        with pytest.raises(ChainError, match="--proposer"):
            deploy_all(node.rpc, timelock_delay=DELAY, log=lambda *_: None)
        dep = deploy_all(node.rpc, timelock_delay=DELAY, proposer=proposer, log=lambda *_: None)
        w3 = Web3(Web3.HTTPProvider(node.rpc))
        lock = w3.eth.contract(address=dep.contracts["PollenTimelock"], abi=artifacts.abi("PollenTimelock"))
        court = w3.eth.contract(address=dep.contracts["DisputeCourt"], abi=artifacts.abi("DisputeCourt"))
        vault = w3.eth.contract(address=dep.contracts["StakeVault"], abi=artifacts.abi("StakeVault"))
        deployer = Account.from_key(keys[0]).address
        assert court.functions.pendingOwner().call() == lock.address and court.functions.owner().call() == deployer

        targets, values, payloads = accept_ownership_batch(dep)
        with pytest.raises(Exception):  # only the proposer schedules
            _send(w3, keys[2], lock.functions.scheduleBatch(targets, values, payloads, ZERO, ZERO, DELAY))
        _send(w3, keys[1], lock.functions.scheduleBatch(targets, values, payloads, ZERO, ZERO, DELAY))
        with pytest.raises(Exception):  # not before the delay
            _send(w3, keys[2], lock.functions.executeBatch(targets, values, payloads, ZERO, ZERO))
        w3.provider.make_request("evm_increaseTime", [DELAY + 1])
        w3.provider.make_request("evm_mine", [])  # calls and estimates run in the latest block
        _send(w3, keys[2], lock.functions.executeBatch(targets, values, payloads, ZERO, ZERO))  # anyone
        assert court.functions.owner().call() == lock.address and vault.functions.owner().call() == lock.address
        escrow = w3.eth.contract(address=dep.contracts["PaymentEscrow"], abi=artifacts.abi("PaymentEscrow"))
        assert escrow.functions.owner().call() == lock.address  # the escrow's fee too is governed
        fees = w3.eth.contract(address=dep.contracts["AuditFeePayer"], abi=artifacts.abi("AuditFeePayer"))
        assert fees.functions.owner().call() == lock.address
        assert escrow.functions.auditPayer().call() == fees.address

        # the deployer lost its powers; a change now goes through the timelock
        tight = PRESETS["anvil"].__class__(**{**vars(PRESETS["anvil"]), "slash_bps": 1_000}).court_tuple()
        with pytest.raises(Exception):
            _send(w3, keys[0], court.functions.setParams(tight))
        call = court.functions.setParams(tight)._encode_transaction_data()
        _send(w3, keys[1], lock.functions.schedule(court.address, 0, call, ZERO, ZERO, DELAY))
        w3.provider.make_request("evm_increaseTime", [DELAY + 1])
        w3.provider.make_request("evm_mine", [])  # calls and estimates run in the latest block
        _send(w3, keys[2], lock.functions.execute(court.address, 0, call, ZERO, ZERO))
        assert court.functions.params().call()[10] == 1_000  # slashBps
