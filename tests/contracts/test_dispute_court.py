"""DisputeCourt: every revert path and the adversarial cases, on the in-process chain.
(One attack per test, run as an attacker would, lives in test_redteam.py.)"""

import os

import ape
import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from conftest import (
    ABSTAIN, ETHER, EVIDENCE, FAULTY, HONEST, PARAMS, commit_opening, draw, fingerprint, open_tx, params_with,
    vault_invariant,
)
from pollen.receipts import KIND_BACKWARD, RECEIPT_TYPEHASH, ReceiptDomain

FP = b"\x42" * 32  # a fingerprint for hand-made votes
BPS = 10_000
RECEIPT_ABI = ["bytes32", "address", "uint256", "uint32", "uint32", "uint32", "uint8", "bytes32", "uint64",
               "bytes32", "bytes32", "bytes32", "uint64"]
FAULTY_S, HONEST_S, ABSTAIN_S = 4, 3, 5  # VoteState.RevealedFaulty / RevealedHonest / RevealedAbstain
PENDING, OUT_FAULTY, OUT_HONEST, NO_QUORUM, LAPSED = 0, 1, 2, 3, 4  # Outcome
AWAITING_DRAW, VOTING, APPEALABLE, RESOLVED = 1, 2, 3, 4  # Stage


@pytest.fixture
def by_addr(operators, challenger, accounts):
    return {a.address: a for a in [*operators, challenger, accounts[7], accounts[8]]}


@pytest.fixture
def faulty_dispute(swarm, signed_receipt, open_dispute, operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    return open_dispute(r, sig, challenger)


def digest_of(t: tuple, domain: ReceiptDomain) -> bytes:
    """EIP-712 digest of a receipt tuple computed from scratch (any field values, even ones
    pollen.receipts refuses to build)."""
    return keccak(b"\x19\x01" + domain.separator() + keccak(encode(RECEIPT_ABI, [RECEIPT_TYPEHASH, *t])))


def commit_tuple(court, t, who, block, cid=EVIDENCE) -> bytes:
    salt = os.urandom(32)
    court.commitOpening(court.openingCommitment(who.address, court.hashReceipt(t), cid, block, salt), sender=who)
    return salt


def incident_of(receipt) -> bytes:
    return keccak(encode(["address", "bytes32"], [receipt.server, receipt.session_id]))


def travel(chain, seconds):
    chain.pending_timestamp += seconds
    chain.mine()


# ------------------------------------------------------------------ opening


def test_open_dispute_records_and_freezes(court, vault, registry, swarm, signed_receipt, operators, signer_keys,
                                          challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    bond = court.bondFor(operators[0])
    tx = open_tx(court, r, sig, challenger)
    ev = [e for e in tx.events if e.event_name == "DisputeOpened"][0]
    assert ev.accused == operators[0].address and ev.evidenceCid == EVIDENCE and ev.bond == bond
    d = court.getDispute(1)
    assert d.stage == AWAITING_DRAW and d.challenger == challenger.address and d.bond == bond
    assert d.ticketCount == registry.ticketCount() == 5 and d.incident == incident_of(r)
    assert ev.drawBlock == d.drawBlock == tx.block_number + PARAMS.draw_delay_blocks
    assert court.incidentLead(incident_of(r)) == 1 and court.incidentSlashedBy(incident_of(r)) == 0
    assert vault.isFrozen(operators[0]) and vault.escrow() == bond
    with ape.reverts(vault.StakeVault_Frozen):
        vault.requestUnstake(1, sender=operators[0])


def test_open_dispute_reverts(court, vault, chain, swarm, signed_receipt, operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    bond = court.bondFor(operators[0])
    with ape.reverts(court.DisputeCourt_BondTooLow, sent=bond - 1, required=bond):
        open_tx(court, r, sig, challenger, value=bond - 1)
    for cid in ("", "bafy123", "b" * 129):
        with ape.reverts(court.DisputeCourt_BadEvidenceCid):
            open_tx(court, r, sig, challenger, cid=cid)
    with ape.reverts(court.DisputeCourt_SelfDispute):
        open_tx(court, r, sig, operators[0])
    with ape.reverts(court.DisputeCourt_BadSignature):
        open_tx(court, r, b"\x01" * 65, challenger)
    with ape.reverts(court.DisputeCourt_NoOpeningCommitment):  # never committed
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, os.urandom(32), value=bond, sender=challenger)
    salt = commit_opening(court, r, challenger)
    with ape.reverts(court.DisputeCourt_NoOpeningCommitment):  # the commitment binds cid and block too
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 1, salt, value=bond, sender=challenger)
    with ape.reverts(court.DisputeCourt_AlreadyCommitted):
        commit_opening(court, r, challenger, salt=salt)
    future, fsig = signed_receipt(operators[0], signer_keys[0],
                                  issued_at=chain.blocks.head.timestamp + PARAMS.max_clock_skew + 600)
    with ape.reverts(court.DisputeCourt_ReceiptFromFuture):
        open_tx(court, future, fsig, challenger)
    assert court.disputeCount() == 0 and not vault.isFrozen(operators[0])
    travel(chain, PARAMS.dispute_window + 10)
    with ape.reverts(court.DisputeCourt_WindowClosed):
        open_tx(court, r, sig, challenger)
    with ape.reverts(court.DisputeCourt_OpeningExpired):  # committed in time, but revealed a day later
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, salt, value=bond, sender=challenger)


def test_window_is_judged_when_the_opening_is_committed(court, chain, swarm, signed_receipt, operators, signer_keys,
                                                        challenger, stranger):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    travel(chain, PARAMS.dispute_window - 120)
    salt = commit_opening(court, r, challenger)  # just inside the window
    travel(chain, 600)  # the reveal comes after the window closed: still fine
    late = commit_opening(court, r, stranger)  # a commitment after the close is not
    court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, salt, value=court.bondFor(r.server), sender=challenger)
    assert court.disputeCount() == 1
    with ape.reverts(court.DisputeCourt_WindowClosed):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, late, value=court.bondFor(r.server), sender=stranger)


def test_forged_signature_rejected(court, swarm, signed_receipt, operators, challenger):
    forger = Account.create()
    r, sig = signed_receipt(operators[0], forger)
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        open_tx(court, r, sig, challenger)


def test_signature_by_another_servers_key_rejected(court, swarm, signed_receipt, operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[1])  # op1's key, claiming to be op0
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        open_tx(court, r, sig, challenger)


@pytest.mark.parametrize("replay", ["chain_id", "court_address"])
def test_receipt_replayed_from_other_domain_rejected(court, chain, swarm, signed_receipt, operators, signer_keys,
                                                     challenger, replay):
    other = (ReceiptDomain(chain_id=chain.chain_id + 1, court=court.address) if replay == "chain_id"
             else ReceiptDomain(chain_id=chain.chain_id, court="0x" + "ab" * 20))
    r, sig = signed_receipt(operators[0], signer_keys[0], dom=other)
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        open_tx(court, r, sig, challenger)


def test_receipt_span_outside_servers_span_rejected(court, swarm, signed_receipt, operators, signer_keys, challenger,
                                                    registry, version_id):
    registry.update(signer_keys[0].address, "grpc://x:1", version_id, 0, 4, 10, sender=operators[0])
    r, sig = signed_receipt(operators[0], signer_keys[0], first=2, last=6, term=1)
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        open_tx(court, r, sig, challenger, block=2)


def test_receipt_from_server_after_it_left_rejected_but_before_accepted(court, chain, registry, swarm, signed_receipt,
                                                                        operators, signer_keys, challenger):
    before, bsig = signed_receipt(operators[0], signer_keys[0])
    chain.pending_timestamp += 60
    registry.leave(sender=operators[0])
    after, asig = signed_receipt(operators[0], signer_keys[0], issued_at=chain.blocks.head.timestamp + 30)
    chain.pending_timestamp += 60
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        open_tx(court, after, asig, challenger)
    # still accountable for what it signed while registered
    open_tx(court, before, bsig, challenger)
    assert court.getDispute(1).accused == operators[0].address


def test_receipt_disputed_again_until_a_faulty_ruling(court, vault, chain, swarm, signed_receipt, operators,
                                                      signer_keys, challenger, accounts, by_addr, vote):
    """Disputes over one receipt (or one session) may pile up while none has ruled faulty; the
    first faulty ruling slashes, later faulty rulings only refund their bonds, and after it no
    dispute over the incident opens."""
    accused, other = operators[0], accounts[8]
    r, sig = signed_receipt(accused, signer_keys[0])
    open_tx(court, r, sig, other)
    # a malleated (high-s) copy of the signature is not a second signature: refused outright
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(sig[32:64], "big")
    malleated = sig[:32] + (n - s).to_bytes(32, "big") + bytes([55 - sig[64] if sig[64] in (27, 28) else sig[64] ^ 1])
    with ape.reverts(court.DisputeCourt_BadSignature):
        open_tx(court, r, malleated, accounts[7])
    # the first dispute rules honest ...
    vote(court, 1, {a: False for a in draw(court, chain, 1)}, by_addr)
    court.resolve(1, sender=other)
    assert court.getDispute(1).outcome == OUT_HONEST and not vault.isFrozen(accused)
    # ... and the receipt can be disputed again, even twice at once
    open_tx(court, r, sig, challenger)
    open_tx(court, r, sig, other)
    assert vault.accountOf(accused).frozenCount == 2 and court.incidentLead(incident_of(r)) == 2
    slashable = vault.slashableOf(accused)
    vote(court, 2, {a: True for a in draw(court, chain, 2)}, by_addr)
    tx = court.resolve(2, sender=challenger)
    assert court.getDispute(2).outcome == OUT_FAULTY and court.incidentSlashedBy(incident_of(r)) == 2
    assert vault.slashableOf(accused) == slashable - slashable * PARAMS.slash_bps // BPS
    assert [e.slashed for e in tx.events if e.event_name == "DisputeResolved"] == [slashable // 2]
    assert vault.accountOf(accused).frozenCount == 1  # still frozen for dispute 3
    # no further opening for the incident: the same receipt, or another step of the session
    with ape.reverts(court.DisputeCourt_IncidentSlashed, disputeId=2):
        open_tx(court, r, sig, accounts[7])
    same_session, ssig = signed_receipt(accused, signer_keys[0], step=5, session=r.session_id)
    with ape.reverts(court.DisputeCourt_IncidentSlashed):
        open_tx(court, same_session, ssig, accounts[7])
    # dispute 3 (opened before the slash) rules faulty too: bond back, no second slash
    slashable = vault.slashableOf(accused)
    vote(court, 3, {a: True for a in draw(court, chain, 3)}, by_addr)
    tx = court.resolve(3, sender=other)
    assert court.getDispute(3).outcome == OUT_FAULTY and vault.slashableOf(accused) == slashable
    assert vault.credits(other) == court.getDispute(3).bond
    assert not [e for e in tx.events if e.event_name == "Slashed" and e.operator == accused.address]
    assert not vault.isFrozen(accused)
    # another session of the same server is another incident
    fresh, fsig = signed_receipt(accused, signer_keys[0])
    open_tx(court, fresh, fsig, accounts[7])
    vault_invariant(vault, chain)


def test_older_pending_dispute_is_not_blocked_by_a_newer_lead(court, vault, chain, swarm, signed_receipt, operators,
                                                              signer_keys, challenger, accounts, by_addr, vote):
    accused, first, copier = operators[0], accounts[7], accounts[8]
    r, sig = signed_receipt(accused, signer_keys[0])
    open_tx(court, r, sig, first)  # 1: the lead; it will rule honest
    open_tx(court, r, sig, challenger)  # 2: the real claim
    vote(court, 1, {a: False for a in draw(court, chain, 1)}, by_addr)
    court.resolve(1, sender=first)
    assert court.incidentLead(incident_of(r)) == 2  # the next unsettled one in opening order
    open_tx(court, r, sig, copier)  # 3: a copy of 2's public reveal, opened after 1 settled
    assert court.incidentLead(incident_of(r)) == 2
    vote(court, 3, {a: True for a in draw(court, chain, 3)}, by_addr)
    with ape.reverts(court.DisputeCourt_OlderDisputePending, disputeId=3, olderId=2):
        court.resolve(3, sender=copier)  # the copier's faulty ruling waits for the real claim
    vote(court, 2, {a: True for a in draw(court, chain, 2)}, by_addr)
    slashable = vault.slashableOf(accused)
    court.resolve(2, sender=challenger)
    assert vault.slashableOf(accused) == slashable - slashable * PARAMS.slash_bps // BPS
    assert vault.credits(challenger) == court.getDispute(2).bond + slashable * PARAMS.slash_bps // BPS * PARAMS.finder_bps // BPS
    assert court.incidentSlashedBy(incident_of(r)) == 2 and court.incidentLead(incident_of(r)) == 3
    court.resolve(3, sender=copier)  # now it settles: faulty, bond back, no second slash
    assert court.getDispute(3).outcome == OUT_FAULTY and vault.credits(copier) == court.getDispute(3).bond
    assert court.incidentLead(incident_of(r)) == 0
    vault_invariant(vault, chain)


# ------------------------------------------------------------------ draw


def test_draw_excludes_accused_and_challenger_and_freezes_the_panel(court, vault, chain, swarm, signed_receipt,
                                                                    open_dispute, operators, signer_keys):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, operators[1])  # a server as challenger
    with ape.reverts(court.DisputeCourt_DrawTooEarly):
        court.drawAuditors(d, sender=operators[2])
    chain.mine(PARAMS.draw_delay_blocks + 1)
    tx = court.drawAuditors(d, sender=operators[2])
    ev = [e for e in tx.events if e.event_name == "AuditorsDrawn"][0]
    auditors = list(court.auditorsOf(d))
    assert ev.round == 0 and list(ev.auditors) == auditors
    assert set(auditors) == {op.address for op in operators[2:]}  # the only three candidates
    rec = court.getDispute(d)
    assert rec.stage == VOTING and rec.drawnCount == 3 and rec.commitDeadline == ev.commitDeadline
    assert rec.revealDeadline == rec.commitDeadline + PARAMS.reveal_period
    assert all(court.voteOf(d, a).state == 1 and vault.isFrozen(a) for a in auditors)  # Drawn, frozen
    assert not vault.isFrozen(operators[1])
    with ape.reverts(court.DisputeCourt_WrongStage):
        court.drawAuditors(d, sender=operators[2])


def test_accused_and_challenger_cannot_vote(court, chain, faulty_dispute, operators, challenger):
    draw(court, chain, faulty_dispute)
    for who in (operators[0], challenger):
        with ape.reverts(court.DisputeCourt_NotAuditor):
            court.commitVote(faulty_dispute, b"\x00" * 32, sender=who)


def test_draw_lapses_past_the_blockhash_window(court, vault, chain, swarm, signed_receipt, open_dispute, operators,
                                               signer_keys, challenger):
    """drawBlock's hash is readable for 256 blocks: a draw in the 256th block after it still
    draws; one block later the dispute lapses (bond to the treasury, accused unfrozen)."""
    r1, s1 = signed_receipt(operators[0], signer_keys[0])
    r2, s2 = signed_receipt(operators[0], signer_keys[0])
    d1, d2 = open_dispute(r1, s1, challenger), open_dispute(r2, s2, challenger)
    b1, b2 = court.getDispute(d1).drawBlock, court.getDispute(d2).drawBlock
    assert b2 > b1
    chain.mine(b1 + 255 - chain.blocks.head.number)
    tx = court.drawAuditors(d1, sender=challenger)  # mined in block b1 + 256
    assert tx.block_number == b1 + 256 and len(court.auditorsOf(d1)) == 3
    chain.mine(b2 + 256 - chain.blocks.head.number)
    treasury = vault.treasury()
    tx = court.drawAuditors(d2, sender=challenger)  # block b2 + 257: the hash is gone
    assert tx.block_number == b2 + 257
    assert not [e for e in tx.events if e.event_name == "AuditorsDrawn"]
    ev = [e for e in tx.events if e.event_name == "DisputeResolved"][0]
    rec = court.getDispute(d2)
    assert ev.outcome == LAPSED and rec.outcome == LAPSED and rec.stage == RESOLVED
    assert vault.treasury() == treasury + rec.bond and vault.credits(challenger) == 0
    assert court.auditorsOf(d2) == [] and vault.accountOf(operators[0]).frozenCount == 1  # d1 still open
    with ape.reverts(court.DisputeCourt_WrongStage):
        court.drawAuditors(d2, sender=challenger)
    vault_invariant(vault, chain)


def test_no_eligible_auditors_is_no_quorum(court, vault, chain, registry, swarm, signed_receipt, open_dispute,
                                           operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, challenger)
    for op in operators[1:]:
        registry.leave(sender=op)  # tickets stay, but a server that left is not a candidate
    assert draw(court, chain, d) == []  # the draw itself settles: nobody to hear it
    rec = court.getDispute(d)
    assert rec.outcome == NO_QUORUM and rec.stage == RESOLVED and vault.credits(challenger) == rec.bond
    assert not vault.isFrozen(operators[0])
    with ape.reverts(court.DisputeCourt_WrongStage):
        court.resolve(d, sender=challenger)
    vault_invariant(vault, chain)


# ------------------------------------------------------------------ votes


def test_auditor_cannot_vote_twice_or_change_vote(court, chain, faulty_dispute, by_addr):
    auditors = draw(court, chain, faulty_dispute)
    a = by_addr[auditors[0]]
    salt = os.urandom(32)
    court.commitVote(faulty_dispute, court.commitmentOf(faulty_dispute, a, FAULTY, FP, salt), sender=a)
    with ape.reverts(court.DisputeCourt_VoteCommitted):
        court.commitVote(faulty_dispute, court.commitmentOf(faulty_dispute, a, HONEST, FP, salt), sender=a)
    with ape.reverts(court.DisputeCourt_RevealNotOpen):
        court.revealVote(faulty_dispute, FAULTY, FP, salt, sender=a)
    travel(chain, PARAMS.commit_period + 1)
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
    travel(chain, PARAMS.commit_period + 1)
    with ape.reverts(court.DisputeCourt_CommitmentMismatch):
        court.revealVote(faulty_dispute, FAULTY, FP, salt, sender=b)  # even knowing a's salt later


def test_reveal_and_resolve_deadlines(court, chain, faulty_dispute, by_addr, vote):
    auditors = draw(court, chain, faulty_dispute)
    with ape.reverts(court.DisputeCourt_NotResolvable):
        court.resolve(faulty_dispute, sender=by_addr[auditors[0]])
    salts = vote(court, faulty_dispute, {a: True for a in auditors}, by_addr, reveal=False)
    travel(chain, PARAMS.commit_period + PARAMS.reveal_period + 2)
    with ape.reverts(court.DisputeCourt_RevealClosed):
        court.revealVote(faulty_dispute, FAULTY, fingerprint(auditors[0], FAULTY), salts[auditors[0]],
                         sender=by_addr[auditors[0]])


# ------------------------------------------------------------------ rulings and payouts


def test_faulty_majority_slashes_and_pays(court, vault, chain, faulty_dispute, operators, challenger, by_addr, vote):
    accused = operators[0]
    slashable = vault.slashableOf(accused)
    bond = court.getDispute(faulty_dispute).bond
    auditors = draw(court, chain, faulty_dispute)
    dissenter = vault.slashableOf(auditors[2])
    vote(court, faulty_dispute, {auditors[0]: True, auditors[1]: True, auditors[2]: False}, by_addr)
    tx = court.resolve(faulty_dispute, sender=challenger)
    slashed = slashable * PARAMS.slash_bps // BPS
    assert vault.slashableOf(accused) == slashable - slashed
    assert vault.credits(challenger) == bond + slashed * PARAMS.finder_bps // BPS
    # the auditor who revealed the other verdict pays incoherencePenalty into the coherent pool
    assert vault.slashableOf(auditors[2]) == dissenter - PARAMS.incoherence_penalty and vault.credits(auditors[2]) == 0
    assert [(e.auditor, e.incoherent) for e in tx.events if e.event_name == "AuditorPenalized"] == [(auditors[2], True)]
    per = (slashed * PARAMS.auditor_bps // BPS + PARAMS.incoherence_penalty) // 2
    assert vault.credits(auditors[0]) == per and vault.credits(auditors[1]) == per
    assert not any(vault.isFrozen(a) for a in [accused, *auditors]) and vault.escrow() == 0
    assert court.getDispute(faulty_dispute).outcome == OUT_FAULTY
    vault_invariant(vault, chain)
    with ape.reverts(court.DisputeCourt_WrongStage):
        court.resolve(faulty_dispute, sender=challenger)
    for a in [challenger, by_addr[auditors[0]], by_addr[auditors[1]]]:
        vault.withdraw(sender=a)
    vault_invariant(vault, chain)


def test_slash_below_minimum_deactivates_server(court, vault, registry, chain, swarm, signed_receipt, open_dispute,
                                                operators, signer_keys, challenger, by_addr, vote):
    vault.requestUnstake(ETHER // 2, sender=operators[0])  # 1.5 staked + 0.5 unbonding
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, challenger)
    auditors = draw(court, chain, d)
    vote(court, d, {a: True for a in auditors}, by_addr)
    tx = court.resolve(d, sender=challenger)  # slashes 1 ETH from active stake: 0.5 < minimum
    assert any(e.event_name == "ServerDeactivated" for e in tx.events)
    assert registry.getServer(operators[0]).status == 2
    assert not registry.isActive(operators[0])


def test_honest_majority_pays_accused_from_bond(court, vault, chain, faulty_dispute, operators, challenger, by_addr,
                                                vote):
    accused = operators[0]
    slashable = vault.slashableOf(accused)
    bond = court.getDispute(faulty_dispute).bond
    auditors = draw(court, chain, faulty_dispute)
    vote(court, faulty_dispute, {a: False for a in auditors}, by_addr)
    court.resolve(faulty_dispute, sender=challenger)
    assert vault.slashableOf(accused) == slashable  # no slash without a faulty majority
    share = bond * PARAMS.accused_share_bps // BPS
    assert vault.credits(accused) == share
    assert vault.credits(challenger) == 0
    for a in auditors:
        assert vault.credits(a) == (bond - share) // 3
    assert vault.treasury() == (bond - share) % 3  # only the dust
    vault_invariant(vault, chain)


def test_no_quorum_refunds_and_penalises_silent(court, vault, chain, faulty_dispute, operators, challenger, by_addr,
                                                vote):
    accused = operators[0]
    slashable = vault.slashableOf(accused)
    auditors = draw(court, chain, faulty_dispute)
    silent_stake = vault.slashableOf(auditors[1])
    salts = vote(court, faulty_dispute, {auditors[0]: True, auditors[1]: None, auditors[2]: None}, by_addr,
                 reveal=False)
    travel(chain, PARAMS.commit_period + 1)
    court.revealVote(faulty_dispute, FAULTY, fingerprint(auditors[0], FAULTY), salts[auditors[0]],
                     sender=by_addr[auditors[0]])
    travel(chain, PARAMS.reveal_period + 1)
    tx = court.resolve(faulty_dispute, sender=operators[4])
    assert [(e.auditor, e.incoherent) for e in tx.events if e.event_name == "AuditorPenalized"] == [
        (a, False) for a in auditors[1:]]
    assert vault.slashableOf(auditors[1]) == silent_stake - PARAMS.no_reveal_penalty
    assert vault.slashableOf(accused) == slashable
    assert vault.credits(challenger) == court.getDispute(faulty_dispute).bond
    assert court.getDispute(faulty_dispute).outcome == NO_QUORUM
    assert vault.treasury() == 2 * PARAMS.no_reveal_penalty
    assert not any(vault.isFrozen(a) for a in auditors)
    vault_invariant(vault, chain)


@pytest.mark.parametrize("verdicts,outcome", [
    ([True, True, False, False], NO_QUORUM),  # a tie
    ([True, True, False, "abstain"], NO_QUORUM),  # more faulty than honest, but not > half the panel
    ([True, True, None, None], NO_QUORUM),  # silence counts against both sides too
    ([True, True, True, False], OUT_FAULTY),
    ([False, False, False, None], OUT_HONEST),
])
def test_ruling_needs_more_than_half_of_the_whole_panel(court, vault, chain, owner, swarm, signed_receipt,
                                                        open_dispute, operators, signer_keys, challenger, by_addr,
                                                        vote, verdicts, outcome):
    court.setParams(params_with(auditors_per_dispute=4).court_tuple(), sender=owner)
    accused = operators[0]
    r, sig = signed_receipt(accused, signer_keys[0])
    d = open_dispute(r, sig, challenger)
    auditors = draw(court, chain, d)
    assert len(auditors) == 4
    stakes = {a: vault.slashableOf(a) for a in [accused, *auditors]}
    v = dict(zip(auditors, verdicts))
    salts = vote(court, d, v, by_addr, reveal=False)
    travel(chain, PARAMS.commit_period + 1)
    for a, salt in salts.items():
        code = {True: FAULTY, False: HONEST, "abstain": ABSTAIN}[v[a]]
        court.revealVote(d, code, fingerprint(a, code), salt, sender=by_addr[a])
    travel(chain, PARAMS.reveal_period + 1)
    court.resolve(d, sender=challenger)
    assert court.getDispute(d).outcome == outcome
    slashed = stakes[accused] * PARAMS.slash_bps // BPS if outcome == OUT_FAULTY else 0
    assert vault.slashableOf(accused) == stakes[accused] - slashed
    winning = {OUT_FAULTY: True, OUT_HONEST: False}.get(outcome)
    for a in auditors:  # silent: noRevealPenalty; the losing verdict: incoherencePenalty; else 0
        penalty = (PARAMS.no_reveal_penalty if v[a] is None else
                   PARAMS.incoherence_penalty if winning is not None and v[a] in (True, False) and v[a] != winning
                   else 0)
        assert vault.slashableOf(a) == stakes[a] - penalty, (a, v[a])
        assert (vault.credits(a) > 0) == (winning is not None and v[a] == winning)
    vault_invariant(vault, chain)


def test_unstaking_cannot_escape_a_slash(court, vault, chain, swarm, signed_receipt, open_dispute, operators,
                                         signer_keys, challenger, by_addr, vote):
    accused = operators[0]
    r, sig = signed_receipt(operators[0], signer_keys[0])
    vault.requestUnstake(vault.stakeOf(accused), sender=accused)  # run for the exit first
    d = open_dispute(r, sig, challenger)
    travel(chain, PARAMS.unbonding_period + 1)  # unbonding "matured" ...
    with ape.reverts(vault.StakeVault_NothingToWithdraw):
        vault.withdraw(sender=accused)  # ... but frozen
    auditors = draw(court, chain, d)  # deadlines are set at draw time
    vote(court, d, {a: True for a in auditors}, by_addr)
    court.resolve(d, sender=challenger)
    assert vault.accountOf(accused).unbonding == 2 * ETHER - 2 * ETHER * PARAMS.slash_bps // BPS
    vault_invariant(vault, chain)


def test_frivolous_dispute_costs_the_bond(court, vault, chain, faulty_dispute, challenger, by_addr, vote):
    auditors = draw(court, chain, faulty_dispute)
    before = vault.credits(challenger)
    vote(court, faulty_dispute, {a: False for a in auditors}, by_addr)
    court.resolve(faulty_dispute, sender=challenger)
    assert vault.credits(challenger) == before
    with ape.reverts(vault.StakeVault_NothingToWithdraw):
        vault.withdraw(sender=challenger)


# ------------------------------------------------------------------ appeal


@pytest.fixture
def appealable(court, vault, chain, owner, swarm, crowd, signed_receipt, open_dispute, operators, signer_keys,
               challenger, by_addr, vote):
    """Appeals on (1 h); nine servers; op0's receipt disputed, a first panel of three ruled
    honest. Returns (dispute id, first-round auditors)."""
    court.setParams(params_with(appeal_period=3600).court_tuple(), sender=owner)
    by_addr.update({a.address: a for a in crowd})
    r, sig = signed_receipt(operators[0], signer_keys[0])
    d = open_dispute(r, sig, challenger)
    first = draw(court, chain, d)
    vote(court, d, {a: False for a in first}, by_addr)
    tx = court.resolve(d, sender=challenger)
    ruled = [e for e in tx.events if e.event_name == "RoundRuled"][0]
    assert (ruled.round, ruled.ruling) == (0, OUT_HONEST) and ruled.appealDeadline > 0
    assert not [e for e in tx.events if e.event_name == "DisputeResolved"]
    return d, first


@pytest.mark.parametrize("second", ["faulty", "honest", "split"])
def test_appeal_is_heard_by_a_fresh_larger_panel(court, vault, chain, appealable, operators, challenger, by_addr,
                                                 vote, second):
    d, first = appealable
    accused, bond = operators[0], court.getDispute(d).bond
    rec = court.getDispute(d)
    assert (rec.stage, rec.outcome, rec.firstRuling) == (APPEALABLE, PENDING, OUT_HONEST)
    assert all(vault.isFrozen(a) for a in [accused, *first])  # nobody leaves before the final ruling
    with ape.reverts(court.DisputeCourt_NotResolvable):
        court.resolve(d, sender=challenger)
    with ape.reverts(court.DisputeCourt_BondTooLow, sent=2 * bond - 1, required=2 * bond):
        court.appeal(d, value=2 * bond - 1, sender=challenger)
    stakes = {a: vault.slashableOf(a) for a in by_addr}
    tx = court.appeal(d, value=2 * bond, sender=challenger)
    ev = [e for e in tx.events if e.event_name == "Appealed"][0]
    assert ev.appellant == challenger.address and ev.appealBond == 2 * bond
    rec = court.getDispute(d)
    assert (rec.stage, rec.round, rec.drawnCount, rec.appealBond) == (AWAITING_DRAW, 1, 0, 2 * bond)
    assert vault.escrow() == 3 * bond
    chain.mine(PARAMS.draw_delay_blocks + 1)
    tx = court.drawAuditors(d, sender=challenger)
    ev = [e for e in tx.events if e.event_name == "AuditorsDrawn"][0]
    panel = list(ev.auditors)
    # 2K+1 = 7 wanted; the 5 servers that are neither the accused nor first-round auditors sit
    assert ev.round == 1 and len(panel) == 5 and not set(panel) & set(first)
    assert accused.address not in panel and list(court.auditorsOf(d)) == first + panel
    assert all(court.voteOf(d, a).round == 1 and vault.isFrozen(a) for a in panel)
    with ape.reverts(court.DisputeCourt_NotAuditor):  # the first round's auditors have had their say
        court.commitVote(d, b"\x00" * 32, sender=by_addr[first[0]])
    with ape.reverts(court.DisputeCourt_WrongStage):  # one appeal only
        court.appeal(d, value=4 * bond, sender=accused)
    verdicts = {"faulty": [True] * 5, "honest": [False] * 5, "split": [True, True, False, False, "abstain"]}[second]
    vote(court, d, dict(zip(panel, verdicts)), by_addr)
    tx = court.resolve(d, sender=challenger)
    ruled = [e for e in tx.events if e.event_name == "RoundRuled"][0]
    outcome = {"faulty": OUT_FAULTY, "honest": OUT_HONEST, "split": NO_QUORUM}[second]
    assert ruled.round == 1 and ruled.ruling == outcome == court.getDispute(d).outcome
    slashed = stakes[accused.address] // 2 if second == "faulty" else 0
    assert vault.slashableOf(accused) == stakes[accused.address] - slashed
    if second == "faulty":  # overturned: appeal bond back; the first panel was incoherent
        pool = slashed * PARAMS.auditor_bps // BPS + 3 * PARAMS.incoherence_penalty
        assert vault.credits(challenger) == bond + slashed * PARAMS.finder_bps // BPS + 2 * bond
        assert all(vault.slashableOf(a) == stakes[a] - PARAMS.incoherence_penalty for a in first)
        assert all(vault.credits(a) == pool // 5 for a in panel) and all(vault.credits(a) == 0 for a in first)
    elif second == "honest":  # upheld: the appeal bond joins the pool of all 8 coherent auditors
        share = bond * PARAMS.accused_share_bps // BPS
        assert vault.credits(challenger) == 0 and vault.credits(accused) == share
        assert all(vault.credits(a) == (bond - share + 2 * bond) // 8 for a in first + panel)
    else:  # nobody could agree: both bonds back, nobody coherent, nobody incoherent
        assert vault.credits(challenger) == 3 * bond
        assert all(vault.slashableOf(a) == stakes[a] and vault.credits(a) == 0 for a in first + panel)
    assert not any(vault.isFrozen(a) for a in [accused.address, *first, *panel]) and vault.escrow() == 0
    vault_invariant(vault, chain)


def test_unappealed_ruling_settles_after_the_window(court, vault, chain, owner, swarm, signed_receipt, open_dispute,
                                                    operators, signer_keys, challenger, by_addr, vote):
    court.setParams(params_with(appeal_period=3600).court_tuple(), sender=owner)
    accused = operators[0]
    r, sig = signed_receipt(accused, signer_keys[0])
    d = open_dispute(r, sig, challenger)
    vote(court, d, {a: True for a in draw(court, chain, d)}, by_addr)
    court.resolve(d, sender=challenger)
    slashable = vault.slashableOf(accused)
    assert court.getDispute(d).stage == APPEALABLE and vault.isFrozen(accused)
    travel(chain, 1800)
    with ape.reverts(court.DisputeCourt_NotResolvable):
        court.resolve(d, sender=challenger)
    travel(chain, 1801)
    with ape.reverts(court.DisputeCourt_AppealClosed):
        court.appeal(d, value=2 * court.getDispute(d).bond, sender=accused)
    tx = court.resolve(d, sender=challenger)
    assert court.getDispute(d).outcome == OUT_FAULTY and not vault.isFrozen(accused)
    assert [e.round for e in tx.events if e.event_name == "RoundRuled"] == []  # ruled already
    assert vault.slashableOf(accused) == slashable - slashable * PARAMS.slash_bps // BPS
    vault_invariant(vault, chain)


def test_appeal_without_enough_fresh_auditors_keeps_the_first_ruling(court, vault, chain, owner, swarm,
                                                                     signed_receipt, open_dispute, operators,
                                                                     signer_keys, challenger, by_addr, vote):
    """Five servers: after the accused and the first panel only one is left, under minPanel:
    the first ruling stands and the appellant (the accused) gets its appeal bond back."""
    court.setParams(params_with(appeal_period=3600).court_tuple(), sender=owner)
    accused = operators[0]
    r, sig = signed_receipt(accused, signer_keys[0])
    d = open_dispute(r, sig, challenger)
    vote(court, d, {a: True for a in draw(court, chain, d)}, by_addr)
    court.resolve(d, sender=challenger)
    slashable, bond = vault.slashableOf(accused), court.getDispute(d).bond
    court.appeal(d, value=2 * bond, sender=accused)
    assert draw(court, chain, d) == []
    rec = court.getDispute(d)
    assert (rec.stage, rec.outcome, rec.round) == (RESOLVED, OUT_FAULTY, 1)
    assert vault.slashableOf(accused) == slashable // 2 and vault.credits(accused) == 2 * bond
    assert not vault.isFrozen(accused) and vault.escrow() == 0
    vault_invariant(vault, chain)


def test_lapsed_appeal_round_keeps_the_first_ruling_and_forfeits_the_appeal_bond(court, vault, chain, appealable,
                                                                                 operators, challenger):
    d, first = appealable
    bond = court.getDispute(d).bond
    court.appeal(d, value=2 * bond, sender=challenger)
    chain.mine(300)
    treasury = vault.treasury()
    tx = court.drawAuditors(d, sender=challenger)
    rec = court.getDispute(d)
    assert (rec.stage, rec.outcome) == (RESOLVED, OUT_HONEST)
    share = bond * PARAMS.accused_share_bps // BPS
    per = (bond - share) // 3
    assert vault.credits(challenger) == 0 and vault.credits(operators[0]) == share
    assert all(vault.credits(a) == per for a in first)
    assert vault.treasury() == treasury + 2 * bond + (bond - share - 3 * per)
    assert [e.outcome for e in tx.events if e.event_name == "DisputeResolved"] == [OUT_HONEST]
    assert not any(vault.isFrozen(a) for a in [operators[0].address, *first])
    vault_invariant(vault, chain)


def test_over_bonded_opening_does_not_price_out_the_appeal(court, vault, chain, owner, swarm, signed_receipt,
                                                           open_dispute, operators, signer_keys, challenger, by_addr,
                                                           vote):
    court.setParams(params_with(appeal_period=3600).court_tuple(), sender=owner)
    accused = operators[0]
    required = court.bondFor(accused)
    r, sig = signed_receipt(accused, signer_keys[0])
    d = open_dispute(r, sig, challenger, value=100 * required)
    vote(court, d, {a: True for a in draw(court, chain, d)}, by_addr)
    court.resolve(d, sender=challenger)
    assert court.getDispute(d).stage == APPEALABLE
    assert court.appealPrice(d) == 2 * required
    court.appeal(d, value=2 * required, sender=accused)  # was BondTooLow(2 x required, 200 x required)
    assert court.getDispute(d).round == 1


# ------------------------------------------------------------------ governance


def test_params_owner_only_and_bounded(court, vault, owner, stranger):
    with ape.reverts(court.OwnableUnauthorizedAccount):
        court.setParams(PARAMS.court_tuple(), sender=stranger)
    cap = vault.minStake() // 2
    day = 86_400
    bad = [("dispute_window", 599), ("dispute_window", 90 * day + 1), ("max_clock_skew", 601),
           ("commit_period", 59), ("commit_period", 14 * day + 1), ("reveal_period", 59),
           ("reveal_period", 14 * day + 1), ("appeal_period", 30 * day + 1), ("auditor_min_age", 30 * day + 1),
           ("draw_delay_blocks", 0), ("draw_delay_blocks", 201), ("open_reveal_blocks", 0),
           ("open_reveal_blocks", 1001), ("auditors_per_dispute", 2), ("auditors_per_dispute", 16),
           ("min_panel", 2), ("min_panel", 4), ("slash_bps", 99), ("slash_bps", 5_001), ("finder_bps", 5_001),
           ("auditor_bps", 5_001), ("accused_share_bps", 10_001), ("bond_bps", 99), ("bond_bps", 10_001),
           ("min_bond", 10**15 - 1), ("min_bond", (2**88 - 1) // 4 + 1), ("no_reveal_penalty", 0),
           ("no_reveal_penalty", cap + 1), ("incoherence_penalty", cap + 1),
           ("dispute_window", PARAMS.unbonding_period)]  # the window must stay shorter than unbonding
    for field, value in bad:
        with ape.reverts(court.DisputeCourt_BadParams):
            court.setParams(params_with(**{field: value}).court_tuple(), sender=owner)
    with ape.reverts(court.DisputeCourt_BadParams, reason="finderBps+auditorBps"):
        court.setParams(params_with(finder_bps=5_000, auditor_bps=4_001).court_tuple(), sender=owner)
    assert court.params().disputeWindow == PARAMS.dispute_window  # nothing above took
    # the edges of every bound are accepted
    edge = params_with(dispute_window=600, max_clock_skew=600, commit_period=60, reveal_period=14 * day,
                       appeal_period=30 * day, auditor_min_age=30 * day, draw_delay_blocks=200,
                       open_reveal_blocks=1, auditors_per_dispute=15, min_panel=15, slash_bps=5_000,
                       finder_bps=5_000, auditor_bps=4_000, accused_share_bps=10_000, bond_bps=10_000,
                       min_bond=10**15, no_reveal_penalty=cap, incoherence_penalty=0)
    tx = court.setParams(edge.court_tuple(), sender=owner)
    assert tuple(court.params()) == edge.court_tuple()
    assert [e.paramsId for e in tx.events if e.event_name == "ParamsChanged"] == [1]
    with ape.reverts(court.DisputeCourt_RenounceDisabled):
        court.renounceOwnership(sender=owner)


def test_every_network_preset_is_within_the_contract_bounds(project, owner):
    from pollen.deploy import PRESETS

    for name, p in PRESETS.items():
        vault = project.StakeVault.deploy(p.min_stake, p.unbonding_period, owner, sender=owner)
        versions = project.ModelVersionRegistry.deploy(sender=owner)
        registry = project.ServerRegistry.deploy(vault, versions, sender=owner)
        court = project.DisputeCourt.deploy(vault, registry, p.court_tuple(), owner, sender=owner)
        vault.wire(court, registry, sender=owner)
        assert tuple(court.params()) == p.court_tuple(), name
        court.setParams(p.court_tuple(), sender=owner)  # and setParams (window < unbonding) agrees


REVEAL_S = PARAMS.open_reveal_blocks * 30  # CourtBounds.OPENING_BLOCK_SECONDS per reveal block


def test_court_runtime_leaves_room_under_eip170(court, chain):
    """EIP-170 caps runtime code at 24,576 bytes; keep 1.5 KB for the next fix."""
    size = len(chain.provider.get_code(court.address))
    assert size <= 24_576 - 1_536, f"DisputeCourt runtime is {size} bytes"
    assert len(chain.provider.get_code(court.bounds())) > 0


def test_freeze_horizon_counts_clock_skew_and_the_opening_reveal(court, vault, owner):
    assert int(court.bounds(), 16) != 0  # created by the court
    assert court.freezeHorizon() == PARAMS.dispute_window + PARAMS.max_clock_skew + REVEAL_S
    widest = PARAMS.unbonding_period - PARAMS.max_clock_skew - REVEAL_S - 1
    for window in (PARAMS.unbonding_period - 1, widest + 1):  # the old bound accepted both
        with ape.reverts(court.DisputeCourt_BadParams, reason="unbonding <= freezeHorizon"):
            court.setParams(params_with(dispute_window=window).court_tuple(), sender=owner)
    court.setParams(params_with(dispute_window=widest).court_tuple(), sender=owner)
    assert court.freezeHorizon() == PARAMS.unbonding_period - 1
    with ape.reverts(vault.StakeVault_UnbondingNotLongerThanWindow):
        vault.setUnbondingPeriod(PARAMS.unbonding_period - 1, sender=owner)


def test_opening_reveal_expires_by_time_too(court, chain, swarm, signed_receipt, operators, signer_keys, challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0])
    salt = commit_opening(court, r, challenger)
    travel(chain, REVEAL_S + 1)  # one block later, but past the reveal's time limit
    with ape.reverts(court.DisputeCourt_OpeningExpired):
        court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, salt, value=court.bondFor(r.server), sender=challenger)


def test_stake_unbonding_at_issue_is_still_slashable_within_the_window(court, vault, chain, owner, swarm,
                                                                       signed_receipt, operators, signer_keys,
                                                                       challenger):
    """The attack: unbond as the receipt is issued (dated maxClockSkew ahead), and withdraw before
    a challenger's latest possible opening (committed at the window's close, revealed as late as
    allowed) freezes the account. With the widest window the bounds accept, it cannot."""
    widest = PARAMS.unbonding_period - PARAMS.max_clock_skew - REVEAL_S - 1
    court.setParams(params_with(dispute_window=widest).court_tuple(), sender=owner)
    accused = operators[0]
    vault.stake(value=ETHER, sender=accused)  # 3 ETH
    issued = chain.blocks.head.timestamp + PARAMS.max_clock_skew
    r, sig = signed_receipt(accused, signer_keys[0], issued_at=issued)
    vault.requestUnstake(ETHER, sender=accused)  # still 2 ETH active: registered, term open
    release = vault.accountOf(accused).releaseAt
    chain.pending_timestamp = issued + widest - 1
    salt = commit_opening(court, r, challenger)  # the window's last second
    committed_at = court.openingCommitted(court.openingCommitment(
        challenger.address, court.hashReceipt(r.as_tuple()), EVIDENCE, 0, salt)) & (2**64 - 1)
    assert committed_at <= issued + widest
    chain.pending_timestamp = committed_at + REVEAL_S - 1  # the reveal's last second
    assert chain.pending_timestamp < release
    with ape.reverts(vault.StakeVault_NothingToWithdraw):
        vault.withdraw(sender=accused)  # the unbonding is not released yet
    court.openDispute(r.as_tuple(), sig, EVIDENCE, 0, salt, value=court.bondFor(accused), sender=challenger)
    assert vault.slashableOf(accused) == 3 * ETHER and vault.isFrozen(accused)
    travel(chain, PARAMS.unbonding_period)
    with ape.reverts(vault.StakeVault_NothingToWithdraw):
        vault.withdraw(sender=accused)  # frozen until the dispute settles


# ------------------------------------------------------------------ receipt v2: named block, kind, term


@pytest.mark.parametrize("block", [1, 5, 6, 0xFFFFFFFF])  # span [2, 5): below, at and past the end
def test_named_block_outside_span_rejected(court, swarm, signed_receipt, operators, signer_keys, challenger, block):
    r, sig = signed_receipt(operators[0], signer_keys[0], first=2, last=5)
    with ape.reverts(court.DisputeCourt_BadBlock, blockIndex=block, firstBlock=2, lastBlock=5):
        open_tx(court, r, sig, challenger, block=block)
    assert court.disputeCount() == 0
    open_tx(court, r, sig, challenger, block=4)  # last block: fine


@pytest.mark.parametrize("kind", [3, 255])
def test_unknown_receipt_kind_rejected(court, domain, swarm, signed_receipt, operators, signer_keys, challenger,
                                       kind):
    r, _ = signed_receipt(operators[0], signer_keys[0])
    assert digest_of(r.as_tuple(), domain) == r.digest(domain)  # the from-scratch digest is the real one
    t = list(r.as_tuple())
    t[5] = kind  # pollen.receipts refuses to build such a receipt: forge the tuple and sign its digest
    t = tuple(t)
    sig = bytes(Account.unsafe_sign_hash(digest_of(t, domain), signer_keys[0].key).signature)
    assert court.recoverSigner(t, sig) == signer_keys[0].address
    salt = commit_tuple(court, t, challenger, 0)
    with ape.reverts(court.DisputeCourt_BadKind, kind=kind):
        court.openDispute(t, sig, EVIDENCE, 0, salt, value=court.bondFor(r.server), sender=challenger)


def test_receipt_naming_another_term_rejected(court, chain, registry, version_id, swarm, signed_receipt, operators,
                                              signer_keys, challenger):
    # op0 moves to [0, 4) under a new signer: term 0 = (key0, [0, 8)), term 1 = (key1', [0, 4))
    new_key = Account.from_key(b"\x77" * 32)
    chain.pending_timestamp += 60
    registry.update(new_key.address, "grpc://x:1", version_id, 0, 4, 10, sender=operators[0])
    now = chain.blocks.head.timestamp
    # signed by the new key over [0, 4) but claiming term 0 (whose signer and span differ)
    r, sig = signed_receipt(operators[0], new_key, first=0, last=4, term=0, issued_at=now)
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        open_tx(court, r, sig, challenger)
    # signed by the old key over [0, 8) but claiming term 1 (in force now, other signer and span)
    r, sig = signed_receipt(operators[0], signer_keys[0], first=0, last=8, term=1, issued_at=now)
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        open_tx(court, r, sig, challenger)
    # a term that does not exist
    r, sig = signed_receipt(operators[0], new_key, first=0, last=4, term=7, issued_at=now)
    with ape.reverts(court.DisputeCourt_SignerNotRegistered):
        open_tx(court, r, sig, challenger)
    # the right term is accepted
    r, sig = signed_receipt(operators[0], new_key, first=0, last=4, term=1, issued_at=now)
    open_tx(court, r, sig, challenger, block=3)
    assert court.getDispute(1).accused == operators[0].address


def test_backward_receipt_disputed_and_slashed(court, vault, chain, swarm, signed_receipt, operators, signer_keys,
                                               challenger, by_addr, vote):
    slashable = vault.slashableOf(operators[0])
    r, sig = signed_receipt(operators[0], signer_keys[0], first=1, last=7, step=41, kind=KIND_BACKWARD)
    tx = open_tx(court, r, sig, challenger, block=5)
    ev = [e for e in tx.events if e.event_name == "DisputeOpened"][0]
    assert ev.blockIndex == 5 and tuple(ev.receipt)[1:] == r.as_tuple()[1:]  # term, kind, blocksRoot included
    assert ev.receiptHash == court.hashReceipt(r.as_tuple())
    d = court.getDispute(1)
    assert (d.block, d.step, d.kind, d.firstBlock, d.lastBlock) == (5, 41, KIND_BACKWARD, 1, 7)
    assert d.abstainVotes == 0
    auditors = draw(court, chain, 1)
    vote(court, 1, {a: True for a in auditors}, by_addr)
    court.resolve(1, sender=challenger)
    assert court.getDispute(1).outcome == OUT_FAULTY
    assert vault.slashableOf(operators[0]) == slashable - slashable * PARAMS.slash_bps // BPS
    vault_invariant(vault, chain)


def test_dispute_records_named_block_and_step(court, swarm, signed_receipt, open_dispute, operators, signer_keys,
                                              challenger):
    r, sig = signed_receipt(operators[0], signer_keys[0], first=3, last=8, step=12, kind=1)
    d = court.getDispute(open_dispute(r, sig, challenger, block=6))
    assert (d.block, d.step, d.kind, d.firstBlock, d.lastBlock) == (6, 12, 1, 3, 8)
    # pollen/chain.py reads the record by these ABI names (snake-cased)
    (fn,) = [a for a in court.contract_type.abi if getattr(a, "name", None) == "getDispute"]
    names = [c.name for c in fn.outputs[0].components]
    for name in ("accused", "stage", "outcome", "firstRuling", "round", "challenger", "bond", "appellant",
                 "appealBond", "block", "firstBlock", "lastBlock", "kind", "drawnCount", "faultyVotes",
                 "honestVotes", "abstainVotes", "step", "drawBlock", "commitDeadline", "revealDeadline",
                 "appealDeadline"):
        assert name in names, name


def test_hash_receipt_covers_every_field(court, swarm, signed_receipt, operators, signer_keys):
    from pollen.receipts import RECEIPT_TYPE

    assert court.RECEIPT_TYPEHASH() == RECEIPT_TYPEHASH == keccak(text=RECEIPT_TYPE)
    r, _ = signed_receipt(operators[0], signer_keys[0], term=3, kind=2)
    expected = keccak(encode(RECEIPT_ABI, [RECEIPT_TYPEHASH, *r.as_tuple()]))
    assert court.hashReceipt(r.as_tuple()) == expected == r.struct_hash()
    for i in range(12):  # changing any one field changes the hash
        t = list(r.as_tuple())
        t[i] = (b"\x01" * 32 if isinstance(t[i], bytes) else
                "0x" + "12" * 20 if isinstance(t[i], str) else (t[i] + 1) % 3 if i == 5 else t[i] + 1)
        assert court.hashReceipt(tuple(t)) != expected, i


# ------------------------------------------------------------------ fingerprinted votes and abstention


def test_all_abstain_is_no_quorum_and_refunds_in_full(court, vault, chain, faulty_dispute, operators, challenger,
                                                      by_addr, vote):
    accused = operators[0]
    slashable = vault.slashableOf(accused)
    auditors = draw(court, chain, faulty_dispute)
    stakes = {a: vault.slashableOf(a) for a in auditors}
    vote(court, faulty_dispute, {a: "abstain" for a in auditors}, by_addr)
    d = court.getDispute(faulty_dispute)
    assert (d.abstainVotes, d.faultyVotes, d.honestVotes) == (3, 0, 0)
    assert all(court.voteOf(faulty_dispute, a).state == ABSTAIN_S for a in auditors)
    tx = court.resolve(faulty_dispute, sender=challenger)  # early: everyone revealed
    assert not [e for e in tx.events if e.event_name == "AuditorPenalized"]
    assert court.getDispute(faulty_dispute).outcome == NO_QUORUM
    assert vault.credits(challenger) == d.bond
    assert vault.slashableOf(accused) == slashable and not vault.isFrozen(accused)
    for a in auditors:
        assert vault.slashableOf(a) == stakes[a] and vault.credits(a) == 0
    assert vault.treasury() == 0 and vault.escrow() == 0
    vault_invariant(vault, chain)


def test_one_faulty_and_two_abstain_cannot_slash(court, vault, chain, faulty_dispute, operators, challenger, by_addr,
                                                 vote):
    accused = operators[0]
    slashable = vault.slashableOf(accused)
    auditors = draw(court, chain, faulty_dispute)
    vote(court, faulty_dispute, {auditors[0]: True, auditors[1]: "abstain", auditors[2]: "abstain"}, by_addr)
    court.resolve(faulty_dispute, sender=challenger)
    assert court.getDispute(faulty_dispute).outcome == NO_QUORUM
    assert vault.slashableOf(accused) == slashable
    assert vault.credits(challenger) == court.getDispute(faulty_dispute).bond
    assert vault.credits(auditors[0]) == 0
    vault_invariant(vault, chain)


def test_two_faulty_and_one_abstain_slashes_and_the_abstainer_pays_half(court, vault, chain, faulty_dispute, operators, challenger, by_addr, vote):
    auditors = draw(court, chain, faulty_dispute)
    stake = vault.slashableOf(auditors[1])
    vote(court, faulty_dispute, {auditors[0]: True, auditors[1]: "abstain", auditors[2]: True}, by_addr)
    court.resolve(faulty_dispute, sender=challenger)
    assert court.getDispute(faulty_dispute).outcome == OUT_FAULTY
    assert vault.credits(auditors[1]) == 0 and vault.credits(auditors[0]) == vault.credits(auditors[2]) > 0
    # the panel could rule, so the evidence was usable: abstaining costs half the incoherence penalty
    assert vault.slashableOf(auditors[1]) == stake - PARAMS.incoherence_penalty // 2
    vault_invariant(vault, chain)


def test_abstainer_not_penalised_but_silent_is(court, vault, chain, faulty_dispute, challenger, by_addr, vote):
    auditors = draw(court, chain, faulty_dispute)
    salts = vote(court, faulty_dispute, {auditors[0]: "abstain", auditors[1]: True, auditors[2]: None}, by_addr,
                 reveal=False)
    travel(chain, PARAMS.commit_period + 1)
    for a, code in ((auditors[0], ABSTAIN), (auditors[1], FAULTY)):
        court.revealVote(faulty_dispute, code, fingerprint(a, code), salts[a], sender=by_addr[a])
    with ape.reverts(court.DisputeCourt_NotResolvable):
        court.resolve(faulty_dispute, sender=challenger)  # one drawn auditor has not revealed
    travel(chain, PARAMS.reveal_period + 1)
    tx = court.resolve(faulty_dispute, sender=challenger)
    assert [e.auditor for e in tx.events if e.event_name == "AuditorPenalized"] == [auditors[2]]
    assert court.getDispute(faulty_dispute).outcome == NO_QUORUM  # 1 faulty of 3 drawn
    assert vault.credits(challenger) == court.getDispute(faulty_dispute).bond
    vault_invariant(vault, chain)


def test_revealed_fingerprint_stored_and_emitted(court, chain, faulty_dispute, by_addr):
    auditors = draw(court, chain, faulty_dispute)
    a = by_addr[auditors[0]]
    fp, salt = os.urandom(32), os.urandom(32)
    court.commitVote(faulty_dispute, court.commitmentOf(faulty_dispute, a, HONEST, fp, salt), sender=a)
    assert court.voteOf(faulty_dispute, a).fingerprint == b"\x00" * 32  # secret until revealed
    travel(chain, PARAMS.commit_period + 1)
    tx = court.revealVote(faulty_dispute, HONEST, fp, salt, sender=a)
    ev = [e for e in tx.events if e.event_name == "VoteRevealed"][0]
    assert (ev.auditor, ev.verdict, ev.fingerprint) == (a.address, HONEST, fp)
    v = court.voteOf(faulty_dispute, a)
    assert v.fingerprint == fp and v.state == HONEST_S


def test_reveal_with_other_fingerprint_or_verdict_mismatches(court, chain, faulty_dispute, by_addr):
    auditors = draw(court, chain, faulty_dispute)
    a = by_addr[auditors[0]]
    fp, salt = os.urandom(32), os.urandom(32)
    court.commitVote(faulty_dispute, court.commitmentOf(faulty_dispute, a, FAULTY, fp, salt), sender=a)
    travel(chain, PARAMS.commit_period + 1)
    with ape.reverts(court.DisputeCourt_CommitmentMismatch):
        court.revealVote(faulty_dispute, FAULTY, os.urandom(32), salt, sender=a)  # another fingerprint
    with ape.reverts(court.DisputeCourt_CommitmentMismatch):
        court.revealVote(faulty_dispute, ABSTAIN, fp, salt, sender=a)  # turn the vote into an abstention
    court.revealVote(faulty_dispute, FAULTY, fp, salt, sender=a)
    assert court.voteOf(faulty_dispute, a).state == FAULTY_S


@pytest.mark.parametrize("verdict", [0, 4, 255])
def test_bad_verdict_rejected(court, chain, faulty_dispute, by_addr, verdict):
    auditors = draw(court, chain, faulty_dispute)
    a = by_addr[auditors[0]]
    salt = os.urandom(32)
    court.commitVote(faulty_dispute, court.commitmentOf(faulty_dispute, a, verdict, FP, salt), sender=a)
    travel(chain, PARAMS.commit_period + 1)
    with ape.reverts(court.DisputeCourt_BadVerdict, verdict=verdict):
        court.revealVote(faulty_dispute, verdict, FP, salt, sender=a)
