"""PaymentEscrow: deposits set aside per server (lanes), cumulative EIP-712 vouchers redeemed in
batches, a lane reclaimed after a delay, the protocol fee into the audit pool, auditors credited
from it, earnings withdrawn or spent as a client, prices. Every rule with the attack it stops."""

import os

import ape
import pytest
from eth_account import Account
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from conftest import ESCROW_FEE_BPS, ETHER, RECLAIM_DELAY, EscrowBooks, escrow_invariant
from pollen.payments import PaymentDomain, SignedVoucher, Voucher, chain_receipt, redeem_args, sign_voucher

BPS = 10_000
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def redeem(escrow, server, signed, max_fee=ESCROW_FEE_BPS):
    vouchers, sigs = redeem_args(signed if isinstance(signed, list) else [signed])
    return escrow.redeem(vouchers, sigs, max_fee, sender=server)


def net_of(gross, fee_bps=ESCROW_FEE_BPS):
    return gross - gross * fee_bps // BPS


def lane(escrow, client, server):
    """What `client`'s lane for `server` still holds."""
    return escrow.laneOf(client, server).amount


def fund(escrow, client, servers, each):
    """Deposit and set aside `each` wei for every one of `servers`, in one transaction."""
    return escrow.allocate(list(servers), [each] * len(servers), value=each * len(servers), sender=client)


@pytest.fixture
def clients(accounts):
    return [accounts[6], accounts[7], accounts[8]]


@pytest.fixture
def funded(escrow, clients, swarm):
    """Each client has a 10 ETH lane for each of the swarm's five servers."""
    for c in clients:
        fund(escrow, c, swarm, 10 * ETHER)
    return clients


# ------------------------------------------------------------------ deposits and vouchers


def test_deposit_and_deposit_for(escrow, clients, stranger, chain):
    tx = escrow.deposit(value=3 * ETHER, sender=clients[0])
    assert tx.events[0].event_name == "Deposited" and tx.events[0].balance == 3 * ETHER
    escrow.depositFor(clients[0], value=ETHER, sender=stranger)
    assert escrow.balanceOf(clients[0]) == 4 * ETHER
    assert escrow.totalDeposits() == 4 * ETHER
    with ape.reverts(escrow.PaymentEscrow_ZeroAmount):
        escrow.deposit(value=0, sender=clients[0])
    with ape.reverts(escrow.PaymentEscrow_ZeroAddress):
        escrow.depositFor("0x" + "00" * 20, value=1, sender=stranger)
    escrow_invariant(escrow, chain)


def test_allocate_and_withdraw_unallocated(escrow, clients, swarm, chain):
    client, a, b = clients[0], swarm[0], swarm[1]
    escrow.deposit(value=3 * ETHER, sender=client)
    tx = escrow.allocate([a, b], [ETHER, ETHER // 2], value=ETHER, sender=client)  # sends 1 more first
    assert [e.lane for e in tx.events if e.event_name == "Allocated"] == [ETHER, ETHER // 2]
    assert (lane(escrow, client, a), lane(escrow, client, b)) == (ETHER, ETHER // 2)
    assert escrow.balanceOf(client) == 4 * ETHER - ETHER - ETHER // 2
    with ape.reverts(escrow.PaymentEscrow_InsufficientBalance):
        escrow.allocate([a], [3 * ETHER], sender=client)
    with ape.reverts(escrow.PaymentEscrow_LengthMismatch):
        escrow.allocate([a, b], [1], sender=client)
    with ape.reverts(escrow.PaymentEscrow_InsufficientBalance):
        escrow.withdrawDeposit(3 * ETHER, sender=client)  # lanes are not withdrawable at once
    with ape.reverts(escrow.PaymentEscrow_ZeroAmount):
        escrow.withdrawDeposit(0, sender=client)
    before = client.balance
    tx = escrow.withdrawDeposit(ETHER, sender=client)  # unallocated: no delay, no server relies on it
    assert client.balance == before + ETHER - tx.total_fees_paid
    assert escrow.balanceOf(client) == ETHER + ETHER // 2
    escrow_invariant(escrow, chain)


def test_python_digest_matches_contract(escrow, pay_domain, clients, operator):
    v = Voucher(clients[0].address, operator.address, 12345, chain_receipt(b"\x00" * 32, b"\x07" * 32))
    assert escrow.hashVoucher(v.as_tuple()) == v.digest(pay_domain)


def test_redeem_pays_server_and_fee_to_pool(escrow, swarm, funded, voucher, chain):
    server, client = swarm[0], funded[0]
    receipts = chain_receipt(b"\x00" * 32, b"\x01" * 32)
    tx = redeem(escrow, server, voucher(client, server, ETHER, receipts))
    fee = ETHER * ESCROW_FEE_BPS // BPS
    assert escrow.earned(server) == ETHER - fee
    assert escrow.auditPool() == fee
    assert lane(escrow, client, server) == 9 * ETHER
    assert escrow.redeemed(client, server) == ETHER
    paid = [e for e in tx.events if e.event_name == "VoucherRedeemed"][0]
    assert paid.paid == ETHER and paid.receipts == receipts
    batch = [e for e in tx.events if e.event_name == "BatchRedeemed"][0]
    assert (batch.gross, batch.fee) == (ETHER, fee)
    escrow_invariant(escrow, chain)


def test_batch_of_many_clients(escrow, swarm, funded, voucher, chain):
    server = swarm[1]
    signed = [voucher(c, server, (i + 1) * ETHER) for i, c in enumerate(funded)]
    redeem(escrow, server, signed)
    assert escrow.earned(server) == net_of(6 * ETHER)
    assert [lane(escrow, c, server) for c in funded] == [9 * ETHER, 8 * ETHER, 7 * ETHER]
    escrow_invariant(escrow, chain)


def test_batch_shape_reverts(escrow, swarm, funded, voucher):
    with ape.reverts(escrow.PaymentEscrow_EmptyBatch):
        escrow.redeem([], [], ESCROW_FEE_BPS, sender=swarm[0])
    vs, sigs = redeem_args([voucher(funded[0], swarm[0], ETHER)])
    with ape.reverts(escrow.PaymentEscrow_LengthMismatch):
        escrow.redeem(vs, [*sigs, sigs[0]], ESCROW_FEE_BPS, sender=swarm[0])


# ------------------------------------------------------------------ attacks on redemption


def test_double_redemption_pays_once(escrow, swarm, funded, voucher, chain):
    server, client = swarm[0], funded[0]
    v1 = voucher(client, server, ETHER)
    redeem(escrow, server, v1)
    with ape.reverts(escrow.PaymentEscrow_NothingToRedeem):
        redeem(escrow, server, v1)  # the same voucher again
    v2 = voucher(client, server, 3 * ETHER)
    with ape.reverts(escrow.PaymentEscrow_NothingToRedeem):
        redeem(escrow, server, [v1, v1])  # twice in one batch
    tx = redeem(escrow, server, [v2, v1, v2])  # the newer one pays the difference, once
    assert escrow.redeemed(client, server) == 3 * ETHER
    assert lane(escrow, client, server) == 7 * ETHER
    assert escrow.earned(server) == net_of(ETHER) + net_of(2 * ETHER)
    assert sum(e.event_name == "VoucherSkipped" for e in tx.events) == 2
    escrow_invariant(escrow, chain)


def test_voucher_for_another_server_is_refused(escrow, swarm, funded, voucher):
    a, b, client = swarm[0], swarm[1], funded[0]
    to_a = voucher(client, a, ETHER)
    with ape.reverts(escrow.PaymentEscrow_NotVoucherServer):
        redeem(escrow, b, to_a)  # b submits a's voucher
    retargeted = SignedVoucher(Voucher(client.address, b.address, ETHER, to_a.voucher.receipts), to_a.signature)
    with ape.reverts(escrow.PaymentEscrow_BadSignature):
        redeem(escrow, b, retargeted)  # b rewrites the server field
    assert escrow.earned(b) == 0 and lane(escrow, client, b) == lane(escrow, client, a) == 10 * ETHER


def test_voucher_signed_by_someone_else_is_refused(escrow, swarm, funded, voucher):
    server, victim, thief = swarm[0], funded[0], funded[1]
    forged = voucher(victim, server, ETHER, signer=thief)  # names the victim, signed by another
    with ape.reverts(escrow.PaymentEscrow_BadSignature):
        redeem(escrow, server, forged)
    self_signed = voucher(victim, server, ETHER, signer=server)  # the server signs for the client
    with ape.reverts(escrow.PaymentEscrow_BadSignature):
        redeem(escrow, server, self_signed)
    garbage = SignedVoucher(forged.voucher, b"\x01" * 64)
    with ape.reverts(escrow.PaymentEscrow_BadSignature):
        redeem(escrow, server, garbage)
    assert lane(escrow, victim, server) == 10 * ETHER


def test_malleated_signature_is_refused(escrow, swarm, funded, voucher):
    """The (r, n - s) twin of a valid signature recovers the same key; ECDSA refuses high s."""
    good = voucher(funded[0], swarm[0], ETHER)
    r, s, v = good.signature[:32], int.from_bytes(good.signature[32:64], "big"), good.signature[64]
    twin = SignedVoucher(good.voucher, r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([27 if v == 28 else 28]))
    with ape.reverts(escrow.PaymentEscrow_BadSignature):
        redeem(escrow, swarm[0], twin)


@pytest.mark.parametrize("where", ["chain", "contract"])
def test_voucher_replayed_across_domains_is_refused(escrow, project, owner, registry, swarm, funded, voucher,
                                                     pay_domain, chain, where):
    """A voucher signed for another chain or another escrow deployment pays nothing here,
    and a voucher redeemed in one escrow is still unredeemed in another (separate books)."""
    server, client = swarm[0], funded[0]
    if where == "chain":
        other = PaymentDomain(chain_id=pay_domain.chain_id + 1, escrow=escrow.address)
        with ape.reverts(escrow.PaymentEscrow_BadSignature):
            redeem(escrow, server, voucher(client, server, ETHER, dom=other))
        return
    twin = project.PaymentEscrow.deploy(registry, ESCROW_FEE_BPS, RECLAIM_DELAY, owner, sender=owner)
    fund(twin, client, [server], 10 * ETHER)
    here = voucher(client, server, ETHER)
    with ape.reverts(twin.PaymentEscrow_BadSignature):
        redeem(twin, server, here)
    redeem(escrow, server, here)
    assert lane(twin, client, server) == 10 * ETHER


def test_over_redemption_pays_at_most_the_lane(escrow, swarm, clients, voucher, chain):
    server, client = swarm[0], clients[0]
    fund(escrow, client, [server], ETHER)
    escrow.deposit(value=5 * ETHER, sender=client)  # unallocated: not this server's
    big = voucher(client, server, 5 * ETHER)
    assert escrow.redeemable(client, server, 5 * ETHER) == ETHER  # what a server's book reads first
    redeem(escrow, server, big)
    assert escrow.redeemed(client, server) == ETHER  # what the lane held, no more
    assert escrow.redeemable(client, server, 5 * ETHER) == 0
    assert lane(escrow, client, server) == 0 and escrow.balanceOf(client) == 5 * ETHER
    with ape.reverts(escrow.PaymentEscrow_NothingToRedeem):
        redeem(escrow, server, big)  # nothing left to take
    fund(escrow, client, [server], 10 * ETHER)
    redeem(escrow, server, big)  # the rest of the same voucher, once topped up
    assert escrow.redeemed(client, server) == 5 * ETHER
    assert lane(escrow, client, server) == 6 * ETHER
    assert escrow.earned(server) == net_of(ETHER) + net_of(4 * ETHER)
    escrow_invariant(escrow, chain)


def test_one_deposit_cannot_pay_two_servers(escrow, swarm, clients, voucher, chain):
    """The double spend: a client with 1 ETH signs 1 ETH vouchers to two servers. Each server's
    lane is its own, so a server holding a voucher within its lane is paid in full whatever the
    client promised the other; the other's voucher beyond its lane pays only that lane."""
    a, b, client = swarm[0], swarm[1], clients[0]
    fund(escrow, client, [a], ETHER)
    with ape.reverts(escrow.PaymentEscrow_NothingToRedeem):
        redeem(escrow, b, voucher(client, b, ETHER))  # b got a voucher, but no lane: nothing
    redeem(escrow, a, voucher(client, a, ETHER))
    assert escrow.earned(a) == net_of(ETHER) and escrow.earned(b) == 0
    escrow_invariant(escrow, chain)


def test_an_empty_lane_does_not_block_a_batch(escrow, swarm, clients, voucher, chain):
    b, client, other = swarm[1], clients[0], clients[1]
    fund(escrow, other, [b], ETHER)
    tx = redeem(escrow, b, [voucher(client, b, ETHER), voucher(other, b, ETHER)])  # first pays 0: skipped
    assert [e.event_name for e in tx.events].count("VoucherSkipped") == 1
    assert escrow.earned(b) == net_of(ETHER)
    escrow_invariant(escrow, chain)


# ------------------------------------------------------------------ reclaim vs redemption


def test_reclaim_waits_for_the_delay(escrow, swarm, funded, chain):
    client, server = funded[0], swarm[0]
    with ape.reverts(escrow.PaymentEscrow_NoReclaimAnnounced):
        escrow.reclaim(server, sender=client)
    with ape.reverts(escrow.PaymentEscrow_ZeroAmount):
        escrow.announceReclaim(server, 0, sender=client)
    tx = escrow.announceReclaim(server, 4 * ETHER, sender=client)
    assert tx.events[0].reclaimAt == chain.blocks.head.timestamp + RECLAIM_DELAY
    with ape.reverts(escrow.PaymentEscrow_ReclaimLocked):
        escrow.reclaim(server, sender=client)
    chain.pending_timestamp = chain.blocks.head.timestamp + RECLAIM_DELAY
    before = client.balance
    tx = escrow.reclaim(server, sender=client)
    assert tx.events[0].amount == 4 * ETHER
    assert client.balance == before + 4 * ETHER - tx.total_fees_paid
    l = escrow.laneOf(client, server)
    assert (l.amount, l.reclaimAmount, l.reclaimAt) == (6 * ETHER, 0, 0)
    assert lane(escrow, client, swarm[1]) == 10 * ETHER  # other lanes untouched
    with ape.reverts(escrow.PaymentEscrow_NoReclaimAnnounced):
        escrow.reclaim(server, sender=client)  # once
    escrow_invariant(escrow, chain)


def test_cancel_and_reannounce(escrow, swarm, funded, chain):
    client, server = funded[0], swarm[0]
    with ape.reverts(escrow.PaymentEscrow_NoReclaimAnnounced):
        escrow.cancelReclaim(server, sender=client)
    escrow.announceReclaim(server, ETHER, sender=client)
    escrow.cancelReclaim(server, sender=client)
    chain.pending_timestamp += RECLAIM_DELAY + 1
    with ape.reverts(escrow.PaymentEscrow_NoReclaimAnnounced):
        escrow.reclaim(server, sender=client)
    escrow.announceReclaim(server, ETHER, sender=client)
    chain.pending_timestamp += RECLAIM_DELAY - 10
    escrow.announceReclaim(server, 2 * ETHER, sender=client)  # a new announcement restarts the delay
    chain.pending_timestamp += 20
    with ape.reverts(escrow.PaymentEscrow_ReclaimLocked):
        escrow.reclaim(server, sender=client)


def test_client_cannot_reclaim_out_from_under_a_voucher(escrow, swarm, clients, voucher, chain):
    """The race: the client announces a reclaim of the whole lane right after signing a
    voucher. It cannot take the money before the delay, and the server redeeming inside the
    delay (even in its last second) is paid in full; the client only gets what is left."""
    server, client = swarm[0], clients[0]
    fund(escrow, client, [server], 3 * ETHER)
    held = voucher(client, server, 2 * ETHER)
    escrow.announceReclaim(server, 3 * ETHER, sender=client)
    with ape.reverts(escrow.PaymentEscrow_ReclaimLocked):
        escrow.reclaim(server, sender=client)  # the front-run fails
    matures = escrow.laneOf(client, server).reclaimAt
    chain.pending_timestamp = matures - 1  # the server's last second
    redeem(escrow, server, held)
    assert chain.blocks.head.timestamp == matures - 1
    assert escrow.earned(server) == net_of(2 * ETHER)
    chain.pending_timestamp = matures  # (anvil may reuse a timestamp for the next block)
    tx = escrow.reclaim(server, sender=client)
    assert tx.events[0].amount == ETHER  # only the unspent part
    assert lane(escrow, client, server) == 0
    escrow_invariant(escrow, chain)


def test_server_that_sleeps_past_the_delay_is_not_paid(escrow, swarm, clients, voucher, chain):
    """The delay is the server's window: redeem before an announced reclaim matures."""
    server, client = swarm[0], clients[0]
    fund(escrow, client, [server], ETHER)
    held = voucher(client, server, ETHER)
    escrow.announceReclaim(server, ETHER, sender=client)
    chain.pending_timestamp += RECLAIM_DELAY + 1
    escrow.reclaim(server, sender=client)
    with ape.reverts(escrow.PaymentEscrow_NothingToRedeem):
        redeem(escrow, server, held)


# ------------------------------------------------------------------ who may redeem


def test_unregistered_account_cannot_redeem_or_price(escrow, funded, stranger, voucher):
    with ape.reverts(escrow.PaymentEscrow_NotActiveServer):
        redeem(escrow, stranger, voucher(funded[0], stranger, ETHER))
    with ape.reverts(escrow.PaymentEscrow_NotActiveServer):
        escrow.setPrice(10, 10**15, sender=stranger)


def test_deactivated_server_cannot_redeem_until_registered_again(escrow, swarm, funded, voucher, vault, registry,
                                                                  signer_keys, version_id, chain):
    """A server whose stake falls under the minimum (by unstaking, or a slash: both end in the
    registry's stake-decrease hook) or that left is no longer paid; its vouchers are not used
    up, so after re-staking and registering again it redeems them, unless the client reclaimed
    in the meantime."""
    server, client = swarm[0], funded[0]
    held = voucher(client, server, ETHER)
    vault.requestUnstake(2 * ETHER, sender=server)
    assert not registry.isActive(server)
    with ape.reverts(escrow.PaymentEscrow_NotActiveServer):
        redeem(escrow, server, held)
    with ape.reverts(escrow.PaymentEscrow_NotActiveServer):
        escrow.setPrice(1, 1, sender=server)
    vault.stake(value=2 * ETHER, sender=server)
    registry.register(signer_keys[0].address, "grpc://127.0.0.1:31330", version_id, 0, 8, 50, sender=server)
    redeem(escrow, server, held)
    assert escrow.earned(server) == net_of(ETHER)
    leaver = swarm[1]
    held2 = voucher(client, leaver, ETHER)
    registry.leave(sender=leaver)
    with ape.reverts(escrow.PaymentEscrow_NotActiveServer):
        redeem(escrow, leaver, held2)
    escrow_invariant(escrow, chain)


def test_slashed_server_is_cut_off(escrow, swarm, funded, voucher, court, signed_receipt, signer_keys,
                                   open_dispute, vote, chain, vault, registry):
    """A real Faulty ruling slashes the accused under the minimum: its unredeemed vouchers stop paying."""
    from conftest import draw

    accused, client = swarm[0], funded[0]
    held = voucher(client, accused, ETHER)
    vault.requestUnstake(ETHER // 2, sender=accused)  # 1.5 active + 0.5 unbonding: the slash takes 1 from active
    r, sig = signed_receipt(accused, signer_keys[0])
    did = open_dispute(r, sig, swarm[4])
    panel = draw(court, chain, did)
    vote(court, did, {a: True for a in panel}, {a.address: a for a in swarm})
    court.resolve(did, sender=swarm[4])
    assert vault.stakeOf(accused) < vault.minStake() and not registry.isActive(accused)
    with ape.reverts(escrow.PaymentEscrow_NotActiveServer):
        redeem(escrow, accused, held)
    assert lane(escrow, client, accused) == 10 * ETHER


# ------------------------------------------------------------------ fee


def test_fee_bounds(project, owner, registry, escrow, stranger):
    with ape.reverts(project.PaymentEscrow.PaymentEscrow_FeeOutOfBounds):
        project.PaymentEscrow.deploy(registry, 1_001, RECLAIM_DELAY, owner, sender=owner)
    with ape.reverts(escrow.PaymentEscrow_FeeOutOfBounds):
        escrow.setFee(1_001, sender=owner)
    with ape.reverts(escrow.OwnableUnauthorizedAccount):
        escrow.setFee(5, sender=stranger)
    escrow.setFee(1_000, sender=owner)
    assert escrow.feeBps() == 1_000 == escrow.MAX_FEE_BPS()
    escrow.setFee(0, sender=owner)
    assert escrow.feeBps() == 0


def test_fee_raised_mid_flight_needs_the_servers_consent(escrow, swarm, funded, voucher, owner, chain):
    """The owner raises the fee between a server's signing of a batch and its mining: the
    server's `maxFeeBps` makes it revert instead of paying more; accepted, it pays exactly."""
    server, client = swarm[0], funded[0]
    redeem(escrow, server, voucher(client, server, ETHER))
    escrow.setFee(500, sender=owner)
    later = voucher(client, server, 3 * ETHER)
    with ape.reverts(escrow.PaymentEscrow_FeeAboveLimit):
        redeem(escrow, server, later, max_fee=ESCROW_FEE_BPS)
    redeem(escrow, server, later, max_fee=500)
    assert escrow.earned(server) == net_of(ETHER) + net_of(2 * ETHER, 500)
    assert escrow.auditPool() == ETHER // 100 + 2 * ETHER * 5 // 100
    escrow_invariant(escrow, chain)


# ------------------------------------------------------------------ earnings


def test_withdraw_earnings(escrow, swarm, funded, voucher, chain):
    server = swarm[0]
    with ape.reverts(escrow.PaymentEscrow_NothingToWithdraw):
        escrow.withdraw(sender=server)
    redeem(escrow, server, voucher(funded[0], server, ETHER))
    before = server.balance
    tx = escrow.withdraw(sender=server)
    assert server.balance == before + net_of(ETHER) - tx.total_fees_paid
    assert escrow.earned(server) == 0
    with ape.reverts(escrow.PaymentEscrow_NothingToWithdraw):
        escrow.withdraw(sender=server)
    escrow_invariant(escrow, chain)


def test_spend_earnings_as_a_client(escrow, swarm, funded, voucher, chain):
    """A server moves what it earned into its own deposit and pays another server with it."""
    a, b = swarm[0], swarm[1]
    redeem(escrow, a, voucher(funded[0], a, 2 * ETHER))
    with ape.reverts(escrow.PaymentEscrow_ZeroAmount):
        escrow.spendEarned(0, sender=a)
    with ape.reverts(escrow.PaymentEscrow_InsufficientEarned):
        escrow.spendEarned(2 * ETHER, sender=a)  # more than earned (the fee was taken)
    escrow.spendEarned(ETHER, sender=a)
    assert escrow.balanceOf(a) == ETHER and escrow.earned(a) == net_of(2 * ETHER) - ETHER
    escrow.allocate([b], [ETHER], sender=a)
    redeem(escrow, b, voucher(a, b, ETHER))
    assert escrow.earned(b) == net_of(ETHER)
    escrow_invariant(escrow, chain)


def test_reentrancy_on_withdraw_and_reclaim(project, escrow, owner, chain):
    attacker = project.ReentrantEscrowUser.deploy(escrow, sender=owner)
    escrow.fundAuditPool(value=ETHER, sender=owner)
    escrow.credit([attacker], ETHER // 2, sender=owner)
    attacker.attackWithdraw(sender=owner)  # earnings: re-entering withdraw and spendEarned
    assert attacker.reentryAttempts() == 1 and not attacker.reentrySucceeded()
    assert chain.provider.get_balance(attacker.address) == ETHER // 2
    attacker.fundLaneAndAnnounce(value=ETHER, sender=owner)
    chain.pending_timestamp += RECLAIM_DELAY + 1
    attacker.attackReclaim(sender=owner)  # a lane: re-entering reclaim
    assert attacker.reentryAttempts() == 2 and not attacker.reentrySucceeded()
    assert chain.provider.get_balance(attacker.address) == ETHER // 2 + ETHER
    attacker.fundDeposit(value=2 * ETHER, sender=owner)
    attacker.attackWithdrawDeposit(ETHER, sender=owner)  # the deposit: re-entering withdrawDeposit
    assert attacker.reentryAttempts() == 3 and not attacker.reentrySucceeded()
    assert escrow.balanceOf(attacker) == ETHER
    escrow_invariant(escrow, chain)


# ------------------------------------------------------------------ audit pool


def test_auditors_paid_from_the_pool_whatever_the_verdict(escrow, swarm, funded, voucher, owner, stranger, chain):
    server = swarm[0]
    redeem(escrow, server, voucher(funded[0], server, 10 * ETHER))
    pool = escrow.auditPool()
    assert pool == 10 * ETHER // 100
    auditors = [swarm[2], swarm[3], swarm[4]]
    with ape.reverts(escrow.PaymentEscrow_NotAuditPayer):
        escrow.credit(auditors, 10**16, sender=stranger)
    escrow.credit(auditors, 10**16, sender=owner)
    assert [escrow.earned(a) for a in auditors] == [10**16] * 3
    assert escrow.auditPool() == pool - 3 * 10**16
    # a short pool pays an equal share, never reverts (a court's resolve must not get stuck)
    escrow.credit(auditors, ETHER, sender=owner)
    assert escrow.auditPool() < 3 and escrow.earned(auditors[0]) == 10**16 + (pool - 3 * 10**16) // 3
    escrow.credit([], ETHER, sender=owner)
    with ape.reverts(escrow.PaymentEscrow_ZeroAmount):
        escrow.fundAuditPool(value=0, sender=stranger)
    escrow.fundAuditPool(value=ETHER, sender=stranger)
    escrow.withdraw(sender=auditors[0])
    escrow.setAuditPayer(stranger, sender=owner)
    with ape.reverts(escrow.PaymentEscrow_NotAuditPayer):
        escrow.credit(auditors, 1, sender=owner)
    escrow_invariant(escrow, chain)


# ------------------------------------------------------------------ prices and governance


def test_prices(escrow, swarm):
    tx = escrow.setPrice(10**9, 10**16, sender=swarm[0])
    assert tx.events[0].event_name == "PriceSet"
    assert escrow.priceOf(swarm[0]) == 10**9
    t = escrow.termsOf(swarm[0])
    assert (t.price, t.creditLimit) == (10**9, 10**16)
    escrow.setPrice(0, 0, sender=swarm[0])  # free
    assert escrow.priceOf(swarm[0]) == 0


def test_governance(project, escrow, owner, stranger, registry):
    with ape.reverts(escrow.PaymentEscrow_DelayOutOfBounds):
        escrow.setReclaimDelay(299, sender=owner)
    with ape.reverts(escrow.PaymentEscrow_DelayOutOfBounds):
        escrow.setReclaimDelay(30 * 86400 + 1, sender=owner)
    with ape.reverts(project.PaymentEscrow.PaymentEscrow_DelayOutOfBounds):
        project.PaymentEscrow.deploy(registry, 0, 0, owner, sender=owner)
    with ape.reverts(project.PaymentEscrow.PaymentEscrow_ZeroAddress):
        project.PaymentEscrow.deploy("0x" + "00" * 20, 0, 3600, owner, sender=owner)
    with ape.reverts(escrow.OwnableUnauthorizedAccount):
        escrow.setReclaimDelay(600, sender=stranger)
    with ape.reverts(escrow.OwnableUnauthorizedAccount):
        escrow.setAuditPayer(stranger, sender=stranger)
    escrow.setReclaimDelay(600, sender=owner)
    assert escrow.reclaimDelay() == 600
    with ape.reverts(escrow.PaymentEscrow_RenounceDisabled):
        escrow.renounceOwnership(sender=owner)
    escrow.transferOwnership(stranger, sender=owner)
    assert escrow.owner() == owner  # two-step: not yet
    escrow.acceptOwnership(sender=stranger)
    assert escrow.owner() == stranger


# ------------------------------------------------------------------ stateful


def test_escrow_books_read_from_storage_match_the_getters(escrow, swarm, funded, voucher, owner, chain):
    """The stateful runs read the escrow's books from storage (EscrowBooks); with every field
    non-zero (deposit, lane, redeemed, earnings, pool) each read equals its getter, and a wrong
    slot is caught rather than read as zero."""
    server, client = swarm[0], funded[0]
    escrow.allocate([], [], value=2 * ETHER, sender=client)  # an unallocated deposit too
    redeem(escrow, server, voucher(client, server, ETHER // 4))
    escrow.credit([client], ETHER // 1000, sender=owner)
    books = EscrowBooks(chain.provider.web3, escrow).refresh()
    assert books.lane(client.address, server.address) == (lane(escrow, client, server), ETHER // 4)
    assert books.earned(server.address) > 0 and books.earned(client.address) > 0
    assert books.balance_of(client.address) == 2 * ETHER and books.audit_pool() > 0
    books.check_layout([client.address], [server.address])
    books.EARNED = books.BALANCE_OF  # a wrong slot reads another mapping: the check says so
    with pytest.raises(AssertionError, match="storage layout changed"):
        books.check_layout([client.address], [server.address])



def test_random_payments_never_create_or_lose_funds(project, chain, owner, accounts, vault, registry, version_id,
                                                   court, signer_keys):
    """Random deposits and lanes, vouchers (fresh and stale, many clients per batch), redemptions by
    active and deactivated servers, reclaims (early ones must revert), withdrawals, spending,
    fee changes, audit credits and time travel. After every step: balance == deposits + earned
    + audit pool, the per-account books add up, and no pair was paid more than was signed."""
    servers = list(accounts[1:4])
    clients = list(accounts[5:9])
    for i, s in enumerate(servers):
        vault.stake(value=2 * ETHER, sender=s)
        registry.register(signer_keys[i].address, f"grpc://h:{i}", version_id, 0, 8, 50, sender=s)
    escrow = project.PaymentEscrow.deploy(registry, ESCROW_FEE_BPS, RECLAIM_DELAY, owner, sender=owner)
    escrow.setAuditPayer(owner, sender=owner)
    for c in clients:
        escrow.allocate(servers, [2 * ETHER] * len(servers), value=6 * ETHER, sender=c)
    domain = PaymentDomain(chain_id=chain.chain_id, escrow=escrow.address)
    books = EscrowBooks(chain.provider.web3, escrow)
    snapshot = [chain.snapshot()]
    amounts = st.integers(1, 3 * ETHER)
    seen = {"redeemed": 0, "skipped": 0, "reclaimed": 0, "early reclaim refused": 0, "withdrawn": 0,
            "refused inactive": 0, "spent": 0}

    class Machine(RuleBasedStateMachine):
        @initialize()
        def start(self):
            chain.restore(snapshot[0])
            snapshot[0] = chain.snapshot()
            self.signed = {}  # (client, server) -> highest cumulative signed
            self.paid = {}  # (client, server) -> redeemed, from events

        def _try(self, call):
            try:
                return call()
            except ape.exceptions.ContractLogicError:
                return None

        @rule(c=st.sampled_from(clients), s=st.sampled_from(servers), amount=amounts, keep=st.integers(0, 2 * ETHER))
        def deposit(self, c, s, amount, keep):
            """Deposit amount + keep, allocate amount to s's lane, keep the rest unallocated."""
            escrow.allocate([s], [amount], value=amount + keep, sender=c)

        @rule(c=st.sampled_from(clients), amount=amounts)
        def withdraw_deposit(self, c, amount):
            self._try(lambda: escrow.withdrawDeposit(amount, sender=c))

        @rule(s=st.sampled_from(servers), cs=st.lists(st.sampled_from(clients), min_size=1, max_size=3),
              more=st.integers(0, 2 * ETHER), stale=st.booleans())
        def pay_and_redeem(self, s, cs, more, stale):
            batch = []
            for n, c in enumerate(cs):
                key = (c.address, s.address)
                self.signed[key] = self.signed.get(key, 0) + more
                cum = self.signed[key] // 2 if stale and n == 0 else self.signed[key]  # a stale one first
                batch.append(sign_voucher(Voucher(c.address, s.address, cum, b"\x00" * 32), domain, c.private_key))
            vs, sigs = redeem_args(batch)
            active = registry.isActive(s)
            tx = self._try(lambda: escrow.redeem(vs, sigs, 1_000, sender=s))  # any fee accepted
            assert active or tx is None, "an inactive server was paid"
            seen["refused inactive"] += not active
            for e in (tx.events if tx else []):
                seen["skipped"] += e.event_name == "VoucherSkipped"
                if e.event_name == "VoucherRedeemed":
                    seen["redeemed"] += 1
                    key = (e.client, e.server)
                    self.paid[key] = self.paid.get(key, 0) + e.paid

        @rule(c=st.sampled_from(clients), s=st.sampled_from(servers), amount=amounts, wait=st.booleans())
        def reclaim(self, c, s, amount, wait):
            escrow.announceReclaim(s, amount, sender=c)
            if not wait:
                with ape.reverts(escrow.PaymentEscrow_ReclaimLocked):
                    escrow.reclaim(s, sender=c)
                seen["early reclaim refused"] += 1
                return
            chain.pending_timestamp += RECLAIM_DELAY + 1
            before = escrow.laneOf(c, s).amount
            tx = escrow.reclaim(s, sender=c)
            assert tx.events[0].amount == min(amount, before)
            seen["reclaimed"] += 1

        @rule(who=st.sampled_from([*servers, *servers, clients[0]]))
        def withdraw(self, who):
            seen["withdrawn"] += self._try(lambda: escrow.withdraw(sender=who)) is not None

        @rule(s=st.sampled_from(servers), amount=amounts)
        def spend(self, s, amount):
            seen["spent"] += self._try(lambda: escrow.spendEarned(min(amount, escrow.earned(s)) or 1,
                                                                  sender=s)) is not None

        @rule(i=st.integers(0, len(servers) - 1))
        def deactivate_or_rejoin(self, i):
            """Unstake under the minimum (what a slash does to the registry), or stake and rejoin."""
            s = servers[i]
            if registry.isActive(s):
                vault.requestUnstake(vault.stakeOf(s), sender=s)
                c = clients[i]
                key = (c.address, s.address)
                self.signed[key] = self.signed.get(key, 0) + 1
                v = sign_voucher(Voucher(c.address, s.address, self.signed[key], b"\x00" * 32), domain, c.private_key)
                with ape.reverts(escrow.PaymentEscrow_NotActiveServer):
                    escrow.redeem(*redeem_args([v]), 1_000, sender=s)  # any fee accepted
                seen["refused inactive"] += 1
            else:
                vault.stake(value=2 * ETHER, sender=s)
                registry.register(signer_keys[i].address, f"grpc://h:{i}", version_id, 0, 8, 50, sender=s)

        @rule(fee=st.sampled_from([0, 100, 1_000]))
        def set_fee(self, fee):
            escrow.setFee(fee, sender=owner)

        @rule(who=st.lists(st.sampled_from(servers + clients), min_size=1, max_size=3), each=amounts)
        def pay_auditors(self, who, each):
            escrow.credit(who, each, sender=owner)

        @rule(amount=amounts)
        def fund_pool(self, amount):
            escrow.fundAuditPool(value=amount, sender=owner)

        @rule(seconds=st.sampled_from([60, RECLAIM_DELAY + 1]))
        def travel(self, seconds):
            chain.pending_timestamp += seconds
            chain.mine()

        @invariant()
        def books_balance(self):
            b = books.refresh()  # storage reads, see EscrowBooks
            if b.balance() != b.total_deposits() + b.total_earned() + b.audit_pool():
                raise AssertionError(f"escrow invariant broken: balance {b.balance()} != "
                                     f"{b.total_deposits()} + {b.total_earned()} + {b.audit_pool()}")
            people = [c.address for c in [*clients, *servers]]
            deposits = sum(b.balance_of(a) for a in people)
            deposits += sum(b.lane(c.address, s.address)[0] for c in clients for s in servers)  # servers fund no lanes
            earned = sum(b.earned(a) for a in people)
            assert deposits == b.total_deposits() and earned == b.total_earned()

        @invariant()
        def never_more_than_signed(self):
            b = books.refresh()
            for (c, s), paid in self.paid.items():
                assert paid == b.lane(c, s)[1] <= self.signed.get((c, s), 0)

        def teardown(self):
            books.check_layout([c.address for c in clients], [s.address for s in servers])

    examples = int(os.environ.get("POLLEN_PAYMENTS_EXAMPLES", "10"))
    run_state_machine_as_test(Machine, settings=settings(
        max_examples=examples, stateful_step_count=15, deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
    print("stateful payments:", seen)
    if examples >= 10:  # a full run must have exercised the main paths (hypothesis disables rules at random)
        missing = [k for k in ("redeemed", "reclaimed", "early reclaim refused", "refused inactive") if not seen[k]]
        assert not missing, f"never exercised: {missing} ({seen})"
