import ape
import pytest

from conftest import ETHER, PARAMS, vault_invariant


def test_stake_unstake_withdraw(vault, operator, chain):
    tx = vault.stake(value=3 * ETHER, sender=operator)
    assert tx.events[-1].event_name == "Staked"
    assert vault.stakeOf(operator) == 3 * ETHER
    vault.requestUnstake(ETHER, sender=operator)
    acct = vault.accountOf(operator)
    assert (acct.staked, acct.unbonding) == (2 * ETHER, ETHER)
    with ape.reverts(vault.StakeVault_NothingToWithdraw):
        vault.withdraw(sender=operator)  # not matured yet
    chain.pending_timestamp += PARAMS.unbonding_period + 1
    before = operator.balance
    tx = vault.withdraw(sender=operator)
    assert operator.balance == before + ETHER - tx.total_fees_paid
    assert vault.accountOf(operator).unbonding == 0
    vault_invariant(vault, chain)


def test_stake_reverts(vault, operator):
    with ape.reverts(vault.StakeVault_ZeroAmount):
        vault.stake(value=0, sender=operator)
    with ape.reverts(vault.StakeVault_ZeroAmount):
        vault.requestUnstake(0, sender=operator)
    with ape.reverts(vault.StakeVault_InsufficientStake):
        vault.requestUnstake(1, sender=operator)


def test_court_only_functions(vault, court, stranger, operator):
    for call in (lambda: vault.freeze(operator, sender=stranger),
                 lambda: vault.unfreeze(operator, sender=stranger),
                 lambda: vault.freezeMany([operator, stranger], sender=stranger),
                 lambda: vault.unfreezeMany([operator], sender=stranger),
                 lambda: vault.slash(operator, 1, sender=stranger),
                 lambda: vault.depositEscrow(value=1, sender=stranger),
                 lambda: vault.distribute([stranger], [1], 0, sender=stranger)):
        with ape.reverts(vault.StakeVault_NotCourt):
            call()


def test_governance_is_owner_only_and_bounded(vault, court, owner, stranger):
    with ape.reverts(vault.OwnableUnauthorizedAccount):
        vault.setMinStake(1, sender=stranger)
    with ape.reverts(vault.OwnableUnauthorizedAccount):
        vault.setUnbondingPeriod(10**6, sender=stranger)
    with ape.reverts(vault.OwnableUnauthorizedAccount):
        vault.releaseTreasury(stranger, 0, sender=stranger)
    with ape.reverts(vault.OwnableUnauthorizedAccount):
        vault.wire(court, court, sender=stranger)
    with ape.reverts(vault.StakeVault_MinStakeOutOfBounds):
        vault.setMinStake(0, sender=owner)
    with ape.reverts(vault.StakeVault_UnbondingOutOfBounds):
        vault.setUnbondingPeriod(60, sender=owner)
    with ape.reverts(vault.StakeVault_UnbondingNotLongerThanWindow):
        vault.setUnbondingPeriod(PARAMS.dispute_window, sender=owner)
    with ape.reverts(vault.StakeVault_AlreadyWired):
        vault.wire(court, court, sender=owner)
    with ape.reverts(vault.StakeVault_TreasuryShort):
        vault.releaseTreasury(stranger, 1, sender=owner)
    vault.setMinStake(2 * ETHER, sender=owner)
    assert vault.minStake() == 2 * ETHER
    with ape.reverts(vault.StakeVault_RenounceDisabled):
        vault.renounceOwnership(sender=owner)


def test_ownership_moves_only_when_accepted(vault, owner, stranger, operator):
    vault.transferOwnership(stranger, sender=owner)
    with ape.reverts(vault.OwnableUnauthorizedAccount):  # proposed is not accepted
        vault.setMinStake(3 * ETHER, sender=stranger)
    with ape.reverts(vault.OwnableUnauthorizedAccount):  # only the proposed owner accepts
        vault.acceptOwnership(sender=operator)
    vault.setMinStake(3 * ETHER, sender=owner)  # the old owner governs until then
    vault.acceptOwnership(sender=stranger)
    assert vault.owner() == stranger.address and vault.pendingOwner() == "0x" + "00" * 20
    with ape.reverts(vault.OwnableUnauthorizedAccount):
        vault.setMinStake(ETHER, sender=owner)
    vault.setMinStake(ETHER, sender=stranger)


def test_cannot_wire_court_whose_window_outlasts_unbonding(project, owner, court, registry):
    short = project.StakeVault.deploy(ETHER, PARAMS.dispute_window, owner, sender=owner)
    with ape.reverts(short.StakeVault_UnbondingNotLongerThanWindow):
        short.wire(court, registry, sender=owner)


def test_constructor_bounds(project, owner):
    with ape.reverts():
        project.StakeVault.deploy(0, PARAMS.unbonding_period, owner, sender=owner)
    with ape.reverts():
        project.StakeVault.deploy(ETHER, 10, owner, sender=owner)


def test_reentrant_withdraw_pays_once(project, vault, court, stranger, chain):
    attacker = project.ReentrantWithdrawer.deploy(vault, sender=stranger)
    attacker.stakeAndUnbond(value=2 * ETHER, sender=stranger)
    chain.pending_timestamp += PARAMS.unbonding_period + 1
    attacker.attack(sender=stranger)
    assert attacker.reentryAttempts() == 1
    assert not attacker.reentrySucceeded()
    assert chain.provider.get_balance(attacker.address) == 2 * ETHER
    vault_invariant(vault, chain)
