"""DisputeCourt: every revert path and the adversarial cases, on the in-process chain."""

import os

import ape
import pytest
from eth_account import Account

from conftest import ABSTAIN, ETHER, EVIDENCE, FAULTY, HONEST, PARAMS, draw, fingerprint, vault_invariant
from pollen.receipts import KIND_BACKWARD, ReceiptDomain

FP = b"\x42" * 32  # a fingerprint for hand-made votes


@pytest.fixture
def by_addr(operators, challenger):
    return {a.address: a for a in [*operators, challenger]}


@pytest.fixture
def faulty_dispute(swarm, signed_receipt, open_dispute, operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    return open_dispute(r, sig, challenger)


def test_open_dispute_records_and_freezes(court, vault, swarm, signed_receipt, operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    tx = court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)
    ev = [e for e in tx.events if e.event_name == "DisputeOpened"][0]
    assert ev.accused == operators[0].address and ev.evidenceCid == EVIDENCE
    d = court.getDispute(1)
    assert d.stage == 1 and d.challenger == challenger.address and d.bond == PARAMS.bond
    assert vault.isFrozen(operators[0]) and vault.escrow() == PARAMS.bond
    with ape.reverts(vault.StakeVault_Frozen):
        vault.requestUnstake(1, sender=operators[0])


def test_open_dispute_reverts(court, chain, swarm, signed_receipt, operators, signer_keys, challenger, domain):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    args = (r.as_tuple(), sig, EVIDENCE, 0)
    with ape.reverts(court.DisputeCourt_WrongBond):
        court.openDispute(*args, value=PARAMS.bond - 1, sender=challenger)
    with ape.reverts(court.DisputeCourt_BadEvidenceCid):
        court.openDispute(r.as_tuple(), sig, "", 0, value=PARAMS.bond, sender=challenger)
    with ape.reverts(court.DisputeCourt_SelfDispute):
        court.openDispute(*args, value=PARAMS.bond, sender=operators[0])
    with ape.reverts(court.DisputeCourt_BadSignature):
        court.openDispute(r.as_tuple(), b"\x01" * 65, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)
    future, fsig = signed_receipt(operators[0], signer_keys[0], issued_at=chain.blocks.head.timestamp + 3600)
    with ape.reverts(court.DisputeCourt_ReceiptFromFuture):
        court.openDispute(future.as_tuple(), fsig, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)
    chain.pending_timestamp += PARAMS.dispute_window + 10
    chain.mine()
    with ape.reverts(court.DisputeCourt_WindowClosed):
        court.openDispute(*args, value=PARAMS.bond, sender=challenger)


def test_forged_signature_rejected(court, swarm, signed_receipt, operators, challenger):
    forger = Account.create()
    r, sig = signed_receipt(operators[0], forger)
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)


def test_signature_by_another_servers_key_rejected(court, swarm, signed_receipt, operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[1])  # op1's key, claiming to be op0
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)


@pytest.mark.parametrize("replay", ["chain_id", "court_address"])
def test_receipt_replayed_from_other_domain_rejected(court, chain, swarm, signed_receipt, operators, signer_keys, challenger, replay):
    other = (ReceiptDomain(chain_id=chain.chain_id + 1, court=court.address) if replay == "chain_id"
             else ReceiptDomain(chain_id=chain.chain_id, court="0x" + "ab" * 20))
    r, sig = signed_receipt(operators[0], signer_keys[0], dom=other)
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)


def test_receipt_span_outside_servers_span_rejected(court, swarm, signed_receipt, operators, signer_keys, challenger, registry, version_id):
    registry.update(signer_keys[0].address, "grpc://x:1", version_id, 0, 4, 10, sender=operators[0])
    r, sig = signed_receipt(operators[0], signer_keys[0], first=2, last=6, term=1)
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 2, value=PARAMS.bond, sender=challenger)


def test_receipt_from_server_after_it_left_rejected_but_before_accepted(court, chain, registry, swarm, signed_receipt, operators, signer_keys, challenger):
    before, bsig = signed_receipt(operators[0], signer_keys[0])
    chain.pending_timestamp += 60
    registry.leave(sender=operators[0])
    after, asig = signed_receipt(operators[0], signer_keys[0], issued_at=chain.blocks.head.timestamp + 30)
    chain.pending_timestamp += 60
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        court.openDispute(after.as_tuple(), asig, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)
    # still accountable for what it signed while registered
    court.openDispute(before.as_tuple(), bsig, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)


def test_same_receipt_disputed_twice(court, swarm, signed_receipt, operators, signer_keys, challenger, accounts):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)
    with ape.reverts(court.DisputeCourt_AlreadyDisputed):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, value=PARAMS.bond, sender=accounts[8])
    # a malleated (high-s) copy of the signature is the same receipt: still refused
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(sig[32:64], "big")
    malleated = sig[:32] + (n - s).to_bytes(32, "big") + bytes([55 - sig[64] + 0 if sig[64] in (27, 28) else sig[64] ^ 1])
    with ape.reverts(court.DisputeCourt_AlreadyDisputed):
        court.openDispute(r.as_tuple(), malleated, EVIDENCE, 0, value=PARAMS.bond, sender=accounts[8])


def test_draw_excludes_accused_and_challenger(court, chain, swarm, signed_receipt, operators, signer_keys):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, value=PARAMS.bond, sender=operators[1])
    with ape.reverts(court.DisputeCourt_DrawTooEarly):
        court.drawAuditors(1, sender=operators[2])
    auditors = draw(court, chain, 1)
    assert len(auditors) == 3
    assert operators[0].address not in auditors and operators[1].address not in auditors
    assert len(set(auditors)) == 3
    with ape.reverts(court.DisputeCourt_WrongStage):
        court.drawAuditors(1, sender=operators[2])


def test_accused_and_challenger_cannot_vote(court, chain, faulty_dispute, operators, challenger):
    draw(court, chain, faulty_dispute)
    for who in (operators[0], challenger):
        with ape.reverts(court.DisputeCourt_NotAuditor):
            court.commitVote(faulty_dispute, b"\x00" * 32, sender=who)


def test_draw_rescheduled_when_blockhash_expired(court, chain, faulty_dispute):
    chain.mine(300)
    tx = court.drawAuditors(faulty_dispute, sender=ape.accounts.test_accounts[9])
    assert tx.events[-1].event_name == "DrawRescheduled"
    assert court.getDispute(faulty_dispute).stage == 1
    assert len(draw(court, chain, faulty_dispute)) == 3


def test_auditor_cannot_vote_twice_or_change_vote(court, chain, faulty_dispute, by_addr):
    auditors = draw(court, chain, faulty_dispute)
    a = by_addr[auditors[0]]
    salt = os.urandom(32)
    court.commitVote(faulty_dispute, court.commitmentOf(faulty_dispute, a, FAULTY, FP, salt), sender=a)
    with ape.reverts(court.DisputeCourt_AlreadyCommitted):
        court.commitVote(faulty_dispute, court.commitmentOf(faulty_dispute, a, HONEST, FP, salt), sender=a)
    with ape.reverts(court.DisputeCourt_RevealNotOpen):
        court.revealVote(faulty_dispute, FAULTY, FP, salt, sender=a)
    chain.pending_timestamp += PARAMS.commit_period + 1
    chain.mine()
    with ape.reverts(court.DisputeCourt_CommitClosed):
        court.commitVote(faulty_dispute, b"\x01" * 32, sender=by_addr[auditors[1]])
    with ape.reverts(court.DisputeCourt_CommitmentMismatch):
        court.revealVote(faulty_dispute, HONEST, FP, salt, sender=a)  # a different vote
    with ape.reverts(court.DisputeCourt_NotCommitted):
        court.revealVote(faulty_dispute, FAULTY, FP, salt, sender=by_addr[auditors[1]])
    court.revealVote(faulty_dispute, FAULTY, FP, salt, sender=a)
    with ape.reverts(court.DisputeCourt_NotCommitted):
        court.revealVote(faulty_dispute, FAULTY, FP, salt, sender=a)  # twice


def test_copied_commitment_cannot_be_revealed(court, chain, faulty_dispute, by_addr):
    auditors = draw(court, chain, faulty_dispute)
    a, b = by_addr[auditors[0]], by_addr[auditors[1]]
    salt = os.urandom(32)
    c = court.commitmentOf(faulty_dispute, a, FAULTY, FP, salt)
    court.commitVote(faulty_dispute, c, sender=a)
    court.commitVote(faulty_dispute, c, sender=b)  # b copies a's commitment
    chain.pending_timestamp += PARAMS.commit_period + 1
    chain.mine()
    with ape.reverts(court.DisputeCourt_CommitmentMismatch):
        court.revealVote(faulty_dispute, FAULTY, FP, salt, sender=b)  # even knowing a's salt later


def test_reveal_and_resolve_deadlines(court, chain, faulty_dispute, by_addr, vote):
    auditors = draw(court, chain, faulty_dispute)
    with ape.reverts(court.DisputeCourt_NotResolvable):
        court.resolve(faulty_dispute, sender=by_addr[auditors[0]])
    salts = vote(court, faulty_dispute, {a: True for a in auditors}, by_addr, reveal=False)
    chain.pending_timestamp += PARAMS.commit_period + PARAMS.reveal_period + 2
    chain.mine()
    with ape.reverts(court.DisputeCourt_RevealClosed):
        court.revealVote(faulty_dispute, FAULTY, fingerprint(auditors[0], FAULTY), salts[auditors[0]],
                         sender=by_addr[auditors[0]])


def test_faulty_majority_slashes_and_pays(court, vault, chain, faulty_dispute, operators, challenger, by_addr, vote):
    accused = operators[0]
    slashable = vault.slashableOf(accused)
    auditors = draw(court, chain, faulty_dispute)
    vote(court, faulty_dispute, {auditors[0]: True, auditors[1]: True, auditors[2]: False}, by_addr)
    court.resolve(faulty_dispute, sender=challenger)
    slashed = slashable * PARAMS.slash_bps // 10_000
    assert vault.slashableOf(accused) == slashable - slashed
    assert vault.credits(challenger) == PARAMS.bond + slashed * PARAMS.finder_bps // 10_000
    per = slashed * PARAMS.auditor_bps // 10_000 // 2
    assert vault.credits(auditors[0]) == per and vault.credits(auditors[1]) == per
    assert vault.credits(auditors[2]) == 0
    assert not vault.isFrozen(accused) and vault.escrow() == 0
    assert court.getDispute(faulty_dispute).outcome == 1
    vault_invariant(vault, chain)
    with ape.reverts(court.DisputeCourt_WrongStage):
        court.resolve(faulty_dispute, sender=challenger)
    for a in [challenger, by_addr[auditors[0]], by_addr[auditors[1]]]:
        vault.withdraw(sender=a)
    vault_invariant(vault, chain)


def test_slash_below_minimum_deactivates_server(court, vault, registry, chain, swarm, signed_receipt, open_dispute, operators, signer_keys, challenger, by_addr, vote):
    vault.requestUnstake(ETHER // 2, sender=operators[0])  # 1.5 staked + 0.5 unbonding
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, challenger)
    auditors = draw(court, chain, d)
    vote(court, d, {a: True for a in auditors}, by_addr)
    tx = court.resolve(d, sender=challenger)  # slashes 1 ETH from active stake: 0.5 < minimum
    assert any(e.event_name == "ServerDeactivated" for e in tx.events)
    assert registry.getServer(operators[0]).status == 2
    assert not registry.isActive(operators[0])


def test_honest_majority_pays_accused_from_bond(court, vault, chain, faulty_dispute, operators, challenger, by_addr, vote):
    accused = operators[0]
    slashable = vault.slashableOf(accused)
    auditors = draw(court, chain, faulty_dispute)
    vote(court, faulty_dispute, {a: False for a in auditors}, by_addr)
    court.resolve(faulty_dispute, sender=challenger)
    assert vault.slashableOf(accused) == slashable  # no slash without a faulty majority
    share = PARAMS.bond * PARAMS.accused_share_bps // 10_000
    assert vault.credits(accused) == share
    assert vault.credits(challenger) == 0
    for a in auditors:
        assert vault.credits(a) == (PARAMS.bond - share) // 3
    vault_invariant(vault, chain)


def test_no_quorum_refunds_and_penalises_silent(court, vault, chain, faulty_dispute, operators, challenger, by_addr, vote):
    accused = operators[0]
    slashable = vault.slashableOf(accused)
    auditors = draw(court, chain, faulty_dispute)
    silent_stake = vault.slashableOf(auditors[1])
    salts = vote(court, faulty_dispute, {auditors[0]: True, auditors[1]: None, auditors[2]: None}, by_addr, reveal=False)
    chain.pending_timestamp += PARAMS.commit_period + 1
    chain.mine()
    court.revealVote(faulty_dispute, FAULTY, fingerprint(auditors[0], FAULTY), salts[auditors[0]],
                     sender=by_addr[auditors[0]])
    chain.pending_timestamp += PARAMS.reveal_period + 1
    chain.mine()
    tx = court.resolve(faulty_dispute, sender=operators[4])
    assert [e.auditor for e in tx.events if e.event_name == "AuditorPenalized"] == auditors[1:]
    assert vault.slashableOf(auditors[1]) == silent_stake - PARAMS.no_reveal_penalty
    assert vault.slashableOf(accused) == slashable
    assert vault.credits(challenger) == PARAMS.bond
    assert court.getDispute(faulty_dispute).outcome == 3
    assert vault.treasury() == 2 * PARAMS.no_reveal_penalty
    vault_invariant(vault, chain)


def test_tie_is_no_quorum(court, vault, chain, swarm, signed_receipt, open_dispute, operators, signer_keys, challenger, by_addr, vote, owner):
    p = list(PARAMS.court_tuple())
    p[5] = 4  # K = 4
    court.setParams(tuple(p), sender=owner)
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, challenger)
    auditors = draw(court, chain, d)
    assert len(auditors) == 4
    vote(court, d, dict(zip(auditors, [True, True, False, False])), by_addr)
    court.resolve(d, sender=challenger)
    assert court.getDispute(d).outcome == 3
    vault_invariant(vault, chain)


def test_unstaking_cannot_escape_a_slash(court, vault, chain, swarm, signed_receipt, open_dispute, operators, signer_keys, challenger, by_addr, vote):
    accused = operators[0]
    r, sig = signed_receipt(operators[0], signer_keys[0])
    vault.requestUnstake(vault.stakeOf(accused), sender=accused)  # run for the exit first
    d = open_dispute(r, sig, challenger)
    chain.pending_timestamp += PARAMS.unbonding_period + 1  # unbonding "matured" ...
    chain.mine()
    with ape.reverts(vault.StakeVault_NothingToWithdraw):
        vault.withdraw(sender=accused)  # ... but frozen
    auditors = draw(court, chain, d)
    chain.pending_timestamp -= 0
    # deadlines are set at draw time, so vote now
    vote(court, d, {a: True for a in auditors}, by_addr)
    court.resolve(d, sender=challenger)
    assert vault.accountOf(accused).unbonding == 2 * ETHER - 2 * ETHER * PARAMS.slash_bps // 10_000
    vault_invariant(vault, chain)


def test_frivolous_dispute_costs_the_bond(court, vault, chain, faulty_dispute, challenger, by_addr, vote):
    auditors = draw(court, chain, faulty_dispute)
    before = vault.credits(challenger)
    vote(court, faulty_dispute, {a: False for a in auditors}, by_addr)
    court.resolve(faulty_dispute, sender=challenger)
    assert vault.credits(challenger) == before
    with ape.reverts(vault.StakeVault_NothingToWithdraw):
        vault.withdraw(sender=challenger)


def test_no_eligible_auditors_is_no_quorum(court, vault, chain, registry, swarm, signed_receipt, open_dispute, operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, challenger)
    for op in operators[1:]:
        registry.leave(sender=op)
    assert draw(court, chain, d) == []
    court.resolve(d, sender=challenger)
    assert court.getDispute(d).outcome == 3 and vault.credits(challenger) == PARAMS.bond


def test_params_owner_only_and_bounded(court, owner, stranger):
    with ape.reverts(court.OwnableUnauthorizedAccount):
        court.setParams(PARAMS.court_tuple(), sender=stranger)
    for index, bad in [(0, 1), (5, 0), (5, 16), (6, 0), (6, 10_001), (7, 9_000), (4, 0), (10, 0)]:
        p = list(PARAMS.court_tuple())
        p[index] = bad
        if index == 7:
            p[8] = 2_000  # finder 90% + auditors 20% > 100%
        with ape.reverts(court.DisputeCourt_BadParams):
            court.setParams(tuple(p), sender=owner)
    p = list(PARAMS.court_tuple())
    p[0] = PARAMS.unbonding_period  # window must stay shorter than unbonding
    with ape.reverts(court.DisputeCourt_BadParams):
        court.setParams(tuple(p), sender=owner)


# ------------------------------------------------------------------ receipt v2: named block, kind, term


@pytest.mark.parametrize("block", [1, 5, 6, 0xFFFFFFFF])  # span [2, 5): below, at and past the end
def test_named_block_outside_span_rejected(court, swarm, signed_receipt, operators, signer_keys, challenger, block):
    r, sig = signed_receipt(operators[0], signer_keys[0], first=2, last=5)
    with ape.reverts(court.DisputeCourt_BadBlock, blockIndex=block, firstBlock=2, lastBlock=5):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, block, value=PARAMS.bond, sender=challenger)
    assert court.disputeCount() == 0
    court.openDispute(r.as_tuple(), sig, EVIDENCE, 4, value=PARAMS.bond, sender=challenger)  # last block: fine


@pytest.mark.parametrize("kind", [3, 255])
def test_unknown_receipt_kind_rejected(court, domain, swarm, signed_receipt, operators, signer_keys, challenger, kind):
    r, _ = signed_receipt(operators[0], signer_keys[0])
    t = list(r.as_tuple())
    t[5] = kind  # pollen.receipts refuses to build such a receipt: forge the tuple and sign its digest
    digest = court.receiptDigest(tuple(t))
    sig = bytes(Account.unsafe_sign_hash(digest, signer_keys[0].key).signature)
    assert court.recoverSigner(tuple(t), sig) == signer_keys[0].address
    with ape.reverts(court.DisputeCourt_BadKind, kind=kind):
        court.openDispute(tuple(t), sig, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)


def test_receipt_naming_another_term_rejected(court, chain, registry, version_id, swarm, signed_receipt, operators, signer_keys, challenger):
    # op0 moves to [0, 4) under a new signer: term 0 = (key0, [0, 8)), term 1 = (key1', [0, 4))
    new_key = Account.from_key(b"\x77" * 32)
    chain.pending_timestamp += 60
    registry.update(new_key.address, "grpc://x:1", version_id, 0, 4, 10, sender=operators[0])
    now = chain.blocks.head.timestamp
    # signed by the new key over [0, 4) but claiming term 0 (whose signer and span differ)
    r, sig = signed_receipt(operators[0], new_key, first=0, last=4, term=0, issued_at=now)
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)
    # signed by the old key over [0, 8) but claiming term 1 (in force now, other signer and span)
    r, sig = signed_receipt(operators[0], signer_keys[0], first=0, last=8, term=1, issued_at=now)
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)
    # a term that does not exist
    r, sig = signed_receipt(operators[0], new_key, first=0, last=4, term=7, issued_at=now)
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, value=PARAMS.bond, sender=challenger)
    # the right term is accepted
    r, sig = signed_receipt(operators[0], new_key, first=0, last=4, term=1, issued_at=now)
    court.openDispute(r.as_tuple(), sig, EVIDENCE, 3, value=PARAMS.bond, sender=challenger)
    assert court.getDispute(1).accused == operators[0].address


def test_backward_receipt_disputed_and_slashed(court, vault, chain, swarm, signed_receipt, operators, signer_keys, challenger, by_addr, vote):
    slashable = vault.slashableOf(operators[0])
    r, sig = signed_receipt(operators[0], signer_keys[0], first=1, last=7, step=41, kind=KIND_BACKWARD)
    tx = court.openDispute(r.as_tuple(), sig, EVIDENCE, 5, value=PARAMS.bond, sender=challenger)
    ev = [e for e in tx.events if e.event_name == "DisputeOpened"][0]
    assert ev.blockIndex == 5 and tuple(ev.receipt)[1:] == r.as_tuple()[1:]  # term, kind, blocksRoot included
    assert ev.receiptHash == court.hashReceipt(r.as_tuple())
    d = court.getDispute(1)
    assert (d.block, d.step, d.kind, d.firstBlock, d.lastBlock) == (5, 41, KIND_BACKWARD, 1, 7)
    assert d.abstainVotes == 0
    auditors = draw(court, chain, 1)
    vote(court, 1, {a: True for a in auditors}, by_addr)
    court.resolve(1, sender=challenger)
    assert court.getDispute(1).outcome == 1
    assert vault.slashableOf(operators[0]) == slashable - slashable * PARAMS.slash_bps // 10_000
    vault_invariant(vault, chain)


def test_dispute_records_named_block_and_step(court, swarm, signed_receipt, open_dispute, operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0], first=3, last=8, step=12, kind=1)
    d = court.getDispute(open_dispute(r, sig, challenger, block=6))
    assert (d.block, d.step, d.kind) == (6, 12, 1)
    # positional order pollen/chain.py reads
    assert list(d)[15:] == [0, 6, 12, 1] and list(d)[9:11] == [3, 8]


def test_hash_receipt_covers_every_field(court, swarm, signed_receipt, operators, signer_keys):
    from eth_abi import encode
    from eth_utils import keccak

    from pollen.receipts import RECEIPT_TYPE, RECEIPT_TYPEHASH

    assert court.RECEIPT_TYPEHASH() == RECEIPT_TYPEHASH == keccak(text=RECEIPT_TYPE)
    r, _ = signed_receipt(operators[0], signer_keys[0], term=3, kind=2)
    types = ["bytes32", "address", "uint256", "uint32", "uint32", "uint32", "uint8", "bytes32", "uint64",
             "bytes32", "bytes32", "bytes32", "uint64"]
    expected = keccak(encode(types, [RECEIPT_TYPEHASH, *r.as_tuple()]))
    assert court.hashReceipt(r.as_tuple()) == expected
    for i in range(12):  # changing any one field changes the hash
        t = list(r.as_tuple())
        t[i] = (b"\x01" * 32 if isinstance(t[i], bytes) else
                "0x" + "12" * 20 if isinstance(t[i], str) else (t[i] + 1) % 3 if i == 5 else t[i] + 1)
        assert court.hashReceipt(tuple(t)) != expected, i


# ------------------------------------------------------------------ fingerprinted votes and abstention


def test_all_abstain_is_no_quorum_and_refunds_in_full(court, vault, chain, faulty_dispute, operators, challenger, by_addr, vote):
    accused = operators[0]
    slashable = vault.slashableOf(accused)
    auditors = draw(court, chain, faulty_dispute)
    stakes = {a: vault.slashableOf(a) for a in auditors}
    vote(court, faulty_dispute, {a: "abstain" for a in auditors}, by_addr)
    d = court.getDispute(faulty_dispute)
    assert (d.abstainVotes, d.faultyVotes, d.honestVotes) == (3, 0, 0)
    assert all(court.voteOf(faulty_dispute, a).state == 5 for a in auditors)  # RevealedAbstain
    tx = court.resolve(faulty_dispute, sender=challenger)  # early: everyone revealed
    assert not [e for e in tx.events if e.event_name == "AuditorPenalized"]
    assert court.getDispute(faulty_dispute).outcome == 3
    assert vault.credits(challenger) == PARAMS.bond
    assert vault.slashableOf(accused) == slashable and not vault.isFrozen(accused)
    for a in auditors:
        assert vault.slashableOf(a) == stakes[a] and vault.credits(a) == 0
    assert vault.treasury() == 0 and vault.escrow() == 0
    vault_invariant(vault, chain)


def test_one_faulty_and_two_abstain_cannot_slash(court, vault, chain, faulty_dispute, operators, challenger, by_addr, vote):
    accused = operators[0]
    slashable = vault.slashableOf(accused)
    auditors = draw(court, chain, faulty_dispute)
    vote(court, faulty_dispute, {auditors[0]: True, auditors[1]: "abstain", auditors[2]: "abstain"}, by_addr)
    court.resolve(faulty_dispute, sender=challenger)
    assert court.getDispute(faulty_dispute).outcome == 3
    assert vault.slashableOf(accused) == slashable
    assert vault.credits(challenger) == PARAMS.bond
    assert vault.credits(auditors[0]) == 0
    vault_invariant(vault, chain)


def test_two_faulty_and_one_abstain_slashes(court, vault, chain, faulty_dispute, operators, challenger, by_addr, vote):
    auditors = draw(court, chain, faulty_dispute)
    vote(court, faulty_dispute, {auditors[0]: True, auditors[1]: "abstain", auditors[2]: True}, by_addr)
    court.resolve(faulty_dispute, sender=challenger)
    assert court.getDispute(faulty_dispute).outcome == 1
    assert vault.credits(auditors[1]) == 0 and vault.credits(auditors[0]) == vault.credits(auditors[2]) > 0
    vault_invariant(vault, chain)


def test_abstainer_not_penalised_but_silent_is(court, vault, chain, faulty_dispute, challenger, by_addr, vote):
    auditors = draw(court, chain, faulty_dispute)
    salts = vote(court, faulty_dispute, {auditors[0]: "abstain", auditors[1]: True, auditors[2]: None}, by_addr, reveal=False)
    chain.pending_timestamp += PARAMS.commit_period + 1
    chain.mine()
    for a, code in ((auditors[0], ABSTAIN), (auditors[1], FAULTY)):
        court.revealVote(faulty_dispute, code, fingerprint(a, code), salts[a], sender=by_addr[a])
    with ape.reverts(court.DisputeCourt_NotResolvable):
        court.resolve(faulty_dispute, sender=challenger)  # one drawn auditor has not revealed
    chain.pending_timestamp += PARAMS.reveal_period + 1
    chain.mine()
    tx = court.resolve(faulty_dispute, sender=challenger)
    assert [e.auditor for e in tx.events if e.event_name == "AuditorPenalized"] == [auditors[2]]
    assert court.getDispute(faulty_dispute).outcome == 3  # 1 judged of 3 drawn
    assert vault.credits(challenger) == PARAMS.bond
    vault_invariant(vault, chain)


def test_revealed_fingerprint_stored_and_emitted(court, chain, faulty_dispute, by_addr):
    auditors = draw(court, chain, faulty_dispute)
    a = by_addr[auditors[0]]
    fp, salt = os.urandom(32), os.urandom(32)
    court.commitVote(faulty_dispute, court.commitmentOf(faulty_dispute, a, HONEST, fp, salt), sender=a)
    assert court.voteOf(faulty_dispute, a).fingerprint == b"\x00" * 32  # secret until revealed
    chain.pending_timestamp += PARAMS.commit_period + 1
    chain.mine()
    tx = court.revealVote(faulty_dispute, HONEST, fp, salt, sender=a)
    ev = [e for e in tx.events if e.event_name == "VoteRevealed"][0]
    assert (ev.auditor, ev.verdict, ev.fingerprint) == (a.address, HONEST, fp)
    v = court.voteOf(faulty_dispute, a)
    assert v.fingerprint == fp and v.state == 3


def test_reveal_with_other_fingerprint_or_verdict_mismatches(court, chain, faulty_dispute, by_addr):
    auditors = draw(court, chain, faulty_dispute)
    a = by_addr[auditors[0]]
    fp, salt = os.urandom(32), os.urandom(32)
    court.commitVote(faulty_dispute, court.commitmentOf(faulty_dispute, a, FAULTY, fp, salt), sender=a)
    chain.pending_timestamp += PARAMS.commit_period + 1
    chain.mine()
    with ape.reverts(court.DisputeCourt_CommitmentMismatch):
        court.revealVote(faulty_dispute, FAULTY, os.urandom(32), salt, sender=a)  # another fingerprint
    with ape.reverts(court.DisputeCourt_CommitmentMismatch):
        court.revealVote(faulty_dispute, ABSTAIN, fp, salt, sender=a)  # turn the vote into an abstention
    court.revealVote(faulty_dispute, FAULTY, fp, salt, sender=a)


@pytest.mark.parametrize("verdict", [0, 4, 255])
def test_bad_verdict_rejected(court, chain, faulty_dispute, by_addr, verdict):
    auditors = draw(court, chain, faulty_dispute)
    a = by_addr[auditors[0]]
    salt = os.urandom(32)
    court.commitVote(faulty_dispute, court.commitmentOf(faulty_dispute, a, verdict, FP, salt), sender=a)
    chain.pending_timestamp += PARAMS.commit_period + 1
    chain.mine()
    with ape.reverts(court.DisputeCourt_BadVerdict, verdict=verdict):
        court.revealVote(faulty_dispute, verdict, FP, salt, sender=a)
